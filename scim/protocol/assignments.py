"""PatchOps that only give attributes new values, applied to the stored document.

What identity systems send most is a PATCH that sets a few attributes: Microsoft Entra ID
``{"op": "Replace", "path": "name.givenName", "value": "…"}`` and ``emails[type eq
"work"].value``, Okta ``{"op": "replace", "value": {"active": false}}``. For a sub-attribute
or single-valued attribute that a client may write (mutability ``readWrite``), whose value
its type reads as a string, boolean or integer, and that no validator of its own checks, RFC
7644 §3.5.2.1 (``add`` to a single-valued attribute) and §3.5.2.3 (``replace``) come to one
thing: the value, as its type reads it, takes the place of the one stored (in each value of
a multi-valued attribute the path's filter selects), the attributes a value for a complex
attribute or the resource leaves out kept. Those operations are applied here to the stored
document itself, which is what scim2-models' application makes of them without building the
resource's model, copying it for its undo, and dumping it again (two thirds of such a PATCH's
own time). Sent in the forms identity systems use (``as_sent``), they are not made a
PatchOp at all: the attributes' table stands for the validation of their paths.

Anything else is for scim2-models (``apply`` answers None): another operation, attribute or
filter, a null or blank value (an unassignment, or a required attribute left empty, which it
refuses), a value its type refuses or reads as something else, a filter that selects no
value (scim2-models adds one), or an extension the resource does not carry yet (its schema
joins ``schemas``). ``tests/engine/test_assignments.py`` holds both to the same result.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from scim2_models import ComplexAttribute, Mutability, PatchOp, PatchOperation, Path

from scim.registry import POLICY, ResourceKind

_WRITES = (str(PatchOperation.Op.add), str(PatchOperation.Op.replace_))
# What a validated value must be to be stored as it is: what JSON gives (a Reference, an enum
# or bytes is dumped by the model in a form of its own).
_PLAIN = (str, bool, int)
# attribute[sub eq "text"].sub (RFC 7644 §3.10's valuePath with one comparison), as Entra ID
# sends ``emails[type eq "work"].value``: the attribute, the compared sub-attribute, the text
# (a JSON string that needs no escape), the written sub-attribute.
_NAME = r"[A-Za-z][A-Za-z0-9_$-]*"
_SELECTED = re.compile(rf'({_NAME})\[({_NAME}) eq "([^"\\\x00-\x1f]*)"\]\.({_NAME})', re.ASCII)

# A place in the document: the object that holds the value, and the value's name in it.
_Place = tuple[dict[str, Any], str]
# Gives ``parent[key]`` as this document's own copy, an object (or a list).
_Own = Callable[..., Any]


class _Unassignable(Exception):
    """Not an operation for this module: scim2-models applies the PatchOp."""


@dataclass(frozen=True)
class _Target:
    """Where a single-valued attribute or sub-attribute sits in the stored document."""

    # The extension's URN (None: the resource's own schema), the attribute, its
    # sub-attribute (None: the attribute itself), as the document spells them.
    extension: str | None
    attribute: str
    sub: str | None
    adapter: TypeAdapter[Any]

    def places(self, document: dict[str, Any], own: _Own) -> Iterator[_Place]:
        place = document
        if self.extension is not None:
            if not isinstance(document.get(self.extension), dict):
                raise _Unassignable  # joining the resource: its URN joins "schemas"
            place = own(document, self.extension)
        if self.sub is None:
            yield place, self.attribute
        else:
            yield own(place, self.attribute), self.sub


@dataclass(frozen=True)
class _Selected:
    """A sub-attribute of the values of a multi-valued attribute that a filter selects."""

    attribute: str
    compared: str
    binding: Any  # scim2-models' binding of the compared sub-attribute
    form: Any  # the filter's text in its comparison form
    sub: str
    adapter: TypeAdapter[Any]

    def places(self, document: dict[str, Any], own: _Own) -> Iterator[_Place]:
        values = document.get(self.attribute)
        selected = [
            index
            for index, value in enumerate(values if isinstance(values, list) else ())
            if isinstance(value, dict) and self._selects(value.get(self.compared))
        ]
        if not selected:
            raise _Unassignable  # scim2-models adds a value (ScimPolicy.unmatched_path_filter)
        values = own(document, self.attribute, list)
        for index in selected:
            yield own(values, index), self.sub

    def _selects(self, held: Any) -> bool:
        return isinstance(held, str) and _comparable(self.binding, held) == self.form


@dataclass(frozen=True)
class _Listed:
    """A multi-valued complex attribute: its sub-attributes a filter may compare (lower case
    -> as spelled, and scim2-models' binding of it), and those an assignment may write
    (lower case -> as spelled, and how its type reads a value)."""

    attribute: str
    compared: dict[str, tuple[str, Any]]
    written: dict[str, tuple[str, TypeAdapter[Any]]]

    def selected(self, compared: str, text: str, written: str) -> _Selected:
        by, target = self.compared.get(compared.lower()), self.written.get(written.lower())
        if by is None or target is None:
            raise _Unassignable
        name, binding = by
        return _Selected(self.attribute, name, binding, _comparable(binding, text), *target)


@dataclass(frozen=True)
class _Table:
    # Attribute paths (lower case) -> their place; the paths whose value is an object
    # written key by key (a complex attribute, an extension) -> the prefix of its keys; the
    # multi-valued attributes a path may filter.
    targets: dict[str, _Target]
    objects: dict[str, str]
    listed: dict[str, _Listed]
    core: str


# An operation as sent: its op, its path (None: none) and its value.
Operation = tuple[str, str | None, Any]
# What assignments write: each value with the place it goes.
Writes = list[tuple["_Target | _Selected", Any]]
_SENT_KEYS = frozenset({"op", "path", "value"})


def as_sent(body: dict[str, Any], operations: list[Any]) -> list[Operation] | None:
    """A PATCH body's ``operations`` as sent, where the body holds nothing else that
    scim2-models would refuse or read otherwise: no other member than ``schemas`` and
    ``Operations`` (``_check_patch_schemas`` checks the schemas), and operations of ``op``,
    ``path`` and ``value`` alone, with text for op and path. None: the body is for
    scim2-models to validate."""
    if not body.keys() <= {"schemas", "Operations"}:
        return None
    found: list[Operation] = []
    for operation in operations:
        if not isinstance(operation, dict) or not operation.keys() <= _SENT_KEYS:
            return None
        op, path = operation.get("op"), operation.get("path")
        if not isinstance(op, str) or not isinstance(path, str | None):
            return None
        if "value" not in operation:
            return None
        found.append((op, path, operation["value"]))
    return found


class Assignments:
    """Applies PATCH operations that are assignments to a stored document."""

    def __init__(self, kinds: dict[str, ResourceKind]) -> None:
        self._tables = {kind.name: _table(kind) for kind in kinds.values()}

    def writes(self, kind: ResourceKind, operations: list[Operation]) -> Writes | None:
        """What the operations write, each value at its place; None if they are not all
        assignments of attributes a client may write (the table of ``kind``). Taken as
        sent (``as_sent``), they need no PatchOp of scim2-models: a path found in the table is
        one it takes, and what it would check of a value, the type's adapter checks when
        the value is written (``assign``)."""
        table = self._tables[kind.name]
        writes: Writes = []
        try:
            for op, path, value in operations:
                if op.lower() not in _WRITES:
                    return None
                if path is None:
                    _collect(table, "", value, writes)
                    continue
                lowered = path.lower()
                if lowered in table.objects:
                    _collect(table, table.objects[lowered], value, writes)
                else:
                    writes.append((_target(table, path), _scalar_sent(value)))
        except _Unassignable:
            return None
        return writes

    @staticmethod
    def assign(stored: dict[str, Any], writes: Writes) -> tuple[bool, dict[str, Any]] | None:
        """Whether ``writes`` change the document, and the document they make of ``stored``
        (which is left as it is); None if a value is not one to store as it is (for
        scim2-models to apply, or refuse)."""
        try:
            return _assigned(stored, writes)
        except _Unassignable:
            return None

    def apply(
        self, kind: ResourceKind, stored: dict[str, Any], patch: PatchOp[Any]
    ) -> tuple[bool, dict[str, Any]] | None:
        """``writes`` of a validated PatchOp, ``assign``ed to ``stored``."""
        operations = [
            (
                str(operation.op),
                None if operation.path is None else str(operation.path),
                operation.value,
            )
            for operation in patch.operations or ()
        ]
        writes = self.writes(kind, operations)
        return None if writes is None else self.assign(stored, writes)


def _collect(table: _Table, prefix: str, value: Any, writes: Writes) -> None:
    """The writes of an object's keys, each relative to ``prefix`` (RFC 7644 §3.5.2.3: the
    attributes it leaves out are kept)."""
    if not isinstance(value, dict) or not value:
        raise _Unassignable
    for key, item in value.items():
        path = prefix + key.lower()
        if key.lower() == "schemas":
            continue  # as scim2-models: a value's "schemas" is no attribute to write
        if path in table.objects:
            _collect(table, table.objects[path], item, writes)
        else:
            target = table.targets.get(path)
            if target is None:
                raise _Unassignable
            writes.append((target, _scalar_sent(item)))


def _scalar_sent(value: Any) -> Any:
    """A value sent for a single-valued attribute, if it is of the form every such value
    has (text, a boolean or a number): what a PatchOp's validation checks of a value is
    its form, so that of such a value it checks nothing (null, a list or an object it may
    refuse)."""
    if not isinstance(value, str | bool | int | float):
        raise _Unassignable
    return value


def _target(table: _Table, path: str) -> _Target | _Selected:
    target = table.targets.get(path.lower())
    if target is not None:
        return target
    if path[: len(table.core)].lower() == table.core:
        path = path[len(table.core) :]
    selected = _SELECTED.fullmatch(path)
    listed = table.listed.get(selected.group(1).lower()) if selected else None
    if selected is None or listed is None:
        raise _Unassignable
    return listed.selected(*selected.group(2, 3, 4))


def _assigned(stored: dict[str, Any], writes: Writes) -> tuple[bool, dict[str, Any]]:
    document = dict(stored)
    # The objects and lists copied from ``stored`` so far, by id, so that each is copied once.
    copied: set[int] = set()

    def own(parent: Any, key: Any, kind: type = dict) -> Any:
        child = parent[key] if isinstance(parent, list) else parent.get(key)
        if child is None and kind is dict:
            child = parent[key] = {}
            copied.add(id(child))
        elif not isinstance(child, kind):
            raise _Unassignable
        elif id(child) not in copied:
            child = parent[key] = kind(child)
            copied.add(id(child))
        return child

    changed = False
    for target, value in writes:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _Unassignable
        try:
            value = target.adapter.validate_python(value)
        except ValidationError:
            raise _Unassignable from None
        if type(value) not in _PLAIN:
            raise _Unassignable
        for place, name in target.places(document, own):
            old = place.get(name)
            if old != value or type(old) is not type(value):
                place[name] = value
                changed = True
    return changed, document


def _comparable(binding: Any, text: str) -> Any:
    """The text in the form a filter compares it in (scim2-models' comparison key)."""
    try:
        return binding.comparable(text, POLICY)
    except ValueError:
        raise _Unassignable from None


def _table(kind: ResourceKind) -> _Table:
    targets: dict[str, _Target] = {}
    objects: dict[str, str] = {}
    listed: dict[str, _Listed] = {}
    for name, field in kind.model.model_fields.items():
        attribute = _scim_name(field, name)
        adapter = _scalar(kind.model, name)
        if adapter is not None:
            targets[attribute.lower()] = _Target(None, attribute, None, adapter)
            continue
        complex_, multi = _complex(kind.model, name)
        if complex_ is None:
            continue
        written = {
            _scim_name(sub_field, sub_name): sub_adapter
            for sub_name, sub_field in complex_.model_fields.items()
            if (sub_adapter := _scalar(complex_, sub_name)) is not None
        }
        if multi:
            compared = {
                sub.lower(): (
                    sub,
                    Path.__class_getitem__(kind.model)(f"{attribute}.{sub}").resolve(),
                )
                for sub_name, sub_field in complex_.model_fields.items()
                if _textual(sub_field.annotation) and (sub := _scim_name(sub_field, sub_name))
            }
            # RFC 7643 §2.4: one value at most is primary; scim2-models keeps it so.
            writable = {s.lower(): (s, adapter) for s, adapter in written.items() if s != "primary"}
            listed[attribute.lower()] = _Listed(attribute, compared, writable)
            continue
        objects[attribute.lower()] = f"{attribute.lower()}."
        for sub, sub_adapter in written.items():
            targets[f"{attribute}.{sub}".lower()] = _Target(None, attribute, sub, sub_adapter)
    # RFC 7644 §3.10: an attribute of the resource's own schema may be named with its URN.
    core = f"{kind.schema}:".lower()
    targets |= {core + path: target for path, target in targets.items()}
    objects |= {core + path: prefix for path, prefix in objects.items()}
    for urn, extension in kind.model.get_extension_models().items():
        objects[urn.lower()] = f"{urn.lower()}:"
        for name, field in extension.model_fields.items():
            adapter = _scalar(extension, name)
            if adapter is not None:
                attribute = _scim_name(field, name)
                targets[f"{urn}:{attribute}".lower()] = _Target(urn, attribute, None, adapter)
    return _Table(targets, objects, listed, core)


def _scim_name(field: Any, name: str) -> str:
    return str(field.serialization_alias or field.alias or name)


def _writable(model: type[BaseModel], name: str) -> bool:
    """A client may write it, and nothing but its type checks it."""
    field = model.model_fields[name]
    validators = model.__pydantic_decorators__.field_validators.values()
    return (
        model.get_field_annotation(name, Mutability) == Mutability.read_write  # type: ignore[attr-defined]
        and all(isinstance(marker, Enum) for marker in field.metadata)  # SCIM's markers only
        and not any(name in v.info.fields or "*" in v.info.fields for v in validators)
    )


def _optional(annotation: Any) -> Any:
    """``T`` of ``T | None``; None for any other annotation."""
    match getattr(annotation, "__args__", ()):
        case (inner, none) if none is type(None):
            return inner
    return None


def _scalar(model: type[BaseModel], name: str) -> TypeAdapter[Any] | None:
    """How a single-valued attribute's type reads a value, if it holds no object or list
    and a client may write it."""
    annotation: Any = model.model_fields[name].annotation
    inner = _optional(annotation)
    if inner is None or getattr(inner, "__origin__", None) is list or _is_model(inner):
        return None
    return _adapter(annotation) if _writable(model, name) else None


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _textual(annotation: Any) -> bool:
    inner = _optional(annotation)
    return isinstance(inner, type) and issubclass(inner, str)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _complex(model: type[BaseModel], name: str) -> tuple[type[BaseModel] | None, bool]:
    """The model of a complex attribute a client may write, and whether it is
    multi-valued."""
    inner = _optional(model.model_fields[name].annotation)
    multi = getattr(inner, "__origin__", None) is list
    if multi:
        inner = inner.__args__[0]
    if isinstance(inner, type) and issubclass(inner, ComplexAttribute) and _writable(model, name):
        return inner, multi
    return None, False
