"""Paging in SQL: the order of a listing (RFC 7644 §3.4.2.3) and the rows after a cursor
(RFC 9865), as keyset conditions the indexes of ``scim.storage.tables`` serve."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scim2_models import InvalidCursorException
from sqlalchemy import BigInteger, ColumnElement, and_, literal, or_

from scim.protocol.paging import Cursor
from scim.storage.tables import resources


def after(
    cursor: Cursor,
    key: ColumnElement[Any] | None,
    descending: bool,
    where: ColumnElement[bool] | None = None,
) -> ColumnElement[bool]:
    """Rows (of those ``where`` selects) that come after the cursor in
    ``ORDER BY key IS NULL, key, id`` (keyset paging)."""
    following = _following(cursor, key, descending)
    return following if where is None else and_(where, following)


def _following(
    cursor: Cursor, key: ColumnElement[Any] | None, descending: bool
) -> ColumnElement[bool]:
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
        value = float(value) if fits else value
    elif python_type is int and fits:
        # What the column holds: 32 bits, or 64 for a BigInteger.
        bits = 64 if isinstance(key.type, BigInteger) else 32
        fits = not isinstance(value, bool) and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)
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
