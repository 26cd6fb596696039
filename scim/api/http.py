"""Reading SCIM requests and writing SCIM responses."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from scim2_models import InvalidSyntaxException, PayloadTooLargeException

from scim.errors import SCIM_MEDIA_TYPE, UnsupportedMediaType

_ACCEPTED_BODIES = ("application/scim+json", "application/json")


def base_url(request: Request[Any, Any, Any]) -> str:
    """The SCIM API's URL as the client sees it (behind a trusted proxy: with its scheme)."""
    url = request.base_url
    scheme = request.app.state.authenticator.forwarded_scheme(request)
    if scheme:
        url = url.with_replacements(scheme=scheme)
    base_path: str = request.app.state.settings.base_path
    return str(url).rstrip("/") + base_path


async def read_json(request: Request[Any, Any, Any], max_size: int) -> dict[str, Any]:
    """The JSON object a request carries: 415 if it is not JSON, 413 if too large, 400 if broken."""
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
    if not isinstance(value, dict):
        raise InvalidSyntaxException(detail="The body must be a JSON object")
    return value


def scim_response(
    content: Any = None, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = b"" if content is None else msgspec.json.encode(content)
    return Response(
        content=body, status_code=status_code, media_type=SCIM_MEDIA_TYPE, headers=headers
    )


def listed(value: str | None) -> list[str] | None:
    """A comma-separated query parameter (``attributes``, ``excludedAttributes``)."""
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]
