"""What a receiver's push URL may be: events go only where the operator registered, over
HTTPS, or over plain HTTP to this host itself (RFC 8935 §5.3: TLS; a receiver on the same
host is reached without leaving it)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def push_url_problem(url: str) -> str | None:
    """Why ``url`` may not receive pushed events; None if it may."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        return f"not a URL: {error}"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "the push URL must be an absolute https:// URL"
    if parts.username or parts.password:
        return "the push URL must not carry credentials"
    if parts.fragment:
        return "the push URL must not have a fragment"
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return "plain http:// is only for a receiver on this host (loopback); use https://"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
