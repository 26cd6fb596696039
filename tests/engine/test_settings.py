"""Settings: read from the environment by one table, and written back for worker processes."""

from __future__ import annotations

from dataclasses import fields

from scim.settings import Settings


def test_every_setting_is_read_from_its_variable() -> None:
    environ = {
        "SCIM_DATABASE_URL": "postgresql+asyncpg://db/scim",
        "SCIM_BASE_PATH": "/api/scim/",
        "SCIM_POOL_SIZE": "4",
        "SCIM_CA_BUNDLE": "/etc/scim/ca.pem",
        "SCIM_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.0/24,",
        "SCIM_DEMO": "1",
        "SCIM_CATALOGUE": "",
    }
    settings = Settings.from_env(environ)
    assert settings.database_url == "postgresql+asyncpg://db/scim"
    assert settings.base_path == "/api/scim"
    assert settings.pool_size == 4
    assert settings.ca_bundle == "/etc/scim/ca.pem"
    assert settings.trusted_proxies == ("10.0.0.1", "10.0.0.0/24")
    assert settings.demo is True
    assert settings.catalogue is None  # empty is unset
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"SCIM_DEMO": "0"}, pool_size=2) == Settings(pool_size=2)


def test_the_environment_written_for_workers_reads_back_the_same() -> None:
    settings = Settings(
        database_url="sqlite+aiosqlite:///x.db",
        max_page_size=7,
        ca_bundle="/ca.pem",
        trusted_proxies=("127.0.0.1", "::1"),
        demo=True,
    )
    written = settings.environment()
    assert set(written) <= {f"SCIM_{field.name.upper()}" for field in fields(Settings)}
    assert Settings.from_env(written) == settings
    assert Settings.from_env(Settings().environment()) == Settings()
