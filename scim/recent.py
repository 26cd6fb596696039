"""What was made for the keys used most recently, at most ``size`` of them: statements per
shape (``scim.storage.kept``), search shapes (``scim.protocol.searches``, ``ResourceService``).
The least recently used goes first, so that a key in steady use stays however many others pass
through (an identity system's ``userName eq`` among a flood of one-off searches)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


class Recent:
    """A bounded memory of values by key (None is a value like any other)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value kept for ``key``, or what ``build`` makes of it now, kept."""
        value = self.find(key, _MISSING)
        if value is _MISSING:
            value = build()
            self.keep(key, value)
        result: T = value
        return result

    def find(self, key: Hashable, default: Any = None) -> Any:
        """The value kept for ``key`` (now the most recently used), else ``default``."""
        value = self._kept.get(key, _MISSING)
        if value is _MISSING:
            return default
        self._kept.move_to_end(key)
        return value

    def keep(self, key: Hashable, value: Any) -> None:
        self._kept[key] = value
        self._kept.move_to_end(key)
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)
