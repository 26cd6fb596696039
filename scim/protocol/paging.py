"""Cursors of cursor paging (RFC 9865): what a page hands the client to ask for the next."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from scim2_models import InvalidCursorException

# Bytes of HMAC-SHA256 kept in a cursor: 128 bits, as many as a forger has to guess.
TAG_SIZE = 16


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the sort key and id of its last row.

    A cursor is signed (HMAC-SHA256 under the server's cursor secret, over the organisation
    and the query's order as well as the position), so one a client changed, made up, or
    carried to another organisation is refused before any of it reaches SQL (RFC 9865 §2:
    the server decides what a cursor holds and when it is no longer good).
    """

    sort_by: str
    value: Any
    id: str

    def encode(self, secret: bytes, scope: str) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return seal(msgspec.json.encode([self.sort_by, value, self.id]), secret, scope)

    @classmethod
    def decode(cls, text: str, sort_by: str, secret: bytes, scope: str) -> Cursor:
        """The cursor ``text`` holds, if this server issued it for ``scope`` and ``sort_by``."""
        try:
            signed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as error:
            raise _not_ours() from error
        tag, raw = signed[:TAG_SIZE], signed[TAG_SIZE:]
        if not hmac.compare_digest(tag, _tag(secret, scope, raw)):
            raise _not_ours()
        try:
            stored_sort, value, last_id = msgspec.json.decode(raw)
        except (ValueError, msgspec.DecodeError, TypeError) as error:
            raise _not_ours() from error
        if stored_sort != sort_by or not isinstance(last_id, str):
            raise InvalidCursorException(detail="The cursor belongs to a query with another sortBy")
        return cls(stored_sort, value, last_id)


def seal(raw: bytes, secret: bytes, scope: str) -> str:
    """``raw`` signed for ``scope``, as a cursor's text."""
    # RFC 9865 §2: unreserved characters only, so base64url without padding.
    signed = _tag(secret, scope, raw) + raw
    return base64.urlsafe_b64encode(signed).decode().rstrip("=")


def _tag(secret: bytes, scope: str, raw: bytes) -> bytes:
    message = scope.encode() + b"\x00" + raw
    return hmac.new(secret, message, hashlib.sha256).digest()[:TAG_SIZE]


def _not_ours() -> InvalidCursorException:
    return InvalidCursorException(detail="The cursor is not one this server issued")
