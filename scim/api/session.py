"""``/session``: the browser client's login and logout, outside the SCIM namespace.

``POST /session`` logs an administrator in with their client certificate (SITHS card) and sets
the session cookie; ``GET /session`` says who is logged in; ``DELETE /session`` logs out. In demo
mode, and only to a loopback peer, ``GET /session/demo`` lists the administrators and
``POST /session/demo`` logs in as one of them without a certificate.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.api.http import read_json
from scim.auth import sessions
from scim.auth.authenticate import Authenticator, Unauthenticated, Unregistered
from scim.auth.principal import Role
from scim.errors import SCIM_MEDIA_TYPE, error_body, with_status
from scim.storage import audit, identities

AnyRequest = Request[Any, Any, Any]

# What the browser client shows (administratörsmanualen §3.1.1).
NO_CARD = (
    "Inget giltigt SITHS-kort hittades. Kontrollera att kortet sitter i läsaren och att det "
    "inte har gått ut."
)
NOT_REGISTERED = (
    "Ditt SITHS-kort är giltigt, men du är inte registrerad som administratör. Kontakta "
    "Migrationsverket om du ska administrera behörigheter för din organisation."
)
NOT_ADMINISTRATOR = (
    "Du är inte administratör och kan inte logga in i Administrera behörigheter för e-tjänster."
)
LOGGED_OUT = "Du är inte inloggad, eller så har sessionen gått ut. Logga in igen."
CSRF_MISSING = "Begäran saknar sessionens CSRF-token. Ladda om sidan och försök igen."
DEMO_ONLY_LOCAL = "Demoläget går bara att nå från den egna datorn (127.0.0.1)."
NO_SUCH_ADMINISTRATOR = "Det finns ingen sådan demoadministratör."


def _refused(status: int, detail: str, message: str) -> Response[bytes]:
    """A SCIM error body, with ``message`` in Swedish for the browser client to show."""
    body = error_body(with_status(status, detail), message=message)
    return Response(body, status_code=status, media_type=SCIM_MEDIA_TYPE)


def _no_session() -> Response[bytes]:
    response = _refused(401, "No session: log in", LOGGED_OUT)
    response.delete_cookie(sessions.COOKIE)
    return response


def _engine(request: AnyRequest) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _logged_in(request: AnyRequest, row: Any, csrf_token: str) -> dict[str, Any]:
    """Who is logged in, the token the browser client sends back with every change, and
    where the SCIM API it talks to is mounted."""
    return {
        "name": f"{row.given_name} {row.family_name}",
        "hsaId": row.hsa_id,
        "organisation": {"name": row.organisation, "kind": row.kind},
        "csrfToken": csrf_token,
        "scimBasePath": request.app.state.settings.base_path,
    }


async def _log_in(request: AnyRequest, administrator: Any, method: str) -> Response[bytes]:
    """A new session for ``administrator`` (a row of administrators with its organisation's
    ``organisation`` and ``kind``), replacing the one the browser had, if any."""
    async with _engine(request).begin() as connection:
        if previous := request.cookies.get(sessions.COOKIE):
            await sessions.end(connection, previous)
        session = await sessions.create(connection, administrator.id)
        await audit.record(
            connection,
            tenant_id=administrator.tenant_id,
            actor=administrator.hsa_id,
            action="session.login",
            resource_type="Administrator",
            resource_id=administrator.hsa_id,
            changes={"method": method},
        )
    body = _logged_in(request, administrator, session.csrf_token)
    response = Response(msgspec.json.encode(body), status_code=200, media_type="application/json")
    response.set_cookie(
        sessions.COOKIE, session.id, path="/", secure=True, httponly=True, samesite="strict"
    )
    return response


def _demo_allowed(request: AnyRequest) -> Response[bytes] | None:
    """404 outside demo mode (as if there were no such endpoint); 403 unless the browser is
    on this machine: a loopback peer that is no trusted proxy and says it forwards nothing
    (no proxy in between), and a loopback Host (no DNS rebinding)."""
    if not request.app.state.settings.demo:
        raise NotFoundException()
    client = request.scope.get("client")
    host = request.url.hostname or ""
    authenticator: Authenticator = request.app.state.authenticator
    local = (
        client is not None
        and _loopback(client[0])
        and (host == "localhost" or _loopback(host.strip("[]")))
        and not authenticator.from_trusted_proxy(request)
        and not any(_forwarding(name, request) for name in request.headers)
    )
    if local:
        return None
    return _refused(403, "Demo mode answers only on loopback", DEMO_ONLY_LOCAL)


# Headers a proxy adds about the client it forwards (RFC 7239, RFC 9110 §7.6.3, RFC 9440, and
# the customary X- ones): a request carrying any came through one.
_FORWARDING_HEADERS = frozenset(
    {"forwarded", "via", "x-real-ip", "client-cert", "client-cert-chain"}
)
_FORWARDING_PREFIXES = ("x-forwarded-", "x-ssl-", "x-client-")


def _forwarding(name: str, request: AnyRequest) -> bool:
    lowered = name.lower()
    return (
        lowered in _FORWARDING_HEADERS
        or lowered.startswith(_FORWARDING_PREFIXES)
        or lowered == request.app.state.settings.proxy_cert_header.lower()
    )


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class SessionController(Controller):
    path = "/session"

    @post("/", name="session-login")
    async def log_in(self, request: AnyRequest) -> Response[bytes]:
        authenticator: Authenticator = request.app.state.authenticator
        try:
            principal = await authenticator.by_certificate(request)
        except Unregistered as error:
            return _refused(401, str(error.detail), NOT_REGISTERED)
        except Unauthenticated as error:
            return _refused(401, str(error.detail), NO_CARD)
        if principal.role != Role.administrator:
            return _refused(
                403, "Only administrators log in to the browser client", NOT_ADMINISTRATOR
            )
        async with _engine(request).connect() as connection:
            administrator = await identities.administrator(
                connection, principal.actor, principal.tenant.id
            )
        if administrator is None:  # removed a moment ago
            return _refused(401, f"{principal.actor} is no administrator", NOT_REGISTERED)
        return await _log_in(request, administrator, "certificate")

    @get("/", name="session")
    async def current(self, request: AnyRequest) -> Response[bytes]:
        session_id = request.cookies.get(sessions.COOKIE)
        async with _engine(request).begin() as connection:
            row = await sessions.lookup(connection, session_id) if session_id else None
        if row is None:
            return _no_session()
        body = _logged_in(request, row, row.csrf_token)
        return Response(msgspec.json.encode(body), media_type="application/json")

    @delete("/", name="session-logout", status_code=200)
    async def log_out(self, request: AnyRequest) -> Response[bytes]:
        session_id = request.cookies.get(sessions.COOKIE, "")
        async with _engine(request).begin() as connection:
            row = await sessions.lookup(connection, session_id) if session_id else None
            if row is None:
                return _no_session()
            if not sessions.csrf_ok(
                "DELETE", request.headers.get(sessions.CSRF_HEADER), row.csrf_token
            ):
                return _refused(
                    403, f"Logging out needs the session's {sessions.CSRF_HEADER}", CSRF_MISSING
                )
            await sessions.end(connection, session_id)
            await audit.record(
                connection,
                tenant_id=row.tenant_id,
                actor=row.hsa_id,
                action="session.logout",
                resource_type="Administrator",
                resource_id=row.hsa_id,
            )
        response = Response(b"", status_code=204)
        response.delete_cookie(sessions.COOKIE)
        return response

    @get("/demo", name="session-demo-list")
    async def demo_administrators(self, request: AnyRequest) -> Response[bytes]:
        if (refused := _demo_allowed(request)) is not None:
            return refused
        async with _engine(request).connect() as connection:
            rows = await identities.every_administrator(connection)
        listed = [
            {
                "name": f"{row.given_name} {row.family_name}",
                "hsaId": row.hsa_id,
                "organisation": {
                    "name": row.organisation,
                    "kind": row.kind,
                    "orgNumber": row.org_number,
                },
            }
            for row in rows
        ]
        return Response(msgspec.json.encode(listed), media_type="application/json")

    @post("/demo", name="session-demo-login")
    async def demo_log_in(self, request: AnyRequest) -> Response[bytes]:
        if (refused := _demo_allowed(request)) is not None:
            return refused
        body = await read_json(request, request.app.state.settings.max_payload_size)
        hsa_id = body.get("hsaId")
        administrator = None
        if isinstance(hsa_id, str):
            async with _engine(request).connect() as connection:
                administrator = await identities.administrator(connection, hsa_id.strip().upper())
        if administrator is None:
            return _refused(
                404, f"No administrator has the HSA-id {hsa_id!r}", NO_SUCH_ADMINISTRATOR
            )
        return await _log_in(request, administrator, "demo")
