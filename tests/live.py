"""A real server on loopback, and Debian's Chromium driven by Playwright for the browser
client's end-to-end tests. No browser is ever downloaded: Playwright only drives
``/usr/bin/chromium``, which ``.ci/run`` installs with apt-get."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from scim.app import create_app
from scim.hooks import Domain
from scim.operator import Operator
from scim.settings import Settings
from scim.storage.database import create_engine, upgrade

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Where the browser tests leave their screenshots: a temporary directory, unless told to
# refresh the README's (``SCIM_SCREENSHOTS=client/screenshots pytest tests/test_client.py``).
SCREENSHOTS = Path(
    os.environ.get("SCIM_SCREENSHOTS") or Path(tempfile.gettempdir()) / "scim-screenshots"
)


@contextmanager
def live_server(settings: Settings, domain: Domain | None = None, port: int = 0) -> Iterator[str]:
    """The app (with ``domain``, else the e-service domain) served by uvicorn on loopback
    (``port``, else a free one); yields the server's root URL."""
    with serving(create_app(settings, domain), port, lifespan="on") as url:
        yield url


@contextmanager
def serving(app: Any, port: int = 0, lifespan: str = "off", **tls: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on loopback, in a thread of its own (with its own event
    loop, where its database connections live); yields its root URL (https with ``tls``:
    uvicorn's ``ssl_certfile`` and ``ssl_keyfile``)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        lifespan=lifespan,
        **tls,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        threading.Event().wait(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def migrated_with_stockholm(database_url: str, services: Sequence[str] = ()) -> str:
    """Migrate the database and register Stockholms stad (with ``services``); the bearer
    token of its identity system."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            operator = Operator(connection, "tests")
            tenant = await operator.add_tenant("2120000142", "Stockholms stad", "kommun")
            if services:
                await operator.set_agreements(tenant, list(services))
            return (await operator.issue_token(tenant))[1]
    finally:
        await engine.dispose()
