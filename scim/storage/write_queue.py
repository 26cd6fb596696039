"""SQLite's writers of one process queue for its write lock in the process.

SQLite lets one transaction write at a time. A transaction that finds the lock taken is
put to sleep by SQLite's busy handler and tries again: after 1, 2, 5, 10 ... and then
every 100 ms. With eight clients writing at once through one worker, a PATCH or POST
waited up to 0.6 s (POST 1.2 s) at the 99th percentile, while the lock was mostly free
between a commit and the next sleeper's wake-up. Here every transaction of the process
that writes first takes its turn in a FIFO queue (an ``asyncio.Lock``) and only then asks
SQLite for the lock (``BEGIN IMMEDIATE``), which is then free unless another process holds
it (several workers: their transactions still meet in SQLite's busy handler).

A turn ends when the transaction commits or rolls back (the engine's events, just before
the driver's commit: a next writer that asks SQLite during those few hundred microseconds
waits a millisecond in the busy handler) or, should neither be seen, when its connection
goes back to the pool. A writer that waits longer than SQLite itself would
(``BUSY_TIMEOUT``) gets the error SQLite gives then: the database is locked (503).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy.exc import OperationalError

# Seconds a writer waits for its turn, as SQLite's busy handler waits for the lock.
BUSY_TIMEOUT = 10.0


class WriteQueue:
    """The turns of one engine's writing transactions, by their driver connection."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holders: tuple[Any, ...] = ()

    def _current_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or (self._loop is not loop and not self._lock.locked()):
            # A lock waits on the loop it was first waited on: a new one for a new loop
            # (the CLI runs each command in its own).
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock

    async def take(self, *holders: Any, timeout: float = BUSY_TIMEOUT) -> None:
        """Wait for the turn of a transaction, known by any of ``holders`` (its connection,
        its driver's connection); OperationalError after ``timeout`` seconds, as SQLite's
        "database is locked"."""
        lock = self._current_lock()
        try:
            await asyncio.wait_for(lock.acquire(), timeout)
        except TimeoutError:
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            ) from None
        self._holders = holders

    def end(self, holder: Any) -> None:
        """The turn of the transaction ``holder`` knows is over, if it was its."""
        if any(held is holder for held in self._holders):
            self._holders = ()
            assert self._lock is not None
            self._lock.release()
