"""``attributes`` and ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9) on stored documents.

Stored documents are plain dicts; projecting them here costs microseconds, where
a round trip through the pydantic models would cost hundreds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

from scim2_models import Attribute, Schema

# RFC 7643 §3.1 and §8.7.1: the attributes common to every resource.
_COMMON = {"id": "always", "schemas": "always", "externalid": "default", "meta": "default"}


@dataclass
class _Attr:
    name: str
    returned: str
    subs: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Sub-attributes returned ``never``, or only on ``request`` by their own name.
    hidden: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.hidden = frozenset(k for k, (_, r) in self.subs.items() if r in ("never", "request"))


def _tree(attributes: Iterable[Attribute]) -> dict[str, _Attr]:
    tree: dict[str, _Attr] = {}
    for attribute in attributes:
        name = str(attribute.name)
        returned = attribute.returned.value if attribute.returned else "default"
        subs = {
            str(sub.name).lower(): (
                str(sub.name),
                sub.returned.value if sub.returned else "default",
            )
            for sub in attribute.sub_attributes or []
        }
        tree[name.lower()] = _Attr(name, returned, subs)
    return tree


# RFC 7643 §3.1: the sub-attributes of ``meta``, so that ``meta.created`` selects one.
_COMMON_TREE = {
    "meta": _Attr(
        "meta",
        "default",
        {
            name.lower(): (name, "default")
            for name in ("resourceType", "created", "lastModified", "location", "version")
        },
    )
}

# A selection: attribute (lower case) -> None for the whole attribute, or the sub-attributes.
Selection = dict[str, set[str] | None]


class Projector:
    """Knows which attributes of one resource type are returned when."""

    def __init__(self, schema: Schema, extensions: Iterable[Schema]) -> None:
        self.schema = str(schema.id)
        self.core = _tree(schema.attributes or [])
        self.extensions = {
            str(ext.id).lower(): (str(ext.id), _tree(ext.attributes or [])) for ext in extensions
        }

    def _parse(self, path: str) -> tuple[str | None, str | None, str | None]:
        """Split a path into (extension URN or None, attribute, sub-attribute), lower case."""
        lowered = path.lower()
        container: str | None = None
        for urn in sorted(self.extensions, key=len, reverse=True):
            if lowered == urn:
                return urn, None, None
            if lowered.startswith(urn + ":"):
                container, lowered = urn, lowered[len(urn) + 1 :]
                break
        else:
            if lowered.startswith(self.schema.lower() + ":"):
                lowered = lowered[len(self.schema) + 1 :]
        attr, _, sub = lowered.partition(".")
        return container, attr, sub or None

    def plan(self, attributes: Iterable[str] | None, excluded: Iterable[str] | None) -> Plan:
        requested: dict[str | None, Selection] = {}
        for path in attributes or ():
            container, attr, sub = self._parse(str(path))
            _select(requested.setdefault(container, {}), attr, sub)
        dropped: dict[str | None, Selection] = {}
        for path in excluded or ():
            container, attr, sub = self._parse(str(path))
            _select(dropped.setdefault(container, {}), attr, sub)
        if not attributes and not excluded:
            return self._default
        return Plan(self, requested if attributes else None, dropped)

    @cached_property
    def _default(self) -> Plan:
        """The plan of a request that names no attributes, as most do: one for all of them,
        so that what it decides for each attribute is decided once (``Plan.apply``)."""
        return Plan(self, None, {})


def _select(selection: Selection, attr: str | None, sub: str | None) -> None:
    key = attr or "*"
    if sub is None:
        selection[key] = None
    elif key not in selection:
        selection[key] = {sub}
    elif (subs := selection[key]) is not None:
        subs.add(sub)


# What a plan does with the value of one attribute of a document: its projection, or _DROP.
_Decision = Callable[[Any], Any]
_DROP: Any = object()
# Attribute names a plan remembers its decisions for: a schema's own, and the extensions'.
_REMEMBERED = 256
# Documents' sets of attribute names (in their order) a plan remembers what it changes in:
# the resources of a type hold a few.
_LAYOUTS = 64


def _same(value: Any) -> Any:
    return value


def _dropped(_value: Any) -> Any:
    return _DROP


# The attributes a plan changes in a document, each with its decision (``_projected``).
_Changes = tuple[tuple[str, _Decision], ...]


@dataclass
class _Memo:
    """What a plan decided for the attributes of documents (or of an extension's part of
    them): each name's decision (up to ``_REMEMBERED`` names: keys a client made up are
    decided each time), and which of them change, by the set of names in their order (up to
    ``_LAYOUTS``: the resources of a type hold a few)."""

    decisions: dict[str, _Decision] = field(default_factory=dict)
    layouts: dict[tuple[str, ...], _Changes] = field(default_factory=dict)

    def learn(self, names: tuple[str, ...], decide: Callable[[str], _Decision]) -> _Changes:
        """What changes in a document of these names, found and kept (``layouts``)."""
        changes = tuple(
            (key, decision)
            for key in names
            if (decision := self._decision(key, decide)) is not _same
        )
        if len(self.layouts) < _LAYOUTS:
            self.layouts[names] = changes
        return changes

    def _decision(self, key: str, decide: Callable[[str], _Decision]) -> _Decision:
        decision = self.decisions.get(key)
        if decision is None:
            decision = decide(key)
            if len(self.decisions) < _REMEMBERED:
                self.decisions[key] = decision
        return decision


@dataclass
class Plan:
    """The projection one request asks for."""

    projector: Projector
    requested: dict[str | None, Selection] | None
    dropped: dict[str | None, Selection]
    # What it decided for the document's attributes, and for each extension's (by URN,
    # lower case).
    _memo: _Memo = field(default_factory=_Memo, init=False, repr=False)
    _in_extension: dict[str, _Memo] = field(default_factory=dict, init=False, repr=False)

    def returns(self, attr: str, extension: str | None = None) -> bool:
        """Whether an attribute (of the core schema, or of ``extension``) is returned at all,
        to avoid loading what is not."""
        container = extension.lower() if extension else None
        if container is not None:
            if container not in self.projector.extensions:
                return False
            tree = self.projector.extensions[container][1]
            info = tree.get(attr.lower())
            returned = info.returned if info else "default"
            if self.requested is not None and "*" in self.requested.get(container, {}):
                return returned != "never"
            if self.requested is None and "*" in self.dropped.get(container, {}):
                return returned == "always"
            return self._keeps(container, attr.lower(), returned)
        info = self.projector.core.get(attr.lower())
        returned = info.returned if info else _COMMON.get(attr.lower(), "default")
        return self._keeps(None, attr.lower(), returned)

    def _keeps(self, container: str | None, attr: str, returned: str) -> bool:
        if returned == "always":
            return True
        if returned == "never":
            return False
        if self.requested is not None:
            selection = self.requested.get(container, {})
            return (
                attr in selection
                or "*" in selection
                or (container is not None and "*" in self.requested.get(container, {}))
            )
        if returned == "request":
            return False
        return self.dropped.get(container, {}).get(attr, False) is not None

    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        """The document as the plan returns it: the document itself where that is all of it,
        else a copy (what it holds is never changed)."""
        out = _projected(document, self._memo, self._decide)
        schemas = out.get("schemas")
        if isinstance(schemas, list):
            # RFC 7643 §3: "schemas" names the schemas of the attributes present.
            named = [urn for urn in schemas if self._names_present(urn, out)]
            if len(named) != len(schemas):
                out = dict(out) if out is document else out
                out["schemas"] = named
        return out

    def _names_present(self, urn: Any, out: dict[str, Any]) -> bool:
        """Whether ``schemas`` keeps a URN: the core schema's always, an extension's if its
        attributes are present (under its URN in any case)."""
        if not isinstance(urn, str) or urn in out:
            return True
        lowered = urn.lower()
        return lowered not in self.projector.extensions or any(
            key.lower() == lowered for key in out
        )

    def _decide(self, key: str) -> _Decision:
        """What this plan does with an attribute of a document, by its name."""
        lowered = key.lower()
        if lowered in self.projector.extensions:
            return lambda value: self._container(lowered, value) or _DROP
        info = self.projector.core.get(lowered) or _COMMON_TREE.get(lowered)
        returned = info.returned if info else _COMMON.get(lowered, "default")
        if not self._keeps(None, lowered, returned):
            return _dropped
        if info is None or not info.subs:
            return _same
        selection = self.requested if self.requested is not None else self.dropped
        if selection.get(None, {}).get(lowered) is None:
            # Whole, but for the sub-attributes it returns only when asked, or never.
            return partial(_strip_unasked, info) if info.hidden else _same
        return lambda value: self._subs(None, lowered, info, value)

    def _container(self, urn: str, value: dict[str, Any]) -> dict[str, Any]:
        _, tree = self.projector.extensions[urn]
        if self.requested is not None and "*" in self.requested.get(urn, {}):
            # The extension by name: what it returns by default, as without "attributes".
            whole = {}
            for key, item in value.items():
                named = tree.get(key.lower(), _Attr(key, "default"))
                if named.returned not in ("never", "request"):
                    whole[key] = _strip_unasked(named, item)
            return whole
        if self.requested is None and "*" in self.dropped.get(urn, {}):
            return {
                k: v
                for k, v in value.items()
                if tree.get(k.lower(), _Attr(k, "x")).returned == "always"
            }
        memo = self._in_extension.setdefault(urn, _Memo())
        return _projected(value, memo, partial(self._decide_in, urn, tree))

    def _decide_in(self, urn: str, tree: dict[str, _Attr], key: str) -> _Decision:
        """What this plan does with an attribute of an extension, by its name."""
        lowered = key.lower()
        info = tree.get(lowered)
        if not self._keeps(urn, lowered, info.returned if info else "default"):
            return _dropped
        if info is None or not info.subs:
            return _same
        return partial(self._subs, urn, lowered, info)

    def _subs(self, container: str | None, attr: str, info: _Attr | None, value: Any) -> Any:
        """Keep the requested sub-attributes of a complex value, or drop the excluded ones."""
        if info is None or not info.subs:
            return value
        if self.requested is not None:
            wanted = self.requested.get(container, {}).get(attr)
            if wanted is None:
                return _strip_unasked(info, value)
            keep = wanted | {k for k, (_, r) in info.subs.items() if r == "always"}
        else:
            dropped = self.dropped.get(container, {}).get(attr)
            if not dropped:
                return _strip_unasked(info, value)
            keep = {k for k, (_, r) in info.subs.items() if k not in dropped or r == "always"}
            keep -= {k for k, (_, r) in info.subs.items() if r in ("never", "request")}
        return _only(value, keep)


def _projected(
    document: dict[str, Any], memo: _Memo, decide: Callable[[str], _Decision]
) -> dict[str, Any]:
    """A document's attributes as their decisions project them: the attributes a plan
    returns as they are, most of them, are not walked, and a document it returns whole is
    returned itself."""
    names = tuple(document)
    changes = memo.layouts.get(names)
    if changes is None:
        changes = memo.learn(names, decide)
    if not changes:
        return document
    out = dict(document)
    for key, decision in changes:
        projected = decision(out[key])
        if projected is _DROP:
            del out[key]
        else:
            out[key] = projected
    return out


def _strip_unasked(info: _Attr, value: Any) -> Any:
    """Sub-attributes returned ``never``, or only on ``request`` by their own name, go."""
    return _only(value, None, info.hidden) if info.hidden else value


def _only(value: Any, keep: set[str] | None, hidden: frozenset[str] | None = None) -> Any:
    def pick(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        return {
            k: v
            for k, v in item.items()
            if (keep is None or k.lower() in keep) and not (hidden and k.lower() in hidden)
        }

    if isinstance(value, list):
        return [pick(item) for item in value]
    return pick(value)
