"""A new resource's body (RFC 7644 §3.3) validated once per shape.

An identity system creates users with one body over and over, other values in the same
places: Microsoft Entra ID's ``userName``, ``name``, ``emails`` and ``active`` for every person
it provisions. Validating such a body into scim2-models' model and dumping it again is a third
of what a POST costs the server. What that validation makes of a body depends on its names,
its structure and its non-string values, and of a string only on the string's own type: a
plain ``str`` is kept as sent, an e-mail address checked and normalised
(``scim.emails.EmailAddress``), a value with canonical values matched to one regardless of its
case (RFC 7643 §2.3.1, scim2-models' ``ExtensibleStringEnum``). So the document of a shape (the
body the same but for such strings) is learnt once, by validating the body with a mark in
place of each of them, and a body of that shape takes it with its own strings, each validated
by its type alone (pydantic's ``TypeAdapter``, as the model validates it).

Whatever could depend on a string's text keeps its string in the shape, so that the shape
decides it: ``schemas``, a field with a validator or constraint of its own, a model with a
validator of its own, a type other than the three above, a string empty or blank (a required
one is refused so, RFC 7643 §2.2). A string that fails its type sends the body to validation
whole, which refuses it as it always did: this path only ever answers a body that
validation whole accepts, with the document that validation makes of it
(``tests/engine/test_creations.py`` compares the two over the bodies identity systems send).
"""

from __future__ import annotations

import secrets
import types
import typing
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, WrapSerializer
from scim2_models import (
    CaseExact,
    Mutability,
    Required,
    Returned,
    ScimPolicy,
    Uniqueness,
    default_comparison_key,
)
from scim2_models.resources.resource import _extension_serializer

from scim.emails import EmailAddress
from scim.recent import Recent

# Marks are this process's own: a body cannot send one (a string that looks like a mark is
# part of its shape and is refused by ``_holes``). A mark has Unicode's private use around it,
# an e-mail address's is an address on a domain no one has.
_TOKEN = secrets.token_hex(8)
_MARK = "\ue000"
_ADDRESS = f"mark{_TOKEN}.invalid"
_SHAPES = 256
# A larger body (its strings' lengths count) is validated whole: not one that is repeated.
_LARGEST = 4096
# What scim2-models notes of an attribute (RFC 7643 §2.2), which validation does not check of a
# string's text; any other metadata of a field (a constraint) keeps its strings in the shape.
_NOTES = (CaseExact, Mutability, Required, Returned, Uniqueness)
_UNSEEN = object()
_SEEN = object()
# The model validators of scim2-models' resources, which read no string's text (besides
# ``schemas``, never a slot, and the comparison forms, which only a comparison key other than
# the default checks: ``Creations`` then validates every body whole).
_KNOWN_VALIDATORS = frozenset(
    {
        "_resolve_attribute_names",
        "_enforce_scim_context",
        "_populate_schemas_default",
        "_validate_schemas_attribute",
        "_validate_extension_schemas",
        "_validate_resource_requirements",
        "_validate_comparison_forms",
    }
)


class _Whole(Exception):
    """The body is to be validated whole."""


@dataclass(frozen=True)
class _Slot:
    """Where a string is not part of the shape: how a value there is validated, and its mark."""

    convert: Callable[[str], str] | None  # None: kept as sent
    mark: Callable[[int], str]

    def validated(self, value: str) -> str:
        return value if self.convert is None else self.convert(value)


@dataclass(frozen=True)
class _Hole:
    """Where the learnt document takes the body's n-th string."""

    index: int


# A node of a model's tree: attributes by folded name, or a slot.
_Tree = dict[str, Any]


class Creations:
    """The documents of creation bodies, by shape."""

    def __init__(self, policy: ScimPolicy) -> None:
        # (model, shape) -> learnt document; None: validated whole; _SEEN: seen once.
        self._shapes = Recent(_SHAPES)
        # Another comparison key has every string's text checked (``_KNOWN_VALIDATORS``).
        self._texts_checked = policy.comparison_key is not default_comparison_key

    def document(
        self,
        model: type[BaseModel],
        whole: Callable[[dict[str, Any]], dict[str, Any]],
        body: dict[str, Any],
    ) -> dict[str, Any]:
        """What ``whole`` (validation of a body for ``model`` and its dump) makes of ``body``,
        or raises as it does."""
        if self._texts_checked:
            return whole(body)
        strings: list[tuple[_Slot, str]] = []
        try:
            key = (model, _shape(_tree(model), body, strings))
        except (TypeError, _Whole):
            return whole(body)
        learnt = self._shapes.find(key, _UNSEEN)
        if learnt is _UNSEEN:
            # A shape seen once is only remembered: one no other request has costs no more.
            self._shapes.keep(key, _SEEN)
            return whole(body)
        if learnt is _SEEN:
            learnt = self._learn(key, model, body, strings, whole)
        if learnt is None:
            return whole(body)
        try:
            values = [slot.validated(value) for slot, value in strings]
        except ValueError:  # pydantic's ValidationError too: validation whole says what
            return whole(body)
        document: dict[str, Any] = _filled(learnt, values)
        return document

    def _learn(
        self,
        key: Hashable,
        model: type[BaseModel],
        body: dict[str, Any],
        strings: list[tuple[_Slot, str]],
        whole: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Any:
        """The shape's document with a hole for each string, validated with their marks;
        None where that fails or a mark comes out changed."""
        marks = {slot.mark(index): index for index, (slot, _) in enumerate(strings)}
        learnt = None
        try:
            marked = _marked(_tree(model), body, iter(marks))
            learnt = _holes(whole(marked), marks)
        except Exception:  # whatever fails it, the body's own validation says so
            learnt = None
        self._shapes.keep(key, learnt)
        return learnt


@cache
def _tree(model: type[BaseModel]) -> _Tree:
    """The attributes of ``model`` whose strings are slots, by folded name (RFC 7643 §2.1)."""
    decorators = model.__pydantic_decorators__
    if set(decorators.model_validators) - _KNOWN_VALIDATORS:
        return {}
    validated = {
        name for decorator in decorators.field_validators.values() for name in decorator.info.fields
    }
    tree: _Tree = {}
    for name, info in model.model_fields.items():
        if name == "schemas" or name in validated:
            continue
        node = _node(info.annotation)
        if node is None or not all(_noted(note, node) for note in info.metadata):
            continue
        for alias in (name, info.serialization_alias, info.validation_alias):
            if isinstance(alias, str):
                tree[alias.lower()] = node
    return tree


def _noted(note: Any, node: _Tree | _Slot) -> bool:
    """Whether a field's ``note`` leaves its strings to their types: what scim2-models notes
    of an attribute, or its dump of an extension (which leaves out what is not the
    extension's, and an extension left empty: neither depends on a string's text)."""
    if isinstance(note, WrapSerializer):
        return isinstance(node, dict) and note.func is _extension_serializer
    return isinstance(note, _NOTES)


def _node(annotation: Any) -> _Tree | _Slot | None:
    """The tree or slot of one field's type; None if its strings belong to the shape."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        choices = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(choices) != 1:
            return None
        annotation = choices[0]
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    if annotation is str:
        return _PLAIN
    if annotation is EmailAddress:
        return _EMAIL
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, str) and issubclass(annotation, Enum):
        return _enum_slot(annotation)
    if issubclass(annotation, BaseModel):
        return _tree(annotation)
    return None


def _plain_mark(index: int) -> str:
    return f"{_MARK}{_TOKEN}{index}{_MARK}"


def _converted(adapter: TypeAdapter[Any]) -> Callable[[str], str]:
    return lambda value: str(adapter.validate_python(value))


_PLAIN = _Slot(None, _plain_mark)
_EMAIL = _Slot(_converted(TypeAdapter(EmailAddress)), lambda index: f"m{index}@{_ADDRESS}")


@cache
def _enum_slot(enum: type[Enum]) -> _Slot:
    # An unknown value is kept as it is (``ExtensibleStringEnum``): so is a mark.
    return _Slot(_converted(TypeAdapter(enum)), _plain_mark)


def _child(tree: Any, name: Any) -> Any:
    return tree.get(name.lower()) if isinstance(tree, dict) and isinstance(name, str) else None


def _in_slot(node: Any, value: Any) -> bool:
    """Whether ``value`` is a slot's string, not part of the shape: blank text belongs to it
    (whether it is refused depends on the attribute, ``ResourceService``'s ``_require_text``)."""
    return isinstance(node, _Slot) and isinstance(value, str) and value.strip() != ""


def _shape(tree: Any, body: dict[str, Any], strings: list[tuple[_Slot, str]]) -> Hashable:
    """The body as a key, each slot's string a mark (collected in ``strings``); TypeError if
    it holds what JSON does not, _Whole if it is more than ``_LARGEST``."""
    left = _LARGEST

    def frozen(node: Any, value: Any) -> Hashable:
        nonlocal left
        left -= len(value) if isinstance(value, str) else 1
        if left < 0:
            raise _Whole
        if isinstance(value, dict):
            items = value.items()
            return ("{", *((name, frozen(_child(node, name), item)) for name, item in items))
        if isinstance(value, list):
            return ("[", *(frozen(node, item) for item in value))
        if _in_slot(node, value):
            strings.append((node, value))
            return _MARK
        if value is None or isinstance(value, str | bool | int | float):
            # The type too: 1, 1.0 and True are equal keys, and not the same value.
            return (type(value).__name__, value)
        raise TypeError(value)

    return frozen(tree, body)


def _marked(tree: Any, value: Any, marks: Iterator[str]) -> Any:
    """The body with each slot's string its mark, in the order ``_shape`` met them."""
    if isinstance(value, dict):
        return {name: _marked(_child(tree, name), item, marks) for name, item in value.items()}
    if isinstance(value, list):
        return [_marked(tree, item, marks) for item in value]
    if _in_slot(tree, value):
        return next(marks)
    return value


def _holes(document: Any, marks: dict[str, int]) -> Any:
    """The validated marked body, each mark a hole; _Whole if a mark came out changed."""
    if isinstance(document, dict):
        return {name: _holes(item, marks) for name, item in document.items()}
    if isinstance(document, list):
        return [_holes(item, marks) for item in document]
    if isinstance(document, str):
        if document in marks:
            return _Hole(marks[document])
        if _TOKEN in document:
            raise _Whole
    return document


def _filled(learnt: Any, values: list[str]) -> Any:
    """A new document from the learnt one, its holes the body's strings."""
    if isinstance(learnt, dict):
        return {name: _filled(item, values) for name, item in learnt.items()}
    if isinstance(learnt, list):
        return [_filled(item, values) for item in learnt]
    if isinstance(learnt, _Hole):
        return values[learnt.index]
    return learnt
