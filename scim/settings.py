"""Every setting the server reads, from the environment, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

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
    pool_size: int = 10
    # PEM file of the CAs whose client certificates are trusted (SITHS roots).
    ca_bundle: str | None = None
    # Addresses (or networks) of TLS-terminating proxies whose certificate headers are trusted.
    trusted_proxies: tuple[str, ...] = ()
    # The header such a proxy puts nginx's $ssl_client_escaped_cert in (RFC 9440 Client-Cert
    # is always read from trusted proxies too).
    proxy_cert_header: str = "X-SSL-Client-Cert"
    # The e-service catalogue (TOML); None: the one shipped in extensions/catalogue.toml.
    catalogue: str | None = None
    demo: bool = False
    # Requests per second per credential and per organisation, over all workers; 0: no limit.
    rate_limit_client: int = 2000
    rate_limit_tenant: int = 5000

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=env.get("SCIM_DATABASE_URL", DEFAULT_DATABASE_URL),
            base_path=env.get("SCIM_BASE_PATH", "/scim/v2").rstrip("/"),
            default_page_size=int(env.get("SCIM_DEFAULT_PAGE_SIZE", 100)),
            max_page_size=int(env.get("SCIM_MAX_PAGE_SIZE", 1000)),
            max_payload_size=int(env.get("SCIM_MAX_PAYLOAD_SIZE", 4 * 1024 * 1024)),
            max_bulk_operations=int(env.get("SCIM_MAX_BULK_OPERATIONS", 1000)),
            pool_size=int(env.get("SCIM_POOL_SIZE", 10)),
            ca_bundle=env.get("SCIM_CA_BUNDLE") or None,
            trusted_proxies=tuple(
                part.strip()
                for part in env.get("SCIM_TRUSTED_PROXIES", "").split(",")
                if part.strip()
            ),
            proxy_cert_header=env.get("SCIM_PROXY_CERT_HEADER", "X-SSL-Client-Cert"),
            catalogue=env.get("SCIM_CATALOGUE") or None,
            demo=env.get("SCIM_DEMO", "") == "1",
            rate_limit_client=int(env.get("SCIM_RATE_LIMIT_CLIENT", 2000)),
            rate_limit_tenant=int(env.get("SCIM_RATE_LIMIT_TENANT", 5000)),
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]
