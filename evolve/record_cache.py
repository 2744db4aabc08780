"""A bounded cache of decoded archive records, and the cheap copy handed out of it.

Programs and attempts never change once written, so the ones every prompt reads again
(its parent, the run's best, inspirations, the latest attempts) are kept decoded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def clone(record: V) -> V:
    """A shallow copy of a cached dataclass record (a tenth of ``copy.copy``'s time)."""
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    return new


class RecordCache(Generic[K, V]):
    """At most ``size`` entries; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value
