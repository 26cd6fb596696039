"""Credentials verified against the database, kept in each worker's memory, so that an
authenticated request needs no database round trip of its own; and how a change of who may
call reaches every worker before the command that made it returns.

- PostgreSQL: a change notifies ``CHANNEL`` in its own transaction. After the commit,
  ``confirm`` asks every worker's listener (``scim.storage.listening``) once more and waits
  until each has forgotten what it kept and answered on ``ACK_CHANNEL``. A worker whose
  listener is down trusts nothing it keeps and asks the database, as without the cache.
- SQLite: the database and all its workers are on one machine. ``confirm`` replaces a stamp
  file beside the database, and a worker looks at it (one ``stat``) before it trusts what
  it keeps.

Only what the operator registers is kept: system clients by token or certificate and
administrators by certificate. A person with the user role is read each time (their User
resource may change with any write), and so are browser sessions (each request moves their
idle deadline). A refused credential is never kept.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.auth.principal import Principal
from scim.storage import listening

CHANNEL = "scim_credentials"
ACK_CHANNEL = "scim_credentials_ack"
# How long ``confirm`` waits for the workers' answers.
CONFIRM_WAIT = 5.0
# Credentials kept per worker; past it the oldest are forgotten.
MAX_KEPT = 10_000


def stamp_file(url: URL) -> Path | None:
    """The stamp beside a SQLite database file (None for an in-memory one, or PostgreSQL)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    return Path(f"{database}.credentials")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


class Verified:
    """One worker's kept principals, trusted while the way changes reach it is watched
    (``watching``, set by the server's lifespan; requests served without it, as by an
    in-process test client, always ask the database)."""

    def __init__(self, engine: AsyncEngine, listener: listening.Listener) -> None:
        self.listener = listener
        self.stamp_file = stamp_file(engine.url)
        self.postgres = engine.dialect.name == "postgresql"
        self.watching = False
        # Moves whenever everything kept is forgotten: a principal read from the database
        # before that is not kept (it may predate the change that made it be forgotten).
        self.generation = 0
        self._kept: dict[str, tuple[Principal, datetime | None]] = {}
        self._stamp = _stamp(self.stamp_file) if self.stamp_file else None
        self._answering: set[asyncio.Task[None]] = set()
        listener.on(CHANNEL, self._changed)
        listener.on_state(lambda _up: self.forget())

    def forget(self) -> None:
        self._kept.clear()
        self.generation += 1

    def _trusted(self) -> bool:
        if not self.watching:
            return False
        if self.postgres:
            return self.listener.up
        if self.stamp_file is None:
            return False
        stamp = _stamp(self.stamp_file)
        if stamp != self._stamp:
            self._stamp = stamp
            self.forget()
        return True

    def get(self, key: str, now: datetime) -> Principal | None:
        """The principal kept for ``key`` if it may be trusted now and has not expired."""
        if not self._trusted():
            return None
        kept = self._kept.get(key)
        if kept is None:
            return None
        principal, expires = kept
        if expires is not None and expires <= now:
            del self._kept[key]
            return None
        return principal

    def keep(
        self, key: str, principal: Principal, expires: datetime | None, generation: int
    ) -> None:
        """Keep a principal read from the database when the generation was ``generation``."""
        if generation != self.generation or not self._trusted():
            return
        if len(self._kept) >= MAX_KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = (principal, expires)

    def _changed(self, _connection: Any, _pid: int, payload: str) -> None:
        self.forget()
        if payload:  # ``confirm`` waits for the answer
            answering = asyncio.ensure_future(self.listener.notify(ACK_CHANNEL, payload))
            self._answering.add(answering)
            answering.add_done_callback(self._answering.discard)


# -- the side that changes credentials ------------------------------------------------------


async def changed(connection: AsyncConnection) -> None:
    """In a transaction that changes who may call or for what: every worker forgets what it
    kept once it commits (PostgreSQL; ``confirm`` makes sure of it)."""
    await listening.at_commit(connection, CHANNEL)


async def confirm(engine: AsyncEngine) -> int:
    """After such a commit: wait until every worker has forgotten what it kept. Returns how
    many listening workers did not answer within ``CONFIRM_WAIT`` seconds."""
    if engine.dialect.name != "postgresql":
        if path := stamp_file(engine.url):
            fresh = path.with_name(path.name + f".{secrets.token_hex(4)}")
            fresh.write_bytes(secrets.token_bytes(8))
            os.replace(fresh, path)
        return 0
    connection = await asyncpg.connect(listening.dsn(engine))
    try:
        return await _answered(connection)
    finally:
        with suppress(Exception):
            await connection.close()


async def _answered(connection: Any) -> int:
    nonce = secrets.token_hex(8)
    answered: set[int] = set()
    arrived = asyncio.Event()

    def answer(_connection: Any, pid: int, _channel: str, payload: str) -> None:
        if payload == nonce:
            answered.add(pid)
            arrived.set()

    async def listeners() -> set[int]:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            listening.APPLICATION_NAME,
        )
        return {row["pid"] for row in rows}

    await connection.add_listener(ACK_CHANNEL, answer)
    # Those listening now may hold what the change made stale; one that connects later has
    # forgotten everything on connecting, and one that is lost meanwhile is not waited for.
    expected = await listeners()
    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, nonce)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONFIRM_WAIT
    while True:
        waiting = expected - answered
        if waiting:
            waiting &= await listeners()
        if not waiting:
            return 0
        remaining = deadline - loop.time()
        if remaining <= 0:
            return len(waiting)
        arrived.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), min(remaining, 0.2))
