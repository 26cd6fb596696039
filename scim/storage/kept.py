"""Statements kept per shape: a search is built once for every request that differs from it
only in its values.

A filter is compiled per request (its values are checked and folded there; but see below),
and building the statement around its condition, and SQLAlchemy's cache key of that
statement (the walk that finds its compiled form), cost an ``eq`` search about as much as its
execution (``tests/bench/README.md``). A condition's *shape* is SQLAlchemy's cache key of it: its
structure and the types of its values, never the values. The statement built for the first
condition of a shape takes its values as parameters (``v0``, ``v1``, …) and is kept; every
later condition of that shape only gives its values. A kept statement is the same object
each time, so SQLAlchemy's own cache key of it is memoized, and ``scim.storage.direct``
compiles it once.

A search of a shape seen before (``scim.protocol.searches``) is not compiled again at all: its
condition is compiled once with ``Deferred`` values, which each request makes from its own
string literals (``Shape.given``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import ClauseList, ColumnElement, bindparam
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

T = TypeVar("T")

# A shape of more values than this is not kept: an identity system's queries hold a few, and
# a kept statement of a thousand-term filter would hold memory for what is most likely one
# request (SQLAlchemy still compiles it once, in its own cache).
MAX_VALUES = 64


class Deferred:
    """A value that each request of a search's shape gives (``scim.protocol.searches``):
    what ``make`` makes of the request's string literal at ``index``."""

    __slots__ = ("index", "make")

    def __init__(self, index: int, make: Callable[[str], Any]) -> None:
        self.index = index
        self.make = make

    def __call__(self, literals: Sequence[str]) -> Any:
        return self.make(literals[self.index])


@dataclass(frozen=True)
class Shape:
    """What a statement built around some elements depends on (``key``), and the values it
    takes for them (``values``: parameter name → value)."""

    key: Hashable
    values: dict[str, Any]
    names: dict[int, str]  # id() of each of the elements' parameters → its name

    def given(self, literals: Sequence[str]) -> Shape:
        """The shape with the values a request of it gives: each ``Deferred`` made from the
        request's string literals."""
        values = {
            name: value(literals) if isinstance(value, Deferred) else value
            for name, value in self.values.items()
        }
        return replace(self, values=values)

    def named(self, condition: ColumnElement[T]) -> ColumnElement[T]:
        """The condition (or sort key) with its values as the shape's named parameters."""

        def rename(element: Any, **_: Any) -> Any:
            name = self.names.get(id(element))
            if name is None or not isinstance(element, BindParameter):
                return None
            return bindparam(
                name,
                type_=element.type,
                required=True,
                expanding=element.expanding,
                literal_execute=element.literal_execute,
            )

        options: dict[str, Any] = {}
        return replacement_traverse(condition, options, rename)


def shape(*elements: ColumnElement[Any] | None) -> Shape | None:
    """The shape of these elements together (None stands for an element that is absent);
    None if SQLAlchemy cannot key one of them (a construct it does not cache)."""
    present = [element for element in elements if element is not None]
    absent = tuple(element is None for element in elements)
    if not present:
        return Shape(absent, {}, {})
    # One cache key for all of them: a parameter they share is named once.
    cache_key = ClauseList(*present)._generate_cache_key()
    if cache_key is None or len(cache_key.bindparams) > MAX_VALUES:
        return None
    names: dict[int, str] = {}
    values: dict[str, Any] = {}
    for bind in cache_key.bindparams:
        if id(bind) not in names:
            name = names[id(bind)] = f"v{len(names)}"
            values[name] = bind.effective_value
    return Shape((absent, cache_key.key), values, names)
