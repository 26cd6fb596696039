"""Index paging (RFC 7644 §3.4.2.4) and cursor paging (RFC 9865)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from scim2_models import InvalidCursorException
from sqlalchemy import ColumnElement, and_, literal, or_

from scim.storage.tables import resources


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


def after(cursor: Cursor, key: ColumnElement[Any] | None, descending: bool) -> ColumnElement[bool]:
    """Rows that come after the cursor in ``ORDER BY key IS NULL, key, id`` (keyset paging)."""
    if key is None:
        return resources.c.id > cursor.id
    value = cursor.value
    if value is None:
        return and_(key.is_(None), resources.c.id > cursor.id)
    value = _bound(key, value)
    beyond = key < value if descending else key > value
    return or_(key.is_(None), beyond, and_(key == value, resources.c.id > cursor.id))


def _bound(key: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    """The cursor's sort value as a parameter of the key's type; invalidCursor if it is not one."""
    try:
        python_type: type | None = key.type.python_type
    except NotImplementedError:
        python_type = None
    if python_type is datetime and isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    fits = python_type is None or isinstance(value, python_type)
    if python_type is float:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    if not fits or isinstance(value, dict | list) or value is None:
        raise InvalidCursorException(detail="The cursor is not one this server issued")
    return literal(value, key.type)


def order(key: ColumnElement[Any] | None, descending: bool) -> list[ColumnElement[Any]]:
    """Missing values last in either direction, ties broken by id so pages are stable.

    Ascending, this is the order of the ``(tenant_id, key, id)`` indexes (PostgreSQL keeps
    NULLs last in them), so a sorted page is read from the index instead of sorting the
    whole organisation.
    """
    if key is None:
        return [resources.c.id]
    return [(key.desc() if descending else key.asc()).nulls_last(), resources.c.id]
