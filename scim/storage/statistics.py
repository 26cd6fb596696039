"""SQLite: the planner's statistics kept up to date, as PostgreSQL's autovacuum keeps its own.

SQLite plans by the statistics ``ANALYZE`` leaves (``sqlite_stat1``) and by guesses where
there are none; nothing else makes them. A database migrated empty and filled by provisioning
kept the guesses: an index equal on the organisation and the type was taken to give ten rows,
so a page of a rare fragment's matches walked the organisation's 20,000 users rather than
read the few rows the names' trigrams gave it (``scim.storage.trigrams``). So each worker
analyses the database soon after it starts and then every ``EVERY`` seconds, each index
sampled (``analysis_limit``): a few milliseconds, under the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("scim.statistics")

FIRST = 5.0  # seconds after the start
EVERY = 600.0
# Rows read per index: enough for the planner to tell a selective index from one that is not.
_SAMPLE = 1000


async def analyse(engine: AsyncEngine) -> None:
    """Make SQLite's statistics of every table and index afresh."""
    async with engine.begin() as connection:
        await connection.execute(text(f"PRAGMA analysis_limit = {_SAMPLE}"))
        await connection.execute(text("ANALYZE"))


async def keep_analysed(engine: AsyncEngine) -> None:
    """``analyse`` after ``FIRST`` seconds, then every ``EVERY``, until cancelled (SQLite
    only). An analysis under way when cancelled is finished first: a statement cut off in
    SQLite keeps its write lock from every later writer."""
    if engine.dialect.name != "sqlite":
        return
    wait = FIRST
    while True:
        await asyncio.sleep(wait)
        wait = EVERY
        analysing = asyncio.ensure_future(analyse(engine))
        try:
            await asyncio.shield(analysing)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await analysing
            raise
        except Exception:
            logger.warning("SQLite's statistics were not made; trying again", exc_info=True)
