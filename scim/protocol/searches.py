"""SearchRequests (RFC 7644 §3.4.2, §3.4.3) validated once per shape.

An identity system asks the same query over and over with another value: ``userName eq
"…"`` for every user it provisions. Validating a SearchRequest parses its filter with
scim2-models' grammar, about two thirds of the validation and a tenth of such a request's
time. The validated request of a shape (the same parameters, the filter the same but for its
string literals) is kept; a request of that shape takes it with its own literals put back
into the filter's tree. What the shape cannot vouch for, that each value suits its attribute,
is checked again on the request's own filter, and a request that fails anything is validated
from the start, so that it is refused exactly as it would be without this.

The shape's filter, each literal a ``Literal`` standing for the request's, is compiled once
too (``scim.storage.filters``): a request of the shape gives its values only.

A request without a filter (a page of a list, sorted or not) has no values of its own: one
asked for again is the request validated before, whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError
from scim2_models import Context, SCIMException, SearchRequest
from scim2_models.path import Comparison, FilterNode, LogicalExpr, Not, Present, ValuePath

from scim.recent import Recent

# The grammar's string literal (scim2_models.path.grammar, STRING): a JSON string.
_STRING = re.compile(r'"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*"')
# A literal of the shape stands for the request's literal of that index; the marks are of
# Unicode's private use area, which no attribute name can hold.
_MARK = "\ue000"
# Shapes kept, and the longest filter taken (scim2-models keeps parses of up to 1,024 too).
_SHAPES = 512
_LONGEST = 1024


_UNSEEN = object()
_SEEN = object()


@dataclass(frozen=True)
class Literal:
    """The string literal of a shape's filter at ``index`` (0: the first in the text)."""

    index: int


@dataclass(frozen=True)
class Search:
    """A validated SearchRequest; of a shape seen before, that shape and the request's own
    string literals, in the order of the filter's text (a request without a filter: its
    shape, and neither literals nor template)."""

    request: SearchRequest[Any]
    shape: Hashable | None = None
    literals: tuple[str, ...] = ()
    # The shape's filter, each string literal a ``Literal``.
    template: FilterNode | None = None


@dataclass(frozen=True)
class _Shape:
    request: SearchRequest[Any]
    template: FilterNode


class _Unshaped(Exception):
    """The request is to be validated from the start."""


class Searches:
    """Validates a SearchRequest's payload, once per shape."""

    def __init__(self) -> None:
        # Shape -> its validated request; None: its requests are validated from the start;
        # _SEEN: one of its requests was.
        self._shapes = Recent(_SHAPES)

    def validate(self, model: Any, payload: Mapping[str, Any]) -> Search:
        """``SearchRequest[model]`` of the payload; raises as its validation does."""
        try:
            return self._shaped(model, payload)
        except _Unshaped:
            request = SearchRequest[model].model_validate(payload, scim_ctx=Context.SEARCH_REQUEST)
            return Search(request)

    def _shaped(self, model: Any, payload: Mapping[str, Any]) -> Search:
        text = payload.get("filter")
        if "filter" not in payload:
            return self._unfiltered(model, payload)
        if not isinstance(text, str) or len(text) > _LONGEST:
            raise _Unshaped
        literals: list[str] = []

        def mark(match: re.Match[str]) -> str:
            literals.append(match.group())
            return f'"{_MARK}{len(literals) - 1}{_MARK}"'

        template = _STRING.sub(mark, text)
        key = self._key(model, template, payload)
        marked = {**payload, "filter": template}
        shaped = self._kept(key, lambda: self._learn(model, marked, len(literals)))
        if not isinstance(shaped, _Shape) or shaped.request.filter is None:
            raise _Unshaped
        values = tuple(json.loads(literal) for literal in literals)
        tree = _put_back(shaped.template, values)
        # The filter as SearchRequest[model] makes it, but for the grammar's parse (the tree
        # is the parse of ``text``): its semantics checked as ``_resolvable_filter`` does.
        filter_ = str.__new__(type(shaped.request.filter), text)
        filter_._ast = tree
        try:
            filter_._validate_semantics()
        except SCIMException:
            raise _Unshaped from None
        request = shaped.request.model_copy(update={"filter": filter_})
        return Search(request, key, values, shaped.template)

    def _unfiltered(self, model: Any, payload: Mapping[str, Any]) -> Search:
        """The request validated the last time it was asked, if it was asked before."""
        key = self._key(model, None, payload)

        def validated() -> SearchRequest[Any] | None:
            try:
                return SearchRequest[model].model_validate(payload, scim_ctx=Context.SEARCH_REQUEST)
            except ValidationError:
                return None

        kept = self._kept(key, validated)
        if not isinstance(kept, SearchRequest):
            raise _Unshaped
        return Search(kept, key)

    def _kept(self, key: tuple[Any, ...], learn: Callable[[], Any]) -> Any:
        """What is kept for a shape, made by ``learn`` the second time it is asked. A shape
        asked once is only remembered (``_Unshaped``): one no other request has costs no
        more."""
        kept = self._shapes.find(key, _UNSEEN)
        if kept is _UNSEEN:
            self._shapes.keep(key, _SEEN)
            raise _Unshaped
        if kept is _SEEN:
            kept = learn()
            self._shapes.keep(key, kept)
        return kept

    @staticmethod
    def _key(model: Any, template: str | None, payload: Mapping[str, Any]) -> tuple[Any, ...]:
        """What names a shape: the model, the filter's template and every other parameter;
        a body's long attribute lists, or a value no query carries (an object in a
        SearchRequest body), are no shape to keep."""
        try:
            others = sorted((name, _frozen(value)) for name, value in payload.items())
            key = (model, template, *(item for item in others if item[0] != "filter"))
            hash(key)
        except TypeError:
            raise _Unshaped from None
        if len(repr(key)) > 2 * _LONGEST:
            raise _Unshaped  # 512 such would hold memory
        return key

    @staticmethod
    def _learn(model: Any, payload: dict[str, Any], literals: int) -> _Shape | None:
        """The shape's request, if its filter holds each of its marks once, as a whole value
        of a comparison: None if it does not or fails validation."""
        shaped = None
        try:
            request = SearchRequest[model].model_validate(payload, scim_ctx=Context.SEARCH_REQUEST)
            if request.filter is not None and sorted(_marks(request.filter.ast)) == list(
                range(literals)
            ):
                marks = tuple(Literal(index) for index in range(literals))
                shaped = _Shape(request, _put_back(request.filter.ast, marks))
        except (ValidationError, _Unshaped):
            pass
        return shaped


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    hash(value)
    return value


def _mark_index(value: Any) -> int | None:
    if (
        isinstance(value, str)
        and len(value) > 2
        and value[0] == value[-1] == _MARK
        and value[1:-1].isdigit()
    ):
        return int(value[1:-1])
    return None


def _marks(node: FilterNode) -> list[int]:
    """The marks a tree holds, as the values of its comparisons."""
    if isinstance(node, Comparison):
        index = _mark_index(node.value)
        return [] if index is None else [index]
    return [index for child in _subtrees(node) for index in _marks(child)]


def _subtrees(node: FilterNode) -> tuple[FilterNode, ...]:
    if isinstance(node, LogicalExpr):
        return node.terms
    if isinstance(node, Not):
        return (node.expr,)
    if isinstance(node, ValuePath):
        return (node.val_filter,)
    if isinstance(node, Present):
        return ()
    raise _Unshaped  # a node this module does not know


def _put_back(node: FilterNode, values: Sequence[Any]) -> FilterNode:
    """The tree with each mark (or ``Literal``) replaced by the value of its index."""
    if isinstance(node, Comparison):
        value = node.value
        index = value.index if isinstance(value, Literal) else _mark_index(value)
        return node if index is None else Comparison(node.attr_path, node.op, values[index])
    if isinstance(node, LogicalExpr):
        return replace(node, terms=tuple(_put_back(term, values) for term in node.terms))
    if isinstance(node, Not):
        return replace(node, expr=_put_back(node.expr, values))
    if isinstance(node, ValuePath):
        return replace(node, val_filter=_put_back(node.val_filter, values))
    return node
