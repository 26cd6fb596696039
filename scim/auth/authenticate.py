"""From a request to a Principal: bearer token, a client certificate presented directly
over TLS or forwarded by a trusted proxy, or an administrator's browser session cookie (whose
changes need the session's CSRF token). The organisation always comes from what the
operator registered, never from the request body.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar import Request
from scim2_models import ForbiddenException, SCIMException
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.api.http import header
from scim.auth import certificates, sessions
from scim.auth.certificates import CertificateError, CertificateIdentity, CertificateVerifier
from scim.auth.principal import Principal, Role
from scim.auth.tokens import PREFIX, token_hash
from scim.auth.verified import Verified
from scim.hooks import Tenant
from scim.settings import Settings
from scim.storage import database, identities

# As ASGI names a request's headers.
_CSRF_HEADER = sessions.CSRF_HEADER.lower().encode("latin-1")


class Unauthenticated(SCIMException):
    """401: no credentials, or credentials this server does not accept."""

    status = 401
    _default_detail = "Authentication required: a client certificate or a bearer token"


class Unregistered(Unauthenticated):
    """401: a valid certificate of no one this server knows (in that organisation)."""


def _normalise_name(name: str) -> str:
    return " ".join(name.split()).casefold()


class Authenticator:
    def __init__(self, engine: AsyncEngine, settings: Settings, verified: Verified) -> None:
        self.engine = database.reads(engine)
        # Principals read before, while no change of credentials has been announced.
        self.verified = verified
        self.verifier = (
            CertificateVerifier(Path(settings.ca_bundle).read_bytes())
            if settings.ca_bundle
            else None
        )
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self.proxy_header = settings.proxy_cert_header.lower().encode("latin-1")

    async def authenticate(self, request: Request[Any, Any, Any]) -> Principal:
        authorization = header(request, b"authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise Unauthenticated(detail="Only bearer tokens are accepted in Authorization")
            return await self._by_token(credentials.strip())
        presented = self._presented_certificate(request)
        if presented is not None:
            return await self._by_certificate(*presented)
        if session_id := request.cookies.get(sessions.COOKIE):
            return await self._by_session(request, session_id)
        raise Unauthenticated()

    async def by_certificate(self, request: Request[Any, Any, Any]) -> Principal:
        """Who the request's client certificate names, whatever else it carries."""
        presented = self._presented_certificate(request)
        if presented is None:
            raise Unauthenticated(detail="No client certificate was presented")
        return await self._by_certificate(*presented)

    # -- browser sessions ---------------------------------------------------------------

    async def _by_session(self, request: Request[Any, Any, Any], session_id: str) -> Principal:
        async with self.engine.connect() as connection:
            row = await sessions.lookup(connection, session_id)
            await connection.commit()  # the idle deadline, if it moved
        if row is None:
            raise Unauthenticated(detail="The session has ended; log in again")
        if not sessions.csrf_ok(request.method, header(request, _CSRF_HEADER), row.csrf_token):
            raise ForbiddenException(
                detail=f"A change by session cookie needs the session's {sessions.CSRF_HEADER}"
            )
        name = f"{row.given_name} {row.family_name}"
        return Principal(_tenant(row.tenant_id, row), Role.administrator, row.hsa_id, name)

    # -- tokens ---------------------------------------------------------------------

    async def _by_token(self, token: str) -> Principal:
        if not token.startswith(PREFIX):
            raise Unauthenticated(detail="The bearer token is not one this server issued")
        now = datetime.now(UTC)
        hashed = token_hash(token)
        key = "token:" + hashed
        if kept := self.verified.get(key, now):
            return kept
        generation = self.verified.generation
        async with self.engine.connect() as connection:
            row = await identities.client_by_token(connection, hashed)
        if row is None:
            raise Unauthenticated(detail="The bearer token is not valid")
        if row.revoked is not None:
            raise Unauthenticated(detail="The bearer token has been revoked")
        expires = _aware(row.expires) if row.expires is not None else None
        if expires is not None and expires <= now:
            raise Unauthenticated(detail="The bearer token has expired")
        principal = Principal(
            _tenant(row.tenant_id, row), Role.system, f"client:{row.id}", row.name
        )
        self.verified.keep(key, principal, expires, generation)
        return principal

    # -- certificates -------------------------------------------------------------------

    def _presented_certificate(self, request: Request[Any, Any, Any]) -> Any:
        """(leaf, intermediates) from the TLS connection or a trusted proxy, or None."""
        extensions: Any = request.scope.get("extensions") or {}
        chain: list[str] | None = (extensions.get("tls") or {}).get("client_cert_chain")
        try:
            if chain:
                return certificates.load_chain("".join(chain).encode())
            if not self.from_trusted_proxy(request):
                # Certificate headers from anyone else are ignored.
                return None
            if value := header(request, b"client-cert"):
                return certificates.from_client_cert_header(
                    value, header(request, b"client-cert-chain")
                )
            if value := header(request, self.proxy_header):
                return certificates.from_escaped_pem(value)
        except CertificateError as error:
            raise Unauthenticated(detail=str(error)) from error
        return None

    async def _user(self, hsa_id: str, organisation: str | None) -> tuple[Principal, str]:
        """A person who is a user (by the hsaId of a User resource) of an organisation: they
        may read their own resource at /Me and nothing else."""
        async with self.engine.connect() as connection:
            rows = await identities.users_by_person(connection, hsa_id)
        row = _one_user(rows, organisation)
        if row is None:
            raise Unregistered(
                detail=f"The certificate ({hsa_id}) is not registered for any organisation"
                if not rows
                else f"{hsa_id} is a user of several organisations; the certificate's does "
                "not single one out"
            )
        principal = Principal(
            _tenant(row.tenant_id, row), Role.user, hsa_id, row.display or hsa_id, user_id=row.id
        )
        return principal, row.organisation

    def forwarded_scheme(self, request: Request[Any, Any, Any]) -> str | None:
        """The scheme a trusted TLS-terminating proxy says the client used, if it says one."""
        scheme = (header(request, b"x-forwarded-proto") or "").strip().lower()
        if scheme in ("http", "https") and self.from_trusted_proxy(request):
            return scheme
        return None

    def from_trusted_proxy(self, request: Request[Any, Any, Any]) -> bool:
        client = request.scope.get("client")
        if not client or not self.proxies:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    async def _by_certificate(self, leaf: Any, intermediates: list[Any]) -> Principal:
        if self.verifier is None:
            raise Unauthenticated(detail="This server accepts no client certificates (no CA set)")
        try:
            identity = self.verifier.verify(leaf, intermediates)
        except CertificateError as error:
            raise Unauthenticated(detail=str(error)) from error
        if identity.organisation is None:
            # SITHS certificates name their organisation: without it, the organisation a
            # registration is for could not be checked.
            raise Unauthenticated(detail="The client certificate names no organisation (O)")
        # The chain is verified each time (it may have expired); who it names is kept.
        key = "certificate:" + identity.fingerprint
        now = datetime.now(UTC)
        if kept := self.verified.get(key, now):
            return kept
        generation = self.verified.generation
        principal, organisation = await self._registered(identity)
        if _normalise_name(identity.organisation) != _normalise_name(organisation):
            raise Unregistered(
                detail=f"The certificate's organisation {identity.organisation!r} is not the "
                f"registered organisation {organisation!r}"
            )
        if principal.role != Role.user:
            self.verified.keep(key, principal, None, generation)
        return principal

    async def _registered(self, identity: CertificateIdentity) -> tuple[Principal, str]:
        """The administrator or system client the operator registered for this certificate."""
        hsa = (identity.hsa_id or "").upper()
        async with self.engine.connect() as connection:
            if hsa:
                admin = await identities.administrator(connection, hsa)
                if admin is not None:
                    name = f"{admin.given_name} {admin.family_name}"
                    principal = Principal(
                        _tenant(admin.tenant_id, admin), Role.administrator, hsa, name
                    )
                    return principal, admin.organisation
            clients = await identities.clients_by_certificate(
                connection, identity.fingerprint, hsa or None
            )
        if not clients and hsa:
            return await self._user(hsa, identity.organisation)
        if not clients:
            raise Unregistered(
                detail=f"The certificate ({identity.hsa_id or identity.common_name}) is not "
                "registered for any organisation"
            )
        if len(clients) > 1:
            # Its fingerprint and its HSA-id name different clients: no guessing which.
            raise Unauthenticated(
                detail="The certificate matches more than one registered system client"
            )
        client = clients[0]
        principal = Principal(
            _tenant(client.tenant_id, client), Role.system, f"client:{client.id}", client.name
        )
        return principal, client.organisation


def _one_user(rows: list[Any], organisation: str | None) -> Any:
    """The one row, or among several the one of the certificate's organisation."""
    if len(rows) > 1 and organisation is not None:
        wanted = _normalise_name(organisation)
        rows = [row for row in rows if _normalise_name(row.organisation) == wanted]
    return rows[0] if len(rows) == 1 else None


def _tenant(tenant_id: int, row: Any) -> Tenant:
    """The organisation, from the kind and agreements read with the caller (``_organisation``)."""
    listed = row.org_agreements or ""
    return Tenant(
        tenant_id, str(row.org_kind), frozenset(service for service in listed.split(",") if service)
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
