"""Reading SCIM requests and writing SCIM responses."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.response.base import ASGIResponse
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
        request.headers.get("host"),
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
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in _ACCEPTED_BODIES:
        raise UnsupportedMediaType()
    body = await request.body()
    # RFC 7644 §3.7.4 names maxPayloadSize; the same limit applies to every body.
    if len(body) > max_size:
        raise PayloadTooLargeException(
            detail=f"The body is {len(body)} bytes; the limit (maxPayloadSize) is {max_size}"
        )
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


def scim_response(
    content: Any = None, status_code: int = 200, headers: dict[str, str] | None = None
) -> ASGIResponse:
    """A SCIM response: Litestar's ASGI response itself, which a handler's answer goes out
    as it is (a ``Response`` would first be made one: a thirtieth of a GET's work)."""
    body = b"" if content is None else msgspec.json.encode(content)
    return ASGIResponse(
        body=body, status_code=status_code, media_type=SCIM_MEDIA_TYPE, headers=headers
    )


def listed(value: str | None) -> list[str] | None:
    """A comma-separated query parameter (``attributes``, ``excludedAttributes``)."""
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]
