"""Reading JSON documents in SQL, the one place where SQLite and PostgreSQL differ."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ColumnElement, FromClause, func, literal_column, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import cast
from sqlalchemy.types import Boolean, Float, String


class JsonSql:
    """JSON access for one dialect: scalars by path, and the elements of an array."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"

    def text(self, document: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[str]:
        text: ColumnElement[str] = document[path].as_string()
        return text

    def boolean(self, document: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[bool]:
        boolean: ColumnElement[bool] = document[path].as_boolean()
        return boolean

    def number(self, document: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[float]:
        number: ColumnElement[float] = document[path].as_float()
        return number

    def present(self, document: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[bool]:
        if self.postgres:
            # ``#>`` is NULL for a missing key and 'null' for an explicit null.
            value = document[path]
            return value.is_not(None) & (func.jsonb_typeof(value) != "null")
        return func.json_type(document, _sqlite_path(path)).is_not(None) & (
            func.json_type(document, _sqlite_path(path)) != "null"
        )

    def elements(self, document: ColumnElement[Any], path: tuple[str, ...]) -> FromClause:
        """The values of the array at ``path``, as a table with one column, ``value``."""
        if self.postgres:
            array = type_coerce(document, JSONB)[path]
            elements = func.jsonb_array_elements(
                func.coalesce(array, literal_column("'[]'::jsonb"))
            )
        else:
            elements = func.json_each(document, _sqlite_path(path))
        return elements.table_valued("value").alias()

    def element_text(self, element: ColumnElement[Any], key: str | None) -> ColumnElement[str]:
        if self.postgres:
            value = type_coerce(element, JSONB)
            return value[key].astext if key else value.op("#>>")(literal_column("'{}'"))
        if key is None:
            return cast(element, String)
        return cast(func.json_extract(element, _sqlite_path((key,))), String)

    def element_boolean(self, element: ColumnElement[Any], key: str) -> ColumnElement[bool]:
        if self.postgres:
            return cast(type_coerce(element, JSONB)[key].astext, Boolean)
        return cast(func.json_extract(element, _sqlite_path((key,))), Boolean)

    def element_number(self, element: ColumnElement[Any], key: str | None) -> ColumnElement[float]:
        if self.postgres:
            value = type_coerce(element, JSONB)
            text = value[key].astext if key else value.op("#>>")(literal_column("'{}'"))
            return cast(text, Float)
        if key is None:
            return cast(element, Float)
        return cast(func.json_extract(element, _sqlite_path((key,))), Float)

    def element_present(self, element: ColumnElement[Any], key: str | None) -> ColumnElement[bool]:
        if key is None:
            return element.is_not(None)
        if self.postgres:
            value = type_coerce(element, JSONB)[key]
            return value.is_not(None) & (func.jsonb_typeof(value) != "null")
        kind = func.json_type(element, _sqlite_path((key,)))
        return kind.is_not(None) & (kind != "null")

    def aggregate(self, *pairs: Any) -> ColumnElement[Any]:
        """A JSON array of one object per row, built from ``key, value`` pairs."""
        if self.postgres:
            return func.coalesce(
                func.jsonb_agg(func.jsonb_build_object(*pairs)),
                literal_column("'[]'::jsonb"),
                type_=JSONB,
            )
        return type_coerce(func.json_group_array(func.json_object(*pairs)), JSON)


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{part}"' for part in path)
