"""SQLite's writers take turns for its write lock: in a process, and between processes.

SQLite lets one transaction write at a time. A transaction that finds the lock taken is
put to sleep by SQLite's busy handler and tries again: after 1, 2, 5, 10 ... and then
every 100 ms. With eight clients writing at once through one worker, a PATCH or POST
waited up to 0.6 s (POST 1.2 s) at the 99th percentile, while the lock was mostly free
between a commit and the next sleeper's wake-up. Here every transaction of the process
that writes first takes its turn in a FIFO queue (an ``asyncio.Lock``) and only then asks
SQLite for the lock (``BEGIN IMMEDIATE``).

Between processes (several workers, a command of the CLI) the turn is an exclusive lock on
a file beside the database (``<database>-writers``, ``flock``), which the process's writer
of the turn takes before SQLite's: a process waiting for it is woken by the kernel as soon
as it is let go. Without it, the writers of two workers met in SQLite's busy handler and
slept there (a PATCH's 99th percentile 1.1 to 2.3 s with two workers, one 0.04 s). A
process keeps its turn for the writers of its own that are waiting already, up to ``RUN``
in a row: handing the turn over after every transaction cost a quarter of the writes (each
hand-over wakes a thread and a loop of the other process); after up to 32, nothing
measurable. Two processes of eight writers each, on one core: 99th percentile 160-900 ms
in SQLite's busy handler, 110-130 ms in turns.

A turn ends when the transaction commits or rolls back (the engine's events, just before
the driver's commit: a next writer that asks SQLite during those few hundred microseconds
waits a millisecond in the busy handler) or, should neither be seen, when its connection
goes back to the pool. A writer that waits longer than SQLite itself would
(``BUSY_TIMEOUT``) gets the error SQLite gives then: the database is locked (503).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

# Seconds a writer waits for its turn, as SQLite's busy handler waits for the lock.
BUSY_TIMEOUT = 10.0
# Transactions a process makes in a row while its own writers wait and other processes'
# may: at a few milliseconds each, the others wait a tenth of a second at most.
RUN = 32


def _locked() -> OperationalError:
    """What SQLite's busy handler says when it gives up (503, ``scim.errors``)."""
    return OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))


class WriteQueue:
    """The turns of one engine's writing transactions, by their driver connection; with
    ``database``, the file of a database, also between the processes writing it."""

    def __init__(self, database: Path | None = None) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holders: tuple[Any, ...] = ()
        self._processes = None if database is None else ProcessTurns(Path(f"{database}-writers"))
        self._waiting = 0  # writers of this process waiting for their turn
        self._run = 0  # transactions made in a row in the process's turn

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._waiting += 1
        try:
            await asyncio.wait_for(lock.acquire(), timeout)
        except BaseException as error:
            if not lock.locked():
                self._let_go()  # the turn kept for the writers waiting: none is any more
            if isinstance(error, TimeoutError):
                raise _locked() from None
            raise
        finally:
            self._waiting -= 1
        processes = self._processes
        if processes is not None and not processes.held:
            try:
                await processes.take(deadline - loop.time())
            except BaseException:
                lock.release()
                raise
        self._holders = holders

    def end(self, holder: Any) -> None:
        """The turn of the transaction ``holder`` knows is over, if it was its."""
        if any(held is holder for held in self._holders):
            self._holders = ()
            self._run += 1
            if not self._waiting or self._run >= RUN:
                self._let_go()
            assert self._lock is not None
            self._lock.release()

    def _let_go(self) -> None:
        """The process's turn given to the other processes."""
        self._run = 0
        if self._processes is not None and self._processes.held:
            self._processes.end()


def _done(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_result(None)


class ProcessTurns:
    """The turn of one process among those writing a database: an exclusive ``flock`` of
    ``path``, taken by one writer of the process at a time (``WriteQueue``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: int | None = None
        self._opened_by: int | None = None
        # The descriptor the turn is held by: the process's own, or the one of the wait that
        # got it; None while the process does not hold the turn.
        self._holding: int | None = None

    @property
    def held(self) -> bool:
        return self._holding is not None

    def _descriptor(self) -> int:
        # Opened by each process itself: a descriptor inherited across a fork would share
        # its lock with the parent's.
        if self._file is None or self._opened_by != os.getpid():
            self._file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._opened_by = os.getpid()
        return self._file

    async def take(self, timeout: float) -> None:
        """The process's turn, waited for in a thread of its own (the kernel wakes it when
        the lock is let go); OperationalError after ``timeout`` seconds, as SQLite's "database is
        locked". A wait given up on lets the lock go at once if it gets it later."""
        descriptor = self._descriptor()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._holding = descriptor
            return
        except BlockingIOError:
            pass
        # The wait has a descriptor of its own. A flock belongs to an open file: a wait given
        # up on that got the lock later and let it go on the process's descriptor would let
        # go of a turn the process had taken again meanwhile.
        own = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        guard = threading.Lock()
        state = {"taken": False, "given_up": False}

        loop = asyncio.get_running_loop()
        waiting = loop.create_future()

        def wait() -> None:
            fcntl.flock(own, fcntl.LOCK_EX)
            with guard:
                if state["given_up"]:
                    os.close(own)  # and its lock with it
                    return
                state["taken"] = True
            loop.call_soon_threadsafe(_done, waiting)

        # A daemon thread: one waiting on a process that never lets go must not keep this
        # one from exiting.
        threading.Thread(target=wait, name="sqlite-writers-turn", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(waiting), max(timeout, 0.0))
        except BaseException as error:
            with guard:
                taken = state["taken"]
                state["given_up"] = not taken
            timed_out = isinstance(error, TimeoutError)
            if not taken and timed_out:
                raise _locked() from None
            if not taken:
                raise
            if not timed_out:
                os.close(own)  # cancelled as its turn came: let go
                raise
            # The turn came as the wait ran out: it is this writer's.
        self._holding = own

    def end(self) -> None:
        holding, self._holding = self._holding, None
        if holding is None or self._opened_by != os.getpid():
            return  # none held, or the parent's (a descriptor inherited across a fork)
        if holding == self._file:
            fcntl.flock(holding, fcntl.LOCK_UN)
        else:
            os.close(holding)  # a wait's own: closing it lets the lock go
