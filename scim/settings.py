"""Every setting the server reads, from the environment, in one place."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///scim.db"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    base_path: str = "/scim/v2"
    default_page_size: int = 100
    max_page_size: int = 1000
    # RFC 7644 §3.7.4: a first sync of 1,000 users fits in one Bulk request.
    max_payload_size: int = 4 * 1024 * 1024
    max_bulk_operations: int = 1000
    # Operations one PATCH may hold (advertised as patch.maxOperations; 413 above it).
    max_patch_operations: int = 1000
    pool_size: int = 10
    # PEM file of the CAs whose client certificates are trusted (SITHS roots).
    ca_bundle: str | None = None
    # Addresses (or networks) of TLS-terminating proxies whose certificate headers are trusted.
    trusted_proxies: tuple[str, ...] = ()
    # The header such a proxy puts nginx's $ssl_client_escaped_cert in (RFC 9440 Client-Cert
    # is always read from trusted proxies too).
    proxy_cert_header: str = "X-SSL-Client-Cert"
    # The e-service catalogue (TOML) the domain grants from; None: the one it ships.
    catalogue: str | None = None
    demo: bool = False
    # Requests per second per credential and per organisation, over all workers; 0: no limit.
    rate_limit_client: int = 2000
    rate_limit_tenant: int = 5000
    # The key cursors are signed with (RFC 9865 cursors). Every server behind one address
    # needs the same; unset, the server draws one when it starts, and cursors it handed out
    # before a restart are refused as invalidCursor.
    cursor_secret: str | None = None
    # The address clients reach this server at, outside any request: the issuer of security
    # events (with base_path) and where their keys are published (scim.events).
    public_url: str = "http://127.0.0.1:8000"
    # PEM files of the keys security events are signed with, the first signing (EC P-256 or
    # RSA); none: one key drawn once and kept in the database.
    event_keys: tuple[str, ...] = ()
    # PEM file of the CAs that push receivers' HTTPS certificates may also come from (an
    # agency's own CA), besides the public ones.
    event_ca_bundle: str | None = None
    # Seconds a poll (RFC 8936) waits for events when none are pending.
    event_poll_wait: int = 30
    # Seconds after which an event not delivered to a receiver is given up on (dead), and
    # after which delivered events are forgotten.
    event_give_up: int = 3 * 24 * 3600
    event_retention: int = 7 * 24 * 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """The settings ``environ`` (default: the process's) names, then ``overrides``."""
        env = os.environ if environ is None else environ
        read: dict[str, Any] = {}
        for setting in fields(cls):
            text = env.get(_variable(setting.name))
            if text:
                read[setting.name] = _parse(str(setting.type), text)
        for name in ("base_path", "public_url"):
            if name in read:
                read[name] = read[name].rstrip("/")
        return replace(cls(**read), **overrides)  # type: ignore[arg-type]

    def with_cursor_secret(self) -> Settings:
        """These settings with a cursor secret: the configured one, else a fresh one."""
        if self.cursor_secret:
            return self
        return replace(self, cursor_secret=secrets.token_urlsafe(32))

    def environment(self) -> dict[str, str]:
        """These settings as ``from_env`` reads them: for worker processes, which get their
        settings from the environment they inherit."""
        written: dict[str, str] = {}
        for setting in fields(self):
            value = getattr(self, setting.name)
            if value is None:
                continue
            if isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            written[_variable(setting.name)] = text
        return written


def _variable(name: str) -> str:
    return f"SCIM_{name.upper()}"


def _parse(annotation: str, text: str) -> Any:
    if annotation == "bool":
        return text == "1"
    if annotation == "int":
        return int(text)
    if annotation.startswith("tuple"):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text
