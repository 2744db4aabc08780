"""A memo of what was worked out from trees, bounded by its entries and by the nodes of its keys.

The GP's screen keeps a score per brood member (``Screen``) and smtt's screen an outcome per size
and folded tree (``evaluators/smtt/screen.py``), for a whole run. A key holds its trees (a folded
tree is a copy: ~32 bytes a node), and a tree may have up to ``[run.gp] max_size`` nodes a side
(400) or ``MAX_TREE_SIZE`` (1,000, a model's rule): bounded by entries alone (smtt's 100,000,
``Screen``'s not at all) the two held ~1 MiB more per proposal at ``max_size`` 400 and would hold
GBs in a long run (sixteenth red team). Past either bound the memo starts again: what it held is
worked out again when asked, with the same figures.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

MISSING = object()  # ``get``'s default where None is a value

# Nodes of trees the keys of one memo hold: ~64 MiB of folded trees.
MEMO_NODES = 2_000_000


class TreeMemo(Generic[V]):
    """``get``/``put`` by key, at most ``entries`` entries and ``nodes`` nodes of their keys' trees."""

    def __init__(self, entries: int, nodes: int = MEMO_NODES) -> None:
        self.entries = entries
        self.nodes = nodes
        self._items: dict[Hashable, V] = {}
        self._held = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable, default: object = None) -> V | object:
        return self._items.get(key, default)

    @property
    def held_nodes(self) -> int:
        return self._held

    def put(self, key: Hashable, value: V, nodes: int) -> V:
        """Keep ``value`` under ``key``, whose trees have ``nodes`` nodes (not kept if more than
        the whole bound); emptied first where it would pass either bound."""
        if nodes > self.nodes:
            return value
        if len(self._items) >= self.entries or self._held + nodes > self.nodes:
            self._items.clear()
            self._held = 0
        self._items[key] = value
        self._held += nodes
        return value
