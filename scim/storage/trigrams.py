"""SQLite: a pattern comparison of a name narrowed to the rows its trigrams allow, where few
names hold the fragment (the FTS5 index of migration 0021).

SQLite cannot tell a rare fragment from a frequent one, and finds every pattern's matches by
walking the organisation's names in id order (``filters.Rarely``): quick where many match,
the whole organisation where few do. So the index is asked first how many names hold the
fragment, counting no further than ``RARE``; below that, the comparison takes only the rows
the index gives (a rowid each) and the pattern is tested on those alone, as before. The
index is only a shortcut: every row it gives is tested, and every row that holds the
fragment is among those it gives, so the answer is the same either way.

A search's statement is kept per shape (``scim.storage.kept``) and per choice of the patterns
narrowed (``Narrowing.places``): each request asks which of its own fragments are rare, and
sends the index's queries as parameters.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.visitors import iterate, replacement_traverse

from scim.recent import Recent
from scim.storage import direct
from scim.storage.filters import Rarely, fragment
from scim.storage.tables import NAME_KEYS, resources

logger = logging.getLogger("scim.trigrams")

# Fewer candidates than this, and the index's rows are read instead of walking: among
# 20,000 users a page of a fragment's matches took as long either way at 400-600 of them.
RARE = 400
# The index's shortest token: a fragment of fewer characters is in no trigram.
_SHORTEST = 3
_NAMES = table("resource_names", column("rowid"), column("resource_names"))
_INDEXED = tuple(resources.c[key] for key in NAME_KEYS)
_ROWID: ColumnElement[int] = literal_column("resources.rowid")
# Databases whose index is not there (a SQLite without FTS5's trigrams): asked once.
_ABSENT: weakref.WeakSet[Engine] = weakref.WeakSet()
# Each database's counts of the fragments asked most recently (``_counts``), for a minute.
COUNTS_KEPT = 60.0
_KEPT_COUNTS = 1024
_KEPT: weakref.WeakKeyDictionary[Engine, Recent] = weakref.WeakKeyDictionary()


class Narrowing(NamedTuple):
    """Which of a condition's pattern comparisons (by their place among its ``Rarely``
    elements, ``_patterns``) take their rows from the index, and the index's query for each
    (the parameter ``match{place}``)."""

    places: tuple[int, ...]
    parameters: dict[str, str]


def _own(bind: BindParameter[Any]) -> Any:
    return bind.value


async def narrowing(
    source: direct.Source,
    where: ColumnElement[bool],
    value: Callable[[BindParameter[Any]], Any] = _own,
) -> Narrowing | None:
    """Which of ``where``'s comparisons of a name key to a fragment few names hold are to be
    narrowed to the index's rows that hold it (``narrow``); None: none. ``value``: what a
    parameter of ``where`` stands for in this request (a kept shape's, ``scim.storage.kept``)."""
    found = [
        (place, query)
        for place, rarely in enumerate(_patterns(where))
        if (query := _query(rarely, value))
    ]
    engine = source.sync_engine
    if not found or engine in _ABSENT:
        return None
    try:
        counts = await _counts(source, engine, [query for _, query in found])
    except OperationalError as error:
        # No index (no such table, or module), or a query it cannot take: walked.
        if "no such" in str(error):
            _ABSENT.add(engine)
        else:
            logger.warning("names' trigrams not asked", extra={"error": str(error)})
        return None
    rare = [(place, query) for place, query in found if counts[query] < RARE]
    if not rare:
        return None
    places = tuple(place for place, _ in rare)
    return Narrowing(places, {f"match{place}": query for place, query in rare})


def narrow(where: ColumnElement[bool], places: tuple[int, ...]) -> ColumnElement[bool]:
    """``where`` with the pattern comparisons at ``places`` (``Narrowing``) taking only the
    rows the index gives for their query (the parameter ``match{place}``): built once per
    shape and places, the queries sent with each request."""
    chosen = {
        id(rarely): f"match{place}"
        for place, rarely in enumerate(_patterns(where))
        if place in places
    }

    def narrowed(element: Any, **_: Any) -> ColumnElement[bool] | None:
        name = chosen.get(id(element))
        if name is None:
            return None
        query = bindparam(name, type_=String(), required=True)
        candidates = select(_NAMES.c.rowid).where(_NAMES.c.resource_names.match(query))
        return and_(_ROWID.in_(candidates.scalar_subquery()), element)

    return replacement_traverse(where, {}, narrowed)


def _patterns(where: ColumnElement[bool]) -> list[Rarely]:
    """A condition's pattern comparisons, in an order that a copy of it (``Shape.named``)
    keeps."""
    return [element for element in iterate(where) if isinstance(element, Rarely)]


async def _counts(source: direct.Source, engine: Engine, queries: list[str]) -> dict[str, int]:
    """How many names each query's fragment is in (to ``RARE``): as asked within the last
    ``COUNTS_KEPT`` seconds, else asked now. A count is only a choice of the way: one grown
    stale costs time, never a wrong answer."""
    kept = _KEPT.get(engine)
    if kept is None:
        kept = _KEPT[engine] = Recent(_KEPT_COUNTS)
    now = time.monotonic()
    counts: dict[str, int] = {}
    for query in queries:
        at, count = kept.find(query, (-COUNTS_KEPT, 0))
        if now - at < COUNTS_KEPT:
            counts[query] = count
    asked = [query for query in queries if query not in counts]
    if asked:
        parameters = {f"q{i}": query for i, query in enumerate(asked)} | {"most": RARE}
        row = await direct.first(source, _probe(len(asked)), parameters)
        for query, count in zip(asked, row, strict=True):
            counts[query] = count
            kept.keep(query, (now, count))
    return counts


def _query(rarely: Rarely, value: Callable[[BindParameter[Any]], Any]) -> str | None:
    """The index's query for a pattern comparison of a name key (``Rarely`` around a LIKE of
    a key column of ``resources``): the fragment as a phrase of that column; None for any
    other comparison, and for a fragment too short to be in a trigram."""
    (like,) = rarely.clauses
    if (
        not isinstance(like, BinaryExpression)
        or like.operator is not operators.like_op
        or not any(like.left is key for key in _INDEXED)
        or not isinstance(like.right, BindParameter)
        or not isinstance(pattern := value(like.right), str)
    ):
        return None
    text = fragment(pattern)
    if len(text) < _SHORTEST:
        return None
    quoted = text.replace('"', '""')
    return f'{like.left.name} : "{quoted}"'


@cache
def _probe(queries: int) -> Select[Any]:
    """How many names each query's fragment is in, counted to ``most`` at most."""

    def counted(name: str) -> ColumnElement[int]:
        found = select(literal(1)).where(_NAMES.c.resource_names.match(bindparam(name)))
        limited = found.limit(bindparam("most")).subquery()
        return select(func.count()).select_from(limited).scalar_subquery()

    columns: list[Any] = [counted(f"q{i}").label(f"q{i}") for i in range(queries)]
    return select(*columns)
