"""PatchOps (RFC 7644 §3.5.2) validated once per shape.

An identity system sends the same PATCH over and over with other values: Microsoft Entra ID
``{"op": "Replace", "path": "name.givenName", "value": "…"}`` for every user whose name
changed. Validating a PatchOp resolves each operation's path and the keys of its value
against the resource's schema: scim2-models' ``_check_operation``, an eighth of such a
request's time. What it checks of a value is its form (an object or not, its keys, whether
it is null or an empty list), never the text of a string in an ``add`` or ``replace``: those
are checked when the patch is applied, as they were. So the validated PatchOp of a shape
(the body the same but for those strings) is kept, and a request of that shape takes it with
its own values. A ``remove``'s value is no such value (scim2-models makes a filter of it),
so it belongs to the shape whole.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from contextlib import suppress
from typing import Any

from scim2_models import Context, PatchOp

from scim.recent import Recent

# Every string of a value is this in its shape: no attribute name holds Unicode's private use.
_MARK = "\ue000"
_SHAPES = 512
# Bodies with more operations, or a larger shape (its values and the text it keeps: paths,
# a remove's value), are validated whole: a body that large is not one an identity system
# repeats, and 512 of them kept would hold memory for nothing.
_MOST_OPERATIONS = 16
_LARGEST = 2048
_WRITES = ("add", "replace")
_UNSEEN = object()
_SEEN = object()


class _Unshaped(Exception):
    """The body is to be validated from the start."""


class _TooLarge(Exception):
    """The shape is more than ``_LARGEST``."""


class Patches:
    """Validates a PatchOp's body, once per shape."""

    def __init__(self) -> None:
        # Shape -> its validated PatchOp; None: validated from the start; _SEEN: seen once.
        self._shapes = Recent(_SHAPES)

    def validate(self, model: Any, body: Mapping[str, Any]) -> PatchOp[Any]:
        """``PatchOp[model]`` of the body; raises as its validation does."""
        try:
            return self._shaped(model, body)
        except _Unshaped:
            return _validated(model, body)

    def _shaped(self, model: Any, body: Mapping[str, Any]) -> PatchOp[Any]:
        operations = body.get("Operations")
        if not isinstance(operations, list) or not 0 < len(operations) <= _MOST_OPERATIONS:
            raise _Unshaped
        if any(isinstance(o, dict) and _named_twice(o) for o in operations):
            raise _Unshaped  # validation reads the last of "value" and "Value"; a copy, "value"
        try:
            key = (model, _shape(body))
        except (TypeError, _TooLarge):  # a member of a form no PATCH body has; or too much
            raise _Unshaped from None
        shaped = self._shapes.find(key, _UNSEEN)
        if shaped is _UNSEEN:
            # A shape seen once is only remembered: one no other request has costs no more.
            self._shapes.keep(key, _SEEN)
            raise _Unshaped
        if shaped is _SEEN:
            shaped = self._learn(key, model, body)
        if shaped is None:
            raise _Unshaped
        # The values as sent: validation keeps an operation's value as it is (``Any``).
        patch: PatchOp[Any] = shaped.model_copy(
            update={
                "operations": [
                    operation.model_copy(update={"value": sent["value"]})
                    if isinstance(sent, dict) and "value" in sent
                    else operation
                    for operation, sent in zip(shaped.operations, operations, strict=True)
                ]
            }
        )
        return patch

    def _learn(self, key: Hashable, model: Any, body: Mapping[str, Any]) -> PatchOp[Any] | None:
        """The shape's PatchOp, validated with its marks; None if that fails (the request is
        then refused by its own validation, which fails the same way)."""
        shaped = None
        # Whatever fails it, the body's own validation says so.
        with suppress(Exception):
            shaped = _validated(model, _marked(body))
        if shaped is not None and len(shaped.operations or ()) != len(body["Operations"]):
            shaped = None
        self._shapes.keep(key, shaped)
        return shaped


def _named_twice(operation: dict[Any, Any]) -> bool:
    """Whether two members of an operation have one name in two cases (attribute names are
    case-insensitive: RFC 7643 §2.1)."""
    return len({str(name).lower() for name in operation}) != len(operation)


def _validated(model: Any, body: Mapping[str, Any]) -> PatchOp[Any]:
    return PatchOp[model].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def _marked(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body with each string of an ``add``'s or ``replace``'s value a mark."""
    return {
        **body,
        "Operations": [
            {**operation, "value": _strings_marked(operation["value"])}
            if _writes(operation)
            else operation
            for operation in body["Operations"]
        ],
    }


def _writes(operation: Any) -> bool:
    return (
        isinstance(operation, dict)
        and "value" in operation
        and isinstance(operation.get("op"), str)
        and operation["op"].lower() in _WRITES
    )


def _strings_marked(value: Any) -> Any:
    if isinstance(value, str):
        return _MARK
    if isinstance(value, list):
        return [_strings_marked(item) for item in value]
    if isinstance(value, dict):
        return {name: _strings_marked(item) for name, item in value.items()}
    return value


def _shape(body: Mapping[str, Any]) -> Hashable:
    """The body as a key, each string of a write's value a mark; TypeError if it holds what
    JSON does not, _TooLarge if it is more than ``_LARGEST`` (a value or a member name is
    one, a string as many as its characters)."""
    left = _LARGEST

    def frozen(value: Any) -> Hashable:
        nonlocal left
        left -= len(value) if isinstance(value, str) else 1
        if left < 0:
            raise _TooLarge
        if isinstance(value, dict):
            return ("{", *((frozen(name), frozen(item)) for name, item in value.items()))
        if isinstance(value, list):
            return ("[", *(frozen(item) for item in value))
        if value is None or isinstance(value, str | bool | int | float):
            # The type too: 1, 1.0 and True are equal keys, and not the same value.
            return (type(value).__name__, value)
        raise TypeError(value)

    return frozen(_marked(body))
