"""Reading SCIM requests and writing SCIM responses."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.types import Receive, Scope, Send
from scim2_models import InvalidSyntaxException, InvalidValueException, PayloadTooLargeException

from scim.errors import SCIM_MEDIA_TYPE, UnsupportedMediaType
from scim.recent import Recent

_ACCEPTED_BODIES = ("application/scim+json", "application/json")
# SCIM bodies nest a few levels (a Bulk operation's data's members: six); this bounds what
# every recursive walk of a body meets.
MAX_DEPTH = 64
_TOO_DEEP = f"The body nests objects and arrays deeper than {MAX_DEPTH} levels"


def base_url(request: Request[Any, Any, Any]) -> str:
    """The SCIM API's URL as the client sees it (behind a trusted proxy: with its scheme).
    Made once for each way of reaching the server (scheme, Host, address, root path): it
    costs a request's URL to be built, and every resource's location is made on it."""
    scope = request.scope
    scheme = request.app.state.authenticator.forwarded_scheme(request)
    base_path: str = request.app.state.settings.base_path
    reached = (
        scheme,
        scope.get("scheme"),
        header(request, b"host"),
        scope.get("server"),
        scope.get("app_root_path") or scope.get("root_path", ""),
        base_path,
    )

    def made() -> str:
        url = request.base_url
        if scheme:
            url = url.with_replacements(scheme=scheme)
        return str(url).rstrip("/") + base_path

    return _BASE_URLS.get(reached, made)


# Bounded: Host is the client's to say.
_BASE_URLS = Recent(64)


async def read_json(
    request: Request[Any, Any, Any], max_size: int, *, stored: bool = True
) -> dict[str, Any]:
    """The JSON object a request carries: 415 if it is not JSON, 413 if too large, 400 if broken.

    A body whose values are ``stored`` (written, or looked up as they are) may not hold
    U+0000: PostgreSQL's text and jsonb cannot, and would fail the write (400, not 500).
    """
    media_type = (header(request, b"content-type") or "").split(";")[0].strip().lower()
    if media_type not in _ACCEPTED_BODIES:
        raise UnsupportedMediaType()
    body = await _body(request, max_size)
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidSyntaxException(detail=f"The body is not valid JSON: {error}") from error
    except RecursionError:  # deeper than the interpreter goes, so deeper than MAX_DEPTH
        raise InvalidSyntaxException(detail=_TOO_DEEP) from None
    if not isinstance(value, dict):
        raise InvalidSyntaxException(detail="The body must be a JSON object")
    if _deeper_than(value, MAX_DEPTH):
        raise InvalidSyntaxException(detail=_TOO_DEEP)
    # JSON writes U+0000 only escaped: one search (in C) tells when a walk is needed.
    if stored and b"\\u0000" in body and _holds_nul(value):
        raise InvalidValueException(detail="Text may not contain the character U+0000")
    return value


async def _body(request: Request[Any, Any, Any], max_size: int) -> bytes:
    """The body as the ASGI server hands it over, refused (413) as soon as it passes
    ``max_size`` (RFC 7644 §3.7.4 names maxPayloadSize; the same limit applies to every
    body), whatever Content-Length said. Read here rather than by Litestar's
    ``Request.body``, which parses every header for Content-Length, looks its limit up
    through the handler's layers and streams through a generator: 3% of a PATCH's
    instructions. Nothing reads the body after this."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            # The client went away mid-body: no answer will reach it.
            raise InvalidSyntaxException(detail="The body ended before it was complete")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_size:
            raise PayloadTooLargeException(detail=too_large(max_size))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large(max_size: int) -> str:
    """What a 413 for a body over the limit says, whichever reader refused it."""
    return f"The body exceeds the limit (maxPayloadSize) of {max_size} bytes"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest deeper than ``limit``; level by level, without
    recursion, so that what walks a body afterwards (validation, Bulk's references,
    redaction) never meets a nesting it cannot follow."""
    level = [value]
    for _ in range(limit):
        deeper = [
            child
            for item in level
            for child in (item.values() if type(item) is dict else item)
            if type(child) is dict or type(child) is list
        ]
        if not deeper:
            return False
        level = deeper
    return True


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    return False


def header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    """A request header's first value (``name`` in lower case, as ASGI gives names), read
    from the scope: Litestar's ``Headers`` of them all cost a twentieth of a GET."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class ScimResponse:
    """A SCIM response (RFC 7644 §3.1, ``application/scim+json``) as an ASGI application,
    which Litestar sends as it is when a handler returns it: what its ``ASGIResponse`` sends
    of such a response (no body nor its headers for 204 and 304, RFC 9110 §6.4.1), made at a
    fifth of the cost (a twentieth of a GET's work)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int, headers: dict[str, str] | None) -> None:
        self.status = status
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ]
        if status in _WITHOUT_BODY:
            self.body = b""
        else:
            self.body = body
            self.headers += [(b"content-type", _SCIM), (b"content-length", b"%d" % len(body))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


_WITHOUT_BODY = frozenset({204, 304})
_SCIM = SCIM_MEDIA_TYPE.encode()


def scim_response(
    content: Any = None, status_code: int = 200, headers: dict[str, str] | None = None
) -> ScimResponse:
    body = b"" if content is None else msgspec.json.encode(content)
    return ScimResponse(body, status_code, headers)


def listed(value: str | None) -> list[str] | None:
    """A comma-separated query parameter (``attributes``, ``excludedAttributes``)."""
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]
