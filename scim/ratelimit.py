"""Per-client and per-organisation rate limits, shared by every worker through the database.

Each worker counts requests per key and window (one second by default) in memory and decides
at once: over the limit when what all workers had counted at the last synchronisation, plus
what this worker counted since, reaches it. A background task adds this worker's counts to
``rate_counts`` and reads the sums back a few times a second, so the request path never waits
for the database and every worker sees the others' traffic within one synchronisation.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field

from scim2_models import SCIMException
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.auth.principal import Principal
from scim.storage import rate_counts

logger = logging.getLogger("scim.ratelimit")

KEEP_WINDOWS_FOR = 60  # seconds


class RateLimited(SCIMException):
    """RFC 6585 §4: too many requests; ``Retry-After`` says when to come back."""

    status = 429
    _default_detail = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail=detail)
        self.retry_after = retry_after


@dataclass
class RateLimiter:
    engine: AsyncEngine
    per_client: int  # requests per window per credential (token, certificate, session); 0: none
    per_tenant: int  # requests per window per organisation, all its callers together; 0: none
    window: float = 1.0
    sync_every: float = 0.2
    _local: Counter[tuple[str, int]] = field(default_factory=Counter)
    _shared: dict[tuple[str, int], int] = field(default_factory=dict)
    _dropped_before: int = 0  # the oldest window kept at the last sync that dropped some
    # Set by the app's shutdown: ``run`` ends after one more sync.
    stopping: bool = False

    @property
    def enabled(self) -> bool:
        return self.per_client > 0 or self.per_tenant > 0

    def admit(self, principal: Principal) -> None:
        """Count the request, or refuse it with 429 if its client or tenant is over the limit."""
        now = time.time()
        window = int(now // self.window)
        counting: list[tuple[str, int]] = []
        for key, limit, whose in (
            (f"client:{principal.tenant.id}:{principal.actor}", self.per_client, "this client"),
            (f"tenant:{principal.tenant.id}", self.per_tenant, "this organisation"),
        ):
            if limit <= 0:
                continue
            counted = self._shared.get((key, window), 0) + self._local[(key, window)]
            if counted >= limit:
                retry_after = max(1, math.ceil((window + 1) * self.window - now))
                raise RateLimited(
                    f"More than {limit} requests per {self.window:g} s for {whose}; "
                    f"retry after {retry_after} s",
                    retry_after,
                )
            counting.append((key, window))
        for counted_key in counting:
            self._local[counted_key] += 1

    async def sync(self) -> None:
        """Add what this worker counted to the shared counts, and read the sums back."""
        counted, self._local = self._local, Counter()
        if not counted:
            return
        oldest = int((time.time() - KEEP_WINDOWS_FOR) // self.window)
        # The old windows are dropped when there is one more to drop, not at every sync.
        dropping = oldest if oldest > self._dropped_before else None
        try:
            self._shared.update(await rate_counts.add(self.engine, counted, dropping))
        except Exception:
            # The database is away: keep the counts for the next round; requests go on being
            # decided on what is known.
            self._local.update(counted)
            raise
        if dropping is not None:
            self._dropped_before = dropping
        current = int(time.time() // self.window)
        self._shared = {key: value for key, value in self._shared.items() if key[1] >= current - 1}

    async def run(self) -> None:
        """Synchronise until ``stopping``, then once more. Never cancelled halfway: a sync
        cut off inside its transaction would leave SQLite's write lock with a connection
        nobody closes, and every later writer waiting for it."""
        while not self.stopping:
            await asyncio.sleep(self.sync_every)
            try:
                await self.sync()
            except Exception as error:
                logger.warning(
                    "rate counts not synchronised", extra={"error": type(error).__name__}
                )
