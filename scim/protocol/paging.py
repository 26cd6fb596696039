"""Cursors of cursor paging (RFC 9865): what a page hands the client to ask for the next."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from scim2_models import InvalidCursorException


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the sort key and id of its last row."""

    sort_by: str
    value: Any
    id: str

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        raw = msgspec.json.encode([self.sort_by, value, self.id])
        # RFC 9865 §2: unreserved characters only, so base64url without padding.
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort_by: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            stored_sort, value, last_id = msgspec.json.decode(raw)
        except (binascii.Error, ValueError, msgspec.DecodeError, TypeError) as error:
            raise InvalidCursorException(
                detail="The cursor is not one this server issued"
            ) from error
        if stored_sort != sort_by or not isinstance(last_id, str):
            raise InvalidCursorException(detail="The cursor belongs to a query with another sortBy")
        return cls(stored_sort, value, last_id)
