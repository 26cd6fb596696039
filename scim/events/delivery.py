"""Security Event Tokens made from the outbox and delivered: pushed (RFC 8935) or polled
(RFC 8936).

Each worker runs ``Transmitter.run``. A push receiver is leased to one worker at a time
(``scim.storage.events.lease``), which sends its pending events one by one in the order they
were written, so a receiver sees each user's changes in order. A receiver that fails is
tried again after a back-off that doubles up to ``MAX_BACKOFF``; an event it refuses as
malformed, or that has waited ``event_give_up`` seconds, is dead: kept for the operator to
see and replay (``scim receiver status``, ``scim receiver replay``).

A worker is woken when a transaction of its own commits events, on PostgreSQL also by a
notification when any other worker or an operator's command does (``Transmitter.listen_to``),
and otherwise looks every ``POLL_INTERVAL`` seconds. SETs are signed
when sent, with the signing key of that moment (``scim.events.signing``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import certifi
import httpx
import msgspec
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.events.changes import (
    ACTIVATE,
    CREATE,
    DEACTIVATE,
    DELETE,
    PATCH,
    PUT,
    state_changed,
)
from scim.events.signing import Signer, load_signer
from scim.hooks import Domain
from scim.settings import Settings
from scim.storage import database
from scim.storage import events as stored
from scim.storage.listening import Listener

logger = logging.getLogger("scim.events")

# RFC 9967 §2.4: provisioning events; notices carry the changed attributes' names.
EVENT_URIS = {
    CREATE: "urn:ietf:params:scim:event:prov:create:notice",
    PATCH: "urn:ietf:params:scim:event:prov:patch:notice",
    PUT: "urn:ietf:params:scim:event:prov:put:notice",
    DELETE: "urn:ietf:params:scim:event:prov:delete",
    ACTIVATE: "urn:ietf:params:scim:event:prov:activate",
    DEACTIVATE: "urn:ietf:params:scim:event:prov:deactivate",
}
_WITHOUT_PAYLOAD = (DELETE, ACTIVATE, DEACTIVATE)

POLL_INTERVAL = 0.5
MAX_BACKOFF = 15.0
_LEASE = timedelta(seconds=60)
_BATCH = 200
_PUSH_TIMEOUT = 10.0
# RFC 8935 §2.3 errors that no retry mends: the SET itself is refused.
_PERMANENT = {"invalid_request", "invalid_issuer", "invalid_audience"}
# RFC 8936 §2.4: a polled SET not acknowledged is handed out again after this long.
REDELIVER_AFTER = timedelta(seconds=30)
_PRUNE_EVERY = 3600.0
_COUNT_EVERY = 10.0

DELIVERED = Counter(
    "scim_events_delivered_total", "Security events delivered to receivers", ["mode"]
)
FAILURES = Counter(
    "scim_event_delivery_failures_total", "Pushes of security events that failed", ["reason"]
)
LATENCY = Histogram(
    "scim_event_delivery_seconds",
    "From the change to its event's delivery",
    ["mode"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
PENDING = Gauge(
    "scim_events_pending",
    "Security event deliveries waiting, over all receivers",
    multiprocess_mode="max",
)


def jti(receiver_id: str, seq: int) -> str:
    """The SET's id: the same each time one event is sent to one receiver (a receiver drops
    repeats by it), unique over receivers and events."""
    return f"{seq}-{receiver_id}"


def seq_of(token_id: str, receiver_id: str) -> int | None:
    """The event a receiver's ``jti`` names; None if it is not one of its SETs."""
    seq, _, receiver = token_id.partition("-")
    if receiver != receiver_id or not seq.isdigit() or len(seq) > 18:
        return None
    return int(seq)


class Transmitter:
    """Makes SETs and delivers them, for one worker."""

    def __init__(self, engine: AsyncEngine, settings: Settings, domain: Domain) -> None:
        self.engine = engine
        # Reads need no transaction (and on SQLite must not take its write lock).
        self.reads = database.reads(engine)
        self.settings = settings
        self.domain = domain
        self.issuer = f"{settings.public_url}{settings.base_path}"
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Set (and replaced) when events commit here: whoever waits on it wakes.
        self._committed = asyncio.Event()
        self._signer: Signer | None = None
        self._client: httpx.AsyncClient | None = None
        self._pruned = self._counted = -_PRUNE_EVERY

    def committed(self) -> None:
        """Events were committed (here, or anywhere as a notification says): deliver them
        now rather than at the next look."""
        self._committed.set()
        self._committed = asyncio.Event()

    @staticmethod
    async def _until(event: asyncio.Event, timeout: float) -> None:
        """Until ``event`` is set, or ``timeout`` seconds. ``asyncio.timeout``, not
        ``wait_for``: Python 3.11's ``wait_for`` swallows a cancellation that comes as the
        event is set, and the loop then outlived the server's stop, leasing receivers it
        never handed back (a restart's deliveries waited out the lease)."""
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    async def signer(self) -> Signer:
        if self._signer is None:
            self._signer = await load_signer(self.settings.event_keys, self.engine)
        return self._signer

    # -- the SET ---------------------------------------------------------------------

    def claims(self, event: Row[Any], receiver: Row[Any]) -> dict[str, Any]:
        """RFC 8417 §2.2 and RFC 9967 §2: the SET of one event for one receiver."""
        payload: dict[str, Any] = {}
        if event.event not in _WITHOUT_PAYLOAD:
            attributes = event.attributes
            if isinstance(attributes, str | bytes):
                attributes = msgspec.json.decode(attributes)
            payload["attributes"] = attributes or []
        subject: dict[str, Any] = {
            "format": "scim",
            "uri": f"/{event.resource_type}s/{event.resource_id}",
            "id": event.resource_id,
        }
        if event.person is not None:
            subject["hsaId"] = event.person
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
        return {
            "iss": self.issuer,
            "iat": int(time.time()),
            "jti": jti(receiver.id, event.seq),
            "aud": receiver.aud,
            "txn": event.txn,
            "toe": int(at.timestamp()),
            "sub_id": subject,
            "tenant": event.org_number,
            "events": {EVENT_URIS[event.event]: payload},
        }

    async def sign(self, event: Row[Any], receiver: Row[Any]) -> str:
        signer = await self.signer()
        return signer.sign(msgspec.json.encode(self.claims(event, receiver)))

    # -- push ------------------------------------------------------------------------

    def listen_to(self, listener: Listener) -> None:
        """PostgreSQL: wake on every commit of events, whichever worker or command made it
        (``stored.notify``). While the listener is down, the look every ``POLL_INTERVAL``
        seconds still finds them."""
        listener.on(stored.CHANNEL, lambda *_: self.committed())

    async def run(self) -> None:
        """Tell what a change of the domain's state (its catalogue) made, then deliver until
        cancelled."""
        try:
            async with self.engine.begin() as connection:
                told = await state_changed(connection, self.domain)
            if told:
                logger.info("the domain's state changed", extra={"events": told})
                self.committed()
        except Exception:
            logger.exception("the events of the domain's changed state were not written")
        while True:
            # Taken before looking: events committed meanwhile have set it.
            committed = self._committed
            try:
                busy = await self.push_once()
                await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("security event delivery failed; trying again")
                busy = False
                await asyncio.sleep(1)
            if not busy:
                await self._until(committed, POLL_INTERVAL)

    async def close(self) -> None:
        """Once ``run`` is cancelled: hand back the leases it holds (a release cut short by
        the cancellation would leave a receiver to wait out the lease, a minute, after a
        restart), then close the HTTP client."""
        with suppress(Exception):  # the database away: the lease runs out instead
            async with self.engine.begin() as connection:
                await stored.hand_back(connection, self.owner)
        if self._client is not None:
            await self._client.aclose()

    async def push_once(self) -> bool:
        """Lease one receiver with events due and push them; whether there was one."""
        now = datetime.now(UTC)
        async with self.reads.connect() as connection:
            if not await stored.any_due(connection, self.owner, now):
                return False
        async with self.engine.begin() as connection:
            receiver = await stored.lease(connection, self.owner, now, now + _LEASE)
        if receiver is None:
            return False
        failures, retry_at, error = 0, None, None
        try:
            failures, retry_at, error = await self._push_to(receiver)
        finally:
            async with self.engine.begin() as connection:
                await stored.release(
                    connection,
                    receiver.id,
                    self.owner,
                    failures=failures,
                    retry_at=retry_at,
                    error=error,
                )
        return True

    async def _push_to(self, receiver: Row[Any]) -> tuple[int, datetime | None, str | None]:
        """Push the receiver's pending events in order until none is left or one fails:
        its failures, when to try again and why (0, None, None if all went)."""
        client = self._http()
        give_up = timedelta(seconds=self.settings.event_give_up)
        while True:
            async with self.reads.connect() as connection:
                events = await stored.due(connection, receiver.id, _BATCH)
            if not events:
                return 0, None, None
            delivered: list[int] = []
            dead: list[tuple[int, str]] = []
            failed: str | None = None
            for event in events:
                token = await self.sign(event, receiver)
                failed, permanent = await self._post(client, receiver.push_url, token)
                if failed is None:
                    delivered.append(event.seq)
                    self._observe(event, "push")
                elif permanent:
                    dead.append((event.seq, failed))
                    failed = None
                else:
                    break
            now = datetime.now(UTC)
            async with self.engine.begin() as connection:
                await stored.settle(connection, receiver.id, delivered, stored.DELIVERED, now)
                for seq, reason in dead:
                    await stored.settle(connection, receiver.id, [seq], stored.DEAD, now, reason)
                if failed is not None:
                    head = events[len(delivered) + len(dead)]
                    await stored.attempted(connection, receiver.id, [head.seq], now)
                    await stored.expire(connection, receiver.id, now - give_up)
                else:
                    await stored.renew(connection, receiver.id, self.owner, now + _LEASE)
            if failed is not None:
                failures = receiver.failures + 1
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(failures - 1, 10))
                return failures, now + timedelta(seconds=delay), failed

    async def _post(
        self, client: httpx.AsyncClient, url: str, token: str
    ) -> tuple[str | None, bool]:
        """RFC 8935 §2: one SET POSTed; None if accepted (202), else why, and whether the
        receiver refused the SET itself (no retry mends that)."""
        try:
            response = await client.post(
                url,
                content=token,
                headers={"Content-Type": "application/secevent+jwt", "Accept": "application/json"},
            )
        except httpx.HTTPError as error:
            FAILURES.labels("unreachable").inc()
            return f"{type(error).__name__}: {error}"[:500], False
        if 200 <= response.status_code < 300:
            return None, False
        err = ""
        if response.status_code == 400:
            try:
                err = str(response.json().get("err", ""))
            except ValueError:
                err = ""
        FAILURES.labels(err or str(response.status_code)).inc()
        reason = f"HTTP {response.status_code}" + (f" {err}" if err else "")
        return reason, err in _PERMANENT

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Only registered URLs are reached; redirects are not followed to others. A
            # receiver's certificate must lead to a public CA or to ``event_ca_bundle``.
            verify: ssl.SSLContext | bool = True
            if self.settings.event_ca_bundle:
                verify = ssl.create_default_context(cafile=certifi.where())
                verify.load_verify_locations(cafile=self.settings.event_ca_bundle)
            self._client = httpx.AsyncClient(
                timeout=_PUSH_TIMEOUT, follow_redirects=False, verify=verify
            )
        return self._client

    @staticmethod
    def _observe(event: Row[Any], mode: str) -> None:
        DELIVERED.labels(mode).inc()
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
        LATENCY.labels(mode).observe(max(0.0, (datetime.now(UTC) - at).total_seconds()))

    async def _housekeeping(self) -> None:
        """Every ``_COUNT_EVERY`` seconds the pending gauge; every ``_PRUNE_EVERY`` the
        delivered events past their retention forgotten."""
        now = time.monotonic()
        if now - self._counted < _COUNT_EVERY:
            return
        self._counted = now
        if now - self._pruned >= _PRUNE_EVERY:
            self._pruned = now
            retained = timedelta(seconds=self.settings.event_retention)
            async with self.engine.begin() as connection:
                await stored.prune(connection, datetime.now(UTC) - retained)
        async with self.reads.connect() as connection:
            PENDING.set(await stored.pending_total(connection))

    # -- poll ------------------------------------------------------------------------

    async def poll(
        self,
        receiver: Row[Any],
        acknowledged: Sequence[str],
        errors: dict[str, str],
        max_events: int | None,
        return_immediately: bool,
    ) -> tuple[dict[str, str], bool]:
        """RFC 8936 §2.4: acknowledgements and errors recorded, then the SETs due (new ones,
        and those handed out ``REDELIVER_AFTER`` ago without acknowledgement), waiting up to
        ``event_poll_wait`` seconds for one unless told to return at once; and whether more
        are available."""
        now = datetime.now(UTC)
        acks = [s for t in acknowledged if (s := seq_of(t, receiver.id)) is not None]
        refused = [(s, e) for t, e in errors.items() if (s := seq_of(t, receiver.id)) is not None]
        if acks or refused:
            async with self.engine.begin() as connection:
                taken = await stored.settle(connection, receiver.id, acks, stored.DELIVERED, now)
                for seq, reason in refused:
                    await stored.settle(connection, receiver.id, [seq], stored.DEAD, now, reason)
            DELIVERED.labels("poll").inc(taken)
        limit = 100 if max_events is None else max_events
        if limit == 0:
            return {}, False
        deadline = time.monotonic() + (0 if return_immediately else self.settings.event_poll_wait)
        while True:
            committed = self._committed
            now = datetime.now(UTC)
            async with self.reads.connect() as connection:
                events = await stored.due(
                    connection, receiver.id, limit + 1, sent_before=now - REDELIVER_AFTER
                )
            handed = events[:limit]
            if handed:
                async with self.engine.begin() as connection:
                    await stored.attempted(connection, receiver.id, [e.seq for e in handed], now)
            if handed or time.monotonic() >= deadline:
                break
            remaining = max(0.0, deadline - time.monotonic())
            await self._until(committed, min(POLL_INTERVAL, remaining))
        sets = {jti(receiver.id, event.seq): await self.sign(event, receiver) for event in handed}
        for event in handed:
            if event.attempts == 0:
                self._observe(event, "poll")
        return sets, len(events) > limit
