"""Browser sessions of administrators: a random id in an HttpOnly cookie, only its SHA-256 hash
in ``sessions``, and a CSRF token the browser client sends back on every change.

A session ends 8 hours after login at the latest, or after 30 minutes without a request:
``expires`` is the idle deadline, moved forward (at most once a minute, never past the 8 hours)
whenever the session is used.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from scim.storage import identities

COOKIE = "scim_session"
CSRF_HEADER = "X-CSRF-Token"
LIFETIME = timedelta(hours=8)
IDLE = timedelta(minutes=30)
_SLIDE_EVERY = timedelta(minutes=1)
# Methods that change something: by cookie, they need the CSRF token.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class NewSession:
    id: str  # the cookie value; the server keeps only its hash
    csrf_token: str
    expires: datetime


def id_hash(session_id: str) -> str:
    # The id carries 256 random bits, so a plain SHA-256 cannot be reversed.
    return hashlib.sha256(session_id.encode()).hexdigest()


async def create(connection: AsyncConnection, administrator_id: str) -> NewSession:
    """A new session for the administrator; ended sessions of anyone are cleared out."""
    now = datetime.now(UTC)
    session = NewSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + IDLE)
    await identities.insert_session(
        connection, id_hash(session.id), administrator_id, session.csrf_token, now, session.expires
    )
    return session


async def lookup(connection: AsyncConnection, session_id: str) -> Row[Any] | None:
    """The live session with this id, or None (unknown, logged out or expired), as
    ``identities.session`` reads it. Using the session moves its idle deadline forward."""
    row = await identities.session(connection, id_hash(session_id))
    now = datetime.now(UTC)
    if row is None or _aware(row.expires) <= now:
        return None
    deadline = min(now + IDLE, _aware(row.created) + LIFETIME)
    if deadline - _aware(row.expires) >= _SLIDE_EVERY:
        await identities.move_session_deadline(connection, row.id_hash, deadline)
    return row


async def end(connection: AsyncConnection, session_id: str) -> bool:
    """Log out: the session's row is deleted; False if there was none."""
    return await identities.delete_session(connection, id_hash(session_id))


def csrf_ok(method: str, presented: str | None, csrf_token: str) -> bool:
    """Whether a request by cookie may go ahead: reads always, changes with the session's token."""
    if method.upper() not in STATE_CHANGING:
        return True
    return presented is not None and secrets.compare_digest(presented.encode(), csrf_token.encode())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
