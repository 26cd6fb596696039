"""PatchOps that only give single-valued attributes new values, applied to the stored document.

What identity systems send most is a PATCH that sets a few single-valued attributes:
Microsoft Entra ID ``{"op": "Replace", "path": "name.givenName", "value": "…"}``, Okta
``{"op": "replace", "value": {"active": false}}``. For an attribute of a simple type
(string, boolean, integer) that a client may write (mutability ``readWrite``) and that no
validator of its own checks, RFC 7644 §3.5.2.1 (``add`` to a single-valued attribute) and
§3.5.2.3 (``replace``) come to one thing: the value, as its type reads it, takes the place of
the one stored, the attributes a value for a complex attribute or the resource leaves out
kept. Those operations are applied here to the stored document itself, which is what
scim2-models' application makes of them without building the resource's model, copying it
for its undo, and dumping it again (two thirds of such a PATCH's own time).

Anything else is for scim2-models (``apply`` answers None): another operation or attribute,
a null or blank value (an unassignment, or a required attribute left empty, which it
refuses), a value its type refuses, or an extension the resource does not carry yet (its
schema joins ``schemas``). ``tests/engine/test_assignments.py`` holds both to the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from scim2_models import ComplexAttribute, Mutability, PatchOp, PatchOperation

from scim.registry import ResourceKind

# How each simple type reads a value: as the model's validation does (``"False"`` is false).
_SIMPLE: dict[Any, TypeAdapter[Any]] = {
    str | None: TypeAdapter(str | None),
    bool | None: TypeAdapter(bool | None),
    int | None: TypeAdapter(int | None),
}
_WRITES = (PatchOperation.Op.add, PatchOperation.Op.replace_)


@dataclass(frozen=True)
class _Target:
    """Where a single-valued simple attribute sits in the stored document."""

    # The extension's URN (None: the resource's own schema), the attribute, its
    # sub-attribute (None: the attribute itself), as the document spells them.
    extension: str | None
    attribute: str
    sub: str | None
    adapter: TypeAdapter[Any]


class _Unassignable(Exception):
    """Not an operation for this module: scim2-models applies the PatchOp."""


@dataclass(frozen=True)
class _Table:
    # Attribute paths (lower case) -> their place; and the paths whose value is an object
    # written key by key (a complex attribute, an extension) -> the prefix of its keys.
    targets: dict[str, _Target]
    objects: dict[str, str]


class Assignments:
    """Applies a PatchOp of single-valued assignments to a stored document."""

    def __init__(self, kinds: dict[str, ResourceKind]) -> None:
        self._tables = {kind.name: _table(kind) for kind in kinds.values()}

    def apply(
        self, kind: ResourceKind, stored: dict[str, Any], patch: PatchOp[Any]
    ) -> tuple[bool, dict[str, Any]] | None:
        """Whether the operations changed the document, and the document they make of
        ``stored`` (which is left as it is); None if they are not all assignments."""
        table = self._tables[kind.name]
        writes: list[tuple[_Target, Any]] = []
        try:
            for operation in patch.operations or ():
                if operation.op not in _WRITES:
                    return None
                if operation.path is None:
                    _collect(table, "", operation.value, writes)
                else:
                    path = str(operation.path).lower()
                    if path in table.objects:
                        _collect(table, table.objects[path], operation.value, writes)
                    else:
                        writes.append((_target(table, path), operation.value))
            return _assigned(stored, writes)
        except _Unassignable:
            return None


def _collect(table: _Table, prefix: str, value: Any, writes: list[tuple[_Target, Any]]) -> None:
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
            writes.append((_target(table, path), item))


def _target(table: _Table, path: str) -> _Target:
    target = table.targets.get(path)
    if target is None:
        raise _Unassignable
    return target


def _assigned(
    stored: dict[str, Any], writes: list[tuple[_Target, Any]]
) -> tuple[bool, dict[str, Any]]:
    document = dict(stored)
    # The objects copied from ``stored`` so far, by id, so that each is copied once.
    copied: set[int] = set()

    def own(parent: dict[str, Any], key: str) -> dict[str, Any]:
        """``parent[key]``, an object, as this document's own copy."""
        child = parent.get(key)
        if child is None:
            child = parent[key] = {}
            copied.add(id(child))
        elif not isinstance(child, dict):
            raise _Unassignable
        elif id(child) not in copied:
            child = parent[key] = dict(child)
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
        place = document
        if target.extension is not None:
            if not isinstance(document.get(target.extension), dict):
                raise _Unassignable  # joining the resource: its URN joins "schemas"
            place = own(document, target.extension)
        name = target.attribute
        if target.sub is not None:
            place, name = own(place, name), target.sub
        old = place.get(name)
        if old != value or type(old) is not type(value):
            place[name] = value
            changed = True
    return changed, document


def _table(kind: ResourceKind) -> _Table:
    targets: dict[str, _Target] = {}
    objects: dict[str, str] = {}
    for name, field in kind.model.model_fields.items():
        attribute = _scim_name(field, name)
        adapter = _simple(kind.model, name)
        if adapter is not None:
            targets[attribute.lower()] = _Target(None, attribute, None, adapter)
            continue
        complex_ = _complex(kind.model, name)
        if complex_ is None:
            continue
        objects[attribute.lower()] = f"{attribute.lower()}."
        for sub_name, sub_field in complex_.model_fields.items():
            sub_adapter = _simple(complex_, sub_name)
            if sub_adapter is not None:
                sub = _scim_name(sub_field, sub_name)
                path = f"{attribute}.{sub}".lower()
                targets[path] = _Target(None, attribute, sub, sub_adapter)
    # RFC 7644 §3.10: an attribute of the resource's own schema may be named with its URN.
    core = f"{kind.schema}:".lower()
    targets |= {core + path: target for path, target in targets.items()}
    objects |= {core + path: prefix for path, prefix in objects.items()}
    for urn, extension in kind.model.get_extension_models().items():
        objects[urn.lower()] = f"{urn.lower()}:"
        for name, field in extension.model_fields.items():
            adapter = _simple(extension, name)
            if adapter is not None:
                attribute = _scim_name(field, name)
                targets[f"{urn}:{attribute}".lower()] = _Target(urn, attribute, None, adapter)
    return _Table(targets, objects)


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


def _simple(model: type[BaseModel], name: str) -> TypeAdapter[Any] | None:
    """How the attribute's type reads a value, if it is a single-valued simple one."""
    adapter = _SIMPLE.get(model.model_fields[name].annotation)
    return adapter if adapter is not None and _writable(model, name) else None


def _complex(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The model of a single-valued complex attribute."""
    arguments: tuple[Any, ...] = getattr(model.model_fields[name].annotation, "__args__", ())
    match arguments:
        case (type() as inner, none) if none is type(None) and issubclass(inner, ComplexAttribute):
            return inner if _writable(model, name) else None
    return None
