"""PATCH operations on a group's ``members`` (RFC 7644 §3.5.2), read into as few set-wise
steps as they allow, before any database work.

Identity systems change memberships one member per operation: Entra ID removes with a value
list and no filter, others with ``members[value eq "<id>"]``. Each run of like operations
becomes one step, which the engine applies as one statement, whatever its length: a write
transaction stays short, and another organisation's write does not wait behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from scim2_models import (
    InvalidPathException,
    InvalidSyntaxException,
    InvalidValueException,
    MutabilityException,
    SCIMException,
    ScimFilter,
)

MEMBERS_URN = "urn:ietf:params:scim:schemas:core:2.0:group:members"

# A member: its id, and the display the client sent (or None).
Member = tuple[str, str | None]

# ``[value eq "<id>"]``, the selector nearly every remove uses, read without the filter
# parser: one member by its id, compared exactly (members.value is an id).
_BY_VALUE = re.compile(r'\[\s*value\s+eq\s+"([^"\\]*)"\s*\]', re.IGNORECASE)


class Action(Enum):
    ADD = "add"
    # Every member replaced by ``members``.
    REPLACE = "replace"
    # The members named in ``ids``, and those any filter of ``wheres`` selects, removed.
    REMOVE = "remove"
    # Every member removed.
    CLEAR = "clear"


@dataclass
class Step:
    """One set-wise change of the members, applied in order."""

    action: Action
    members: list[Member] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    wheres: list[Any] = field(default_factory=list)

    def absorb(self, other: Step) -> bool:
        """Take ``other`` in, if applying both in turn is applying this one: adds after an
        add or a replace; removals after removals (a filter selects a member by what it is,
        not by which others are left, so removing what each selects in turn is removing
        what any selects)."""
        if other.action is Action.ADD and self.action in (Action.ADD, Action.REPLACE):
            self.members += other.members
            return True
        if other.action is Action.REMOVE and self.action is Action.REMOVE:
            self.ids += other.ids
            self.wheres += other.wheres
            return True
        return False


def split(operations: list[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """What touches ``members`` (applied in SQL), apart from the rest (applied by
    scim2-models); each member operation gets its path's ``selector``: what follows
    ``members`` (``""``, ``[filter]`` or ``.sub``)."""
    others: list[Any] = []
    member_operations: list[dict[str, Any]] = []
    for operation in operations:
        if not isinstance(operation, dict):
            raise InvalidSyntaxException(detail="Each operation is a JSON object")
        path = operation.get("path")
        if isinstance(path, str):
            selector = _selector(path.strip())
            if selector is None:
                others.append(operation)
            else:
                member_operations.append({**operation, "selector": selector})
            continue
        value = operation.get("value")
        if isinstance(value, dict):
            member_keys = [k for k in value if k.lower() in ("members", MEMBERS_URN)]
            if member_keys:
                rest = {k: v for k, v in value.items() if k not in member_keys}
                for key in member_keys:
                    member_operations.append(
                        {"op": operation.get("op"), "selector": "", "value": value[key]}
                    )
                if rest:
                    others.append({**operation, "value": rest})
                continue
        others.append(operation)
    return others, member_operations


def _selector(path: str) -> str | None:
    lowered = path.lower()
    for prefix in (MEMBERS_URN, "members"):
        if lowered.startswith(prefix) and lowered[len(prefix) : len(prefix) + 1] in ("", "[", "."):
            return path[len(prefix) :]
    return None


def steps(member_operations: list[dict[str, Any]]) -> list[Step]:
    """The operations as steps, each run of like ones merged into one."""
    merged: list[Step] = []
    for operation in member_operations:
        step = _step(operation)
        if not merged or not merged[-1].absorb(step):
            merged.append(step)
    return merged


def _step(operation: dict[str, Any]) -> Step:
    op = str(operation.get("op", "")).lower()
    selector: str = operation.get("selector", "")
    value = operation.get("value")
    if selector.startswith("."):
        raise MutabilityException(
            detail=f"members{selector} cannot be written; add or remove members by value"
        )
    if op in ("add", "replace"):
        if selector:
            raise InvalidPathException(
                detail=f"{op} takes the path 'members' with a list of members, not a filter"
            )
        return Step(Action.ADD if op == "add" else Action.REPLACE, members=values(value))
    if op != "remove":
        raise InvalidValueException(detail=f"Unknown PATCH op {operation.get('op')!r}")
    if selector:
        by_value = _BY_VALUE.fullmatch(selector)
        if by_value is not None:
            return Step(Action.REMOVE, ids=[by_value.group(1)])
        return Step(Action.REMOVE, wheres=[_filter(selector)])
    if value is None:
        return Step(Action.CLEAR)
    # Microsoft Entra: remove named members with a value list and no filter.
    return Step(Action.REMOVE, ids=[member_id for member_id, _ in values(value)])


def values(value: Any) -> list[Member]:
    """The members a ``value`` names: one member object or a list of them."""
    items = value if isinstance(value, list) else [value]
    found: list[Member] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise InvalidValueException(
                detail='members: each member is an object with a "value" holding its id'
            )
        display = item.get("display")
        found.append((item["value"], display if isinstance(display, str) else None))
    return found


def _filter(selector: str) -> Any:
    """The filter of a ``members[...]`` path."""
    if not (selector.startswith("[") and selector.endswith("]")):
        raise InvalidPathException(detail=f"Invalid members path members{selector}")
    try:
        return ScimFilter(selector[1:-1]).ast
    except SCIMException:
        raise
    except ValueError as error:
        raise InvalidPathException(detail=str(error)) from error
