"""PostgreSQL: one connection per worker that listens for what other processes commit
(``LISTEN``): events due (``scim.storage.events.CHANNEL``) and changed credentials
(``scim.auth.verified.CHANNEL``). Its ``application_name`` lets a command find every
worker's listener in ``pg_stat_activity``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

APPLICATION_NAME = "scim-listener"

# Told (connection, notifying backend's pid, payload) for each notification on its channel.
Handler = Callable[[Any, int, str], None]


async def at_commit(connection: AsyncConnection, channel: str) -> None:
    """Tell every worker's listener on ``channel`` once this transaction commits (PostgreSQL;
    SQLite has no listeners)."""
    if connection.dialect.name == "postgresql":
        await connection.execute(select(func.pg_notify(channel, "")))


def dsn(engine: AsyncEngine) -> str:
    """The engine's database as asyncpg's own connections name it."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Listener:
    """Connected while ``up``; each time it connects or is lost, ``on_state`` is told first,
    so that nothing kept in memory outlives a time when a notification could be missed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.enabled = engine.dialect.name == "postgresql"
        self.engine = engine
        self.up = False
        self._handlers: dict[str, Handler] = {}
        self._state: list[Callable[[bool], None]] = []
        self._connection: Any = None
        self._sending = asyncio.Lock()

    def on(self, channel: str, handler: Handler) -> None:
        self._handlers[channel] = handler

    def on_state(self, told: Callable[[bool], None]) -> None:
        self._state.append(told)

    def _set(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            for told in self._state:
                told(up)

    async def notify(self, channel: str, payload: str) -> None:
        """Notify through the listening connection itself, so that the notification names
        its backend (an answer to a command that waits for every listener)."""
        connection = self._connection
        if connection is None:
            return
        async with self._sending:
            with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await connection.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def run(self) -> None:
        """Listen until cancelled, connecting again a second after the connection is lost."""
        if not self.enabled:
            return
        while True:
            with suppress(OSError, asyncpg.PostgresError):
                await self._once()
            await asyncio.sleep(1)

    async def _once(self) -> None:
        connection = await asyncpg.connect(
            dsn(self.engine), server_settings={"application_name": APPLICATION_NAME}
        )
        lost = asyncio.Event()

        def terminated(_: Any) -> None:
            self._set(False)
            lost.set()

        connection.add_termination_listener(terminated)
        try:
            for channel, handler in self._handlers.items():
                await connection.add_listener(
                    channel, lambda c, pid, _channel, payload, h=handler: h(c, pid, payload)
                )
            self._connection = connection
            self._set(True)
            await lost.wait()
        finally:
            self._connection = None
            self._set(False)
            with suppress(Exception):
                await connection.close()
