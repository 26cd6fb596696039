"""The administrators' browser client at ``/admin/``, and the headers that make every response
safe to open in a browser."""

from __future__ import annotations

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import Scope

import client

PATH = "/admin"

# The client's own files and nothing else: no inline scripts or styles, no framing, no plugins;
# data goes only back to this server.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# Encoded once: added to every response start as they are.
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_WITH_HSTS = [*_HEADERS, (b"strict-transport-security", b"max-age=31536000")]


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The headers above for every response (static files included), with HSTS when the
    connection is TLS (added by ``scim.observability.observed``)."""
    return _WITH_HSTS if scope.get("scheme") == "https" else _HEADERS


def client_files() -> Router:
    # Revalidated on every load, so an upgrade of the server never meets a stale client.
    return create_static_files_router(
        path=PATH,
        directories=[client.DIRECTORY],
        html_mode=True,
        name="client",
        cache_control=CacheControlHeader(no_cache=True),
    )


@get("/", name="root", include_in_schema=False)
async def root() -> Redirect:
    return Redirect(f"{PATH}/")
