"""SCIM filters and sort keys compiled to SQLAlchemy expressions (RFC 7644 §3.4.2.2-3).

Nothing here reads a row: every filter becomes one SQL expression, evaluated by
the database with the indexes of :mod:`scim.storage.tables`.

Every compiled comparison is TRUE or FALSE, never NULL, so that ``not`` keeps
its meaning on resources that lack the attribute. A missing attribute matches
``ne`` and nothing else, as in scim2-models' reference evaluator.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import partial
from inspect import isclass
from typing import Any

from scim2_models import BaseModel, GroupMember, InvalidFilterException, ScimFilter
from scim2_models.path import (
    AttributeBinding,
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Path,
    Present,
    ValuePath,
    coerce_value,
)
from sqlalchemy import (
    ColumnElement,
    FromClause,
    String,
    and_,
    exists,
    false,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.expression import func, not_
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.sql.visitors import iterate

from scim.protocol.folding import fold
from scim.protocol.searches import Literal
from scim.registry import ResourceKind
from scim.storage import kept
from scim.storage.json_sql import JsonSql
from scim.storage.tables import members, resources

Condition = ColumnElement[bool]

# Attributes kept in their own column. ``True`` marks a key stored case-folded.
COLUMNS: dict[str, tuple[ColumnElement[Any], bool]] = {
    "id": (resources.c.id, False),
    "externalid": (resources.c.external_id, False),
    "username": (resources.c.user_name_key, True),
    "displayname": (resources.c.display_name_key, True),
    "name.familyname": (resources.c.family_name_key, True),
    "name.givenname": (resources.c.given_name_key, True),
    "active": (resources.c.active, False),
    "meta.created": (resources.c.created, False),
    "meta.lastmodified": (resources.c.last_modified, False),
    "meta.resourcetype": (resources.c.resource_type, False),
}

# What the name columns sort by: their Swedish sort keys (``scim.protocol.folding.sort_key``).
SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "displayname": resources.c.display_name_sort,
    "name.familyname": resources.c.family_name_sort,
    "name.givenname": resources.c.given_name_sort,
}

_VERSION = re.compile(r'^(?:W/)?"([0-9]+)"$', re.ASCII)
# Versions are a 32-bit column: a larger number is no version this server gives.
_MAX_VERSION = 2**31 - 1
_TEXT_OPERATORS = (CompareOperator.co, CompareOperator.sw, CompareOperator.ew)

# Comparisons and presence tests a filter may hold, so that its SQL stays within the
# bind parameters a statement takes (32766 in SQLite, 32767 in asyncpg).
MAX_FILTER_TERMS = 1000
# Room for MAX_FILTER_TERMS comparisons, and a bound on the work of parsing a filter before
# its comparisons are counted (scim2-models also refuses nesting deeper than 32).
MAX_FILTER_LENGTH = 32768


# What no stored text holds, so that no filter value may: U+0000 (PostgreSQL's text cannot)
# and lone surrogates (UTF-8 cannot; a filter's "\ud800" decodes to one, a body's is refused
# as JSON). Sent to the database, either failed the statement: a 500 for a client's mistake.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class Unshapable(Exception):
    """A shape's filter (``scim.protocol.searches``) whose SQL depends on its values."""


class Rarely(FunctionElement[Any]):
    """A condition the planner is to expect few rows to meet: SQLite's ``unlikely``. SQLite
    cannot estimate a pattern's matches, and took ``co`` for a frequent one, walking the
    organisation in id order and reading every row to test it (48 ms for a rare fragment
    among 20,000 users); expecting few, it reads the key from an index instead: a page of a
    name key's matches from the listing index, which holds them (migration 0019), a count
    from the key's own. PostgreSQL estimates them from its statistics itself (migration
    0020). Untyped: a boolean function would be sent as ``unlikely(…) = 1``, which hides
    the hint."""

    type = NullType()
    inherit_cache = True


@compiles(Rarely)
def _rarely(element: Rarely, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


@compiles(Rarely, "sqlite")
def _rarely_in_sqlite(element: Rarely, compiler: SQLCompiler, **kw: Any) -> str:
    return f"unlikely({compiler.process(element.clauses, **kw)})"


def matches_patterns(where: ColumnElement[Any] | None) -> bool:
    """Whether a compiled filter holds a ``co``, ``sw`` or ``ew`` comparison."""
    return where is not None and any(isinstance(e, Rarely) for e in iterate(where))


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def fragment(pattern: str) -> str:
    """The text a ``co``, ``sw`` or ``ew`` pattern (``Scalar._bound``) looks for: its
    wildcards dropped, its escapes undone."""
    characters = re.findall(r"\\.|.", pattern, re.DOTALL)  # an escaped one is two
    if characters[:1] == ["%"]:
        characters = characters[1:]
    if characters[-1:] == ["%"]:
        characters = characters[:-1]
    return "".join(character[-1] for character in characters)


def _value_type(target: type | None) -> str:
    if isclass(target):
        if issubclass(target, bool):
            return "bool"
        if issubclass(target, datetime):
            return "datetime"
        if issubclass(target, int | float | Decimal):
            return "number"
        if issubclass(target, bytes):
            return "binary"
        if issubclass(target, BaseModel):
            return "complex"
    return "string"


@dataclass
class Scalar:
    """One attribute value as an SQL expression, and how it compares."""

    expr: ColumnElement[Any]
    value_type: str
    case_exact: bool
    folded: bool = False
    present_expr: Condition | None = None
    # What it sorts by, when not by what it compares (names: their Swedish sort keys).
    sort_expr: ColumnElement[Any] | None = None

    def _key(self) -> ColumnElement[Any]:
        if self.value_type == "string" and not self.case_exact and not self.folded:
            return func.lower(self.expr)
        return self.expr

    def _operand(self, value: Any) -> Any:
        if isinstance(value, Enum):
            value = value.value
        if self.value_type == "string" and isinstance(value, str):
            if self.case_exact:
                return value
            # A key column holds fold(value); other text is lowered in SQL (``_key``).
            return fold(value) if self.folded else value.lower()
        if self.value_type == "datetime" and isinstance(value, datetime):
            try:
                return value.astimezone(UTC)
            except OverflowError:  # "0001-01-01T00:00:00+01:00" is in year 0 in UTC
                raise InvalidFilterException(
                    detail=f"{value.isoformat()} is outside the years 1 to 9999 in UTC"
                ) from None
        if self.value_type == "binary" and isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if self.value_type == "number" and isinstance(value, Decimal):
            return float(value)
        return value

    def assigned(self) -> Condition:
        """Whether there is a value at all, "" included (RFC 7643 §2.5: null is unassigned)."""
        if self.present_expr is not None:
            return self.present_expr
        return self.expr.is_not(None)

    def present(self) -> Condition:
        if self.value_type == "string":
            # RFC 7644 §3.4.2.2: "pr" wants a non-empty value, and "" is stored as given.
            return self.assigned() & (func.coalesce(self.expr, "") != "")
        return self.assigned()

    def compare(self, op: CompareOperator, value: Any) -> Condition:
        if value is None:
            # RFC 7644 §3.4.2.2: "eq null" matches a missing value.
            absent = ~self.assigned()
            return absent if op == CompareOperator.eq else self.assigned()
        # A shape's literal is bound to what ``_bound`` makes of each request's own.
        operand = (
            kept.Deferred(value.index, partial(self._bound, op))
            if isinstance(value, Literal)
            else self._bound(op, value)
        )
        self._comparable(op)
        key = self._key()
        has_value = key.is_not(None)
        if op == CompareOperator.eq:
            return and_(has_value, key == operand)
        if op == CompareOperator.ne:
            return or_(key.is_(None), key != operand)
        if op in _TEXT_OPERATORS:
            # The pattern is written into the statement, not bound: PostgreSQL plans a bound
            # pattern once for all of them (a generic plan), by which a rare fragment walked
            # every row of the organisation; written in, each is planned for what it matches.
            pattern_literal = literal(operand, String(), literal_execute=True)
            return has_value & Rarely(key.like(pattern_literal, escape="\\"))
        comparisons: dict[CompareOperator, Callable[[Any, Any], Condition]] = {
            CompareOperator.gt: lambda a, b: a > b,
            CompareOperator.ge: lambda a, b: a >= b,
            CompareOperator.lt: lambda a, b: a < b,
            CompareOperator.le: lambda a, b: a <= b,
        }
        return has_value & comparisons[op](key, operand)

    def _bound(self, op: CompareOperator, value: Any) -> Any:
        """What a comparison with ``op`` binds of a value: the value as the key holds it;
        for ``co``, ``sw`` and ``ew`` the pattern."""
        if isinstance(value, str) and (unstorable := _UNSTORABLE.search(value)):
            raise InvalidFilterException(
                detail=f"A filter value cannot contain U+{ord(unstorable.group()):04X}: no "
                "stored text can"
            )
        operand = self._operand(value)
        if op not in _TEXT_OPERATORS:
            return operand
        pattern = _escape_like(str(operand))
        if op == CompareOperator.sw:
            return f"{pattern}%"
        return f"%{pattern}" if op == CompareOperator.ew else f"%{pattern}%"

    def sort_key(self) -> ColumnElement[Any]:
        return self._key() if self.sort_expr is None else self.sort_expr

    def _comparable(self, op: CompareOperator) -> None:
        """RFC 7644 §3.4.2.2: a complex attribute is compared through its sub-attributes
        (only ``pr`` applies to it as a whole), and ``co``, ``sw`` and ``ew`` compare text."""
        if self.value_type == "complex":
            raise InvalidFilterException(
                detail=f"A complex attribute takes no {op.value}: compare its sub-attributes"
            )
        if op in _TEXT_OPERATORS and self.value_type not in ("string", "binary"):
            raise InvalidFilterException(
                detail=f"{op.value} compares text, not a {self.value_type} value"
            )


@dataclass
class Many:
    """A multi-valued attribute: a set of rows, each compared as a Scalar."""

    rows: FromClause | tuple[FromClause, ...]
    correlate: Condition
    value: Callable[[str | None, AttributeBinding | None], Scalar]
    item_model: type[BaseModel] | None

    @property
    def froms(self) -> tuple[FromClause, ...]:
        return self.rows if isinstance(self.rows, tuple) else (self.rows,)

    def _exists(self, condition: Condition) -> Condition:
        return exists(select(literal(1)).select_from(*self.froms).where(self.correlate, condition))

    def element(self, binding: AttributeBinding | None) -> Scalar:
        """The sub-attribute a binding names, or ``value`` when it names the attribute itself."""
        if binding is None or binding.sub_field_name is None:
            if self.item_model is not None:
                return self.value("value", _bind(self.item_model, "value"))
            return self.value(None, binding)
        scim_name = binding.urn.rsplit(".", 1)[-1]
        return self.value(scim_name, _bind(self.item_model, scim_name))

    def compare(self, op: CompareOperator, value: Any, binding: AttributeBinding) -> Condition:
        scalar = self.element(binding)
        if value is None:
            # "eq null" holds when some value lacks it, or when there is no value at all.
            unassigned = ~self._exists(literal(True)) | self._exists(~scalar.assigned())
            return unassigned if op == CompareOperator.eq else ~unassigned
        if op == CompareOperator.ne:
            # All values differ: no value equals the operand.
            return ~self._exists(scalar.compare(CompareOperator.eq, value))
        return self._exists(scalar.compare(op, value))

    def present(self, binding: AttributeBinding) -> Condition:
        if binding.sub_field_name is None:
            return self._exists(literal(True))
        return self._exists(self.element(binding).present())

    def select(self, compile_inner: Callable[[ElementScope], Condition]) -> Condition:
        return self._exists(compile_inner(ElementScope(self)))

    def primary_sort_key(self, binding: AttributeBinding | None = None) -> ColumnElement[Any]:
        """RFC 7644 §3.4.2.3: sort by the primary value, else by the first.

        ``emails.type`` sorts by the type of that value, ``emails`` by its ``value``.
        """
        statement = (
            select(self.element(binding).sort_key()).select_from(*self.froms).where(self.correlate)
        )
        primary = _bind(self.item_model, "primary")
        if primary is not None:
            statement = statement.order_by(self.value("primary", primary).expr.is_(True).desc())
        return statement.limit(1).scalar_subquery()


@dataclass
class Either:
    """A multi-valued attribute gathered from several places (say, what a user holds itself
    and through its groups). A value matches if it matches in any of them."""

    parts: tuple[Many, ...]

    def compare(self, op: CompareOperator, value: Any, binding: AttributeBinding) -> Condition:
        results = [part.compare(op, value, binding) for part in self.parts]
        # "ne" and "eq null" hold only where every part holds them.
        universal = op == CompareOperator.ne or (value is None and op == CompareOperator.eq)
        return and_(*results) if universal else or_(*results)

    def present(self, binding: AttributeBinding) -> Condition:
        return or_(*(part.present(binding) for part in self.parts))

    def select(self, compile_inner: Callable[[ElementScope], Condition]) -> Condition:
        return or_(*(part.select(compile_inner) for part in self.parts))

    def primary_sort_key(self, binding: AttributeBinding | None = None) -> ColumnElement[Any]:
        return self.parts[0].primary_sort_key(binding)


Target = Scalar | Many | Either
# The SQL of an attribute the domain computes (``scim.hooks.Domain.attribute``) for the
# tenant of the query: by resource type, storage path, binding; None if not computed.
Computed = Callable[[str, tuple[str, ...], AttributeBinding, JsonSql], Target | None]


def _bind(model: type[BaseModel] | None, name: str) -> AttributeBinding | None:
    if model is None:
        return None
    return Path(name).resolve(model)


class ElementScope:
    """Attribute names inside ``attr[...]`` resolve against one value of ``attr``."""

    def __init__(self, many: Many) -> None:
        self.many = many

    def scalar(self, attr_path: AttrPath) -> Scalar:
        if self.many.item_model is None:
            if attr_path.attr.lower() != "value" or attr_path.sub_attr:
                raise InvalidFilterException(detail=f"Unknown attribute {attr_path!s}")
            return self.many.value(None, None)
        binding = _bind(self.many.item_model, str(attr_path))
        if binding is None:
            raise InvalidFilterException(detail=f"Unknown attribute {attr_path!s}")
        scim_name = binding.urn.rsplit(".", 1)[-1]
        return self.many.value(scim_name, binding)


class Compiler(FilterVisitor[Condition]):
    """Compile one filter, bound to one resource type, to a WHERE condition."""

    def __init__(
        self,
        kind: ResourceKind | None,
        json: JsonSql,
        scope: ElementScope | None = None,
        computed: Computed | None = None,
    ):
        self.kind = kind
        self.json = json
        self.scope = scope
        self.computed = computed
        # A filter bound to the resource type, only for its attribute resolution.
        self._filter: ScimFilter[Any] | None = (
            ScimFilter[kind.model]("id pr") if kind is not None else None  # type: ignore[name-defined]
        )

    # -- resolution ---------------------------------------------------------

    def binding(self, attr_path: AttrPath) -> AttributeBinding | None:
        if self._filter is None:
            return None
        try:
            return self._filter.resolve(attr_path, strict=True)
        except InvalidFilterException:
            return None

    def attribute(self, binding: AttributeBinding) -> Target:
        assert self.kind is not None
        return attribute(self.kind, self.json, binding, self.computed)

    # -- visitor ------------------------------------------------------------

    def visit_comparison(self, node: Comparison) -> Condition:
        if isinstance(node.value, Literal):
            return self._compare_literal(node)
        if self.scope is not None:
            scalar = self.scope.scalar(node.attr_path)
            return scalar.compare(node.op, self._coerce(scalar, node))
        binding = self.binding(node.attr_path)
        if binding is None:
            return false()
        value = coerce_value(binding, node.value, node.op)
        target = self.attribute(binding)
        if isinstance(target, Many | Either):
            return target.compare(node.op, value, binding)
        if binding.urn.lower().endswith(":meta.version"):
            return _compare_version(node.op, value)
        return target.compare(node.op, value)

    def _compare_literal(self, node: Comparison) -> Condition:
        """A comparison of a shape's filter: compiled once for every request of the shape
        where its SQL is the same whatever the string compared (a text attribute of the
        resource's own row, which scim2-models takes any string for); anything else is
        compiled for each request (``Unshapable``)."""
        if self.scope is not None:
            raise Unshapable
        binding = self.binding(node.attr_path)
        if binding is None:
            return false()
        target = self.attribute(binding)
        if (
            binding.target_type is not str
            or not isinstance(target, Scalar)
            or target.value_type != "string"
            or binding.urn.lower().endswith(":meta.version")
        ):
            raise Unshapable
        return target.compare(node.op, node.value)

    def _coerce(self, scalar: Scalar, node: Comparison) -> Any:
        model = self.scope.many.item_model if self.scope else None
        binding = _bind(model, str(node.attr_path))
        if binding is None:
            return node.value
        return coerce_value(binding, node.value, node.op)

    def visit_present(self, node: Present) -> Condition:
        if self.scope is not None:
            return self.scope.scalar(node.attr_path).present()
        binding = self.binding(node.attr_path)
        if binding is None:
            return false()
        target = self.attribute(binding)
        if isinstance(target, Many | Either):
            return target.present(binding)
        return target.present()

    def visit_not(self, node: Not) -> Condition:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> Condition:
        terms = [self.visit(term) for term in node.terms]
        return _balanced(and_ if node.op == LogicalOperator.and_ else or_, terms)

    def visit_value_path(self, node: ValuePath) -> Condition:
        if self.scope is not None:
            raise InvalidFilterException(detail="A value filter cannot be nested in another")
        binding = self.binding(node.attr_path)
        if binding is None:
            return false()
        target = self.attribute(binding)
        if not isinstance(target, Many | Either):
            raise InvalidFilterException(
                detail=f"{node.attr_path!s} is not multi-valued and takes no value filter"
            )
        return target.select(lambda scope: Compiler(None, self.json, scope).visit(node.val_filter))


def _compare_version(op: CompareOperator, value: Any) -> Condition:
    match = _VERSION.match(str(value))
    if op not in (CompareOperator.eq, CompareOperator.ne) or match is None:
        raise InvalidFilterException(detail='meta.version compares with eq or ne to W/"<n>"')
    version = int(match.group(1))
    if version > _MAX_VERSION:
        raise InvalidFilterException(detail=f"No version is above {_MAX_VERSION}")
    condition = resources.c.version == version
    return condition if op == CompareOperator.eq else ~condition


def attribute(
    kind: ResourceKind, json: JsonSql, binding: AttributeBinding, computed: Computed | None = None
) -> Target:
    """The SQL that reads the attribute a binding names on a row of ``resources``: a column,
    the stored document, the membership table, or what the domain computes (``computed``)."""
    path = kind.storage_path(binding.urn)
    dotted = ".".join(path).lower()
    value_type = _value_type(binding.target_type)

    if kind.name == "Group" and path[0] == "members":
        return _membership(json, group_side=True)
    if kind.name == "User" and path[0] == "groups":
        return _membership(json, group_side=False)
    if dotted == "meta.version":
        return Scalar(resources.c.version, "number", True)
    if dotted == "meta":
        # Every resource has meta, built from columns rather than kept in ``data``.
        return Scalar(resources.c.id, "complex", True, present_expr=resources.c.id.is_not(None))
    if dotted == "meta.location":
        raise InvalidFilterException(detail="meta.location cannot be filtered on; filter on id")

    if dotted in COLUMNS:
        column, folded = COLUMNS[dotted]
        sort = SORT_COLUMNS.get(dotted)
        return Scalar(column, value_type, binding.case_exact, folded=folded, sort_expr=sort)
    if kind.person_key is not None and dotted == ".".join(kind.person_key).lower():
        return Scalar(resources.c.hsa_id_key, value_type, binding.case_exact, folded=True)
    if computed is not None and (target := computed(kind.name, path, binding, json)) is not None:
        return target

    if binding.is_multivalued:
        array = path[: len(path) - (1 if binding.sub_field_name else 0)]
        rows = json.elements(resources.c.data, array)
        return Many(rows, literal(True), elements(json, rows, binding), item_model(binding))

    present = json.present(resources.c.data, path)
    if value_type == "bool":
        return Scalar(json.boolean(resources.c.data, path), "bool", True, present_expr=present)
    if value_type == "number":
        return Scalar(json.number(resources.c.data, path), "number", True, present_expr=present)
    if value_type == "complex":
        return Scalar(json.text(resources.c.data, path), "complex", True, present_expr=present)
    if value_type == "datetime":
        # Stored as RFC 3339 text in UTC, which orders as the instants do.
        return Scalar(json.text(resources.c.data, path), "string", True, present_expr=present)
    return Scalar(
        json.text(resources.c.data, path), value_type, binding.case_exact, present_expr=present
    )


def item_model(binding: AttributeBinding) -> type[BaseModel] | None:
    complex_items = _value_type(binding.field_type) == "complex"
    return binding.field_type if complex_items else None


def elements(
    json: JsonSql, rows: FromClause, binding: AttributeBinding
) -> Callable[[str | None, AttributeBinding | None], Scalar]:
    """How one value of a JSON array (a row of ``rows``) compares, by sub-attribute."""
    element = rows.c.value
    value_type = _value_type(binding.target_type)

    def value(key: str | None, item: AttributeBinding | None) -> Scalar:
        item_type = _value_type(item.target_type) if item is not None else value_type
        case_exact = item.case_exact if item is not None else binding.case_exact
        if item_type == "bool" and key is not None:
            expr: ColumnElement[Any] = json.element_boolean(element, key)
        elif item_type == "number":
            expr = json.element_number(element, key)
        else:
            expr = json.element_text(element, key)
        return Scalar(expr, item_type, case_exact, present_expr=json.element_present(element, key))

    return value


# The other side of a membership. Made once: an alias collects the table's columns anew.
_RELATED = resources.alias("related")


def _membership(json: JsonSql, *, group_side: bool) -> Many:
    """``Group.members`` or ``User.groups``, read from the membership table."""
    other = _RELATED
    if group_side:
        correlate = (members.c.group_id == resources.c.id) & (other.c.id == members.c.member_id)
        value_column: ColumnElement[Any] = members.c.member_id
        type_column: ColumnElement[Any] = other.c.resource_type
    else:
        correlate = (members.c.member_id == resources.c.id) & (other.c.id == members.c.group_id)
        value_column = members.c.group_id
        type_column = literal("direct")
    rows = members.join(
        other, other.c.id == (members.c.member_id if group_side else members.c.group_id)
    )

    def value(key: str | None, item: AttributeBinding | None) -> Scalar:
        name = (key or "value").lower()
        if name == "value":
            return Scalar(value_column, "string", True)
        if name == "display":
            shown = (
                func.coalesce(members.c.display, other.c.display) if group_side else other.c.display
            )
            return Scalar(shown, "string", False)
        if name == "type":
            return Scalar(type_column, "string", False)
        raise InvalidFilterException(detail=f"members cannot be filtered on {key}")

    return Many(rows, correlate, value, GroupMember)


class _Parenthesised(Grouping[bool]):
    """Parentheses that ``and_``/``or_`` keep: a Grouping hiding its operator from flattening."""

    inherit_cache = True
    operator = None


def _balanced(combine: Callable[..., Condition], terms: list[Condition]) -> Condition:
    """``a AND b AND ...`` as a balanced tree: SQLite refuses expressions deeper than 1000."""
    if len(terms) <= 8:
        return combine(*terms)
    middle = len(terms) // 2
    halves = (terms[:middle], terms[middle:])
    return combine(*(_Parenthesised(_balanced(combine, half)) for half in halves))


def _terms(node: FilterNode) -> int:
    if isinstance(node, LogicalExpr):
        return sum(_terms(term) for term in node.terms)
    if isinstance(node, Not):
        return _terms(node.expr)
    if isinstance(node, ValuePath):
        return _terms(node.val_filter)
    return 1


def compile_filter(
    kind: ResourceKind,
    json: JsonSql,
    filter_: ScimFilter[Any] | FilterNode,
    computed: Computed | None = None,
) -> Condition:
    """A filter, or its tree (a shape's: its string literals ``Literal``), as SQL."""
    tree = filter_.ast if isinstance(filter_, ScimFilter) else filter_
    if _terms(tree) > MAX_FILTER_TERMS:
        raise InvalidFilterException(
            detail=f"The filter holds more than {MAX_FILTER_TERMS} comparisons"
        )
    return Compiler(kind, json, computed=computed).visit(tree)


# Membership rows (``members`` joined to the member) and a condition over them.
Selection = tuple[FromClause, Condition]


def member_selections(json: JsonSql, val_filters: Sequence[FilterNode]) -> Iterator[Selection]:
    """The membership rows (``members`` joined to the member) any of these ``members[...]``
    filters selects: as few conditions as keep each within MAX_FILTER_TERMS comparisons."""
    many = _membership(json, group_side=True)
    compiler = Compiler(None, json, ElementScope(many))
    batch: list[Condition] = []
    terms = 0
    for val_filter in val_filters:
        count = _terms(val_filter)
        if count > MAX_FILTER_TERMS:
            raise InvalidFilterException(
                detail=f"A members filter holds more than {MAX_FILTER_TERMS} comparisons"
            )
        if batch and terms + count > MAX_FILTER_TERMS:
            yield many.froms[0], _balanced(or_, batch)
            batch, terms = [], 0
        batch.append(compiler.visit(val_filter))
        terms += count
    if batch:
        yield many.froms[0], _balanced(or_, batch)


def search_filter(
    kinds: Sequence[ResourceKind],
    json: JsonSql,
    filter_: ScimFilter[Any] | FilterNode | None,
    computed: Computed | None = None,
) -> Condition | None:
    """The WHERE condition of a query over one resource type or, at the root, several."""
    if filter_ is None:
        return None
    if len(kinds) == 1:
        # SearchRequest[model] has parsed it and resolved every attribute (400 otherwise).
        return compile_filter(kinds[0], json, filter_, computed)
    # RFC 7644 §3.4.2.1: at the root, an attribute a type lacks is false for it.
    return or_(
        *(
            and_(
                resources.c.resource_type == kind.name,
                compile_filter(kind, json, filter_, computed),
            )
            for kind in kinds
        )
    )


def sort_key(
    kinds: Sequence[ResourceKind],
    json: JsonSql,
    sort_by: Any,
    computed: Computed | None = None,
) -> ColumnElement[Any] | None:
    """RFC 7644 §3.4.2.3: what ``sortBy`` sorts on, for the first type that has it."""
    if sort_by is None:
        return None
    for kind in kinds:
        binding = Path[kind.model](str(sort_by)).resolve()  # type: ignore[name-defined]
        if binding is not None:
            target = attribute(kind, json, binding, computed)
            if isinstance(target, Many | Either):
                return target.primary_sort_key(binding)
            return target.sort_key()
    return None
