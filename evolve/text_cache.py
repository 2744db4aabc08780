"""A memo for functions of program and reply texts, bounded by the characters it holds.

The controller keeps what it worked out from a program or a reply (its parse, blocks, diffs,
idea lines) for the texts in hand. ``functools.lru_cache`` bounds such a memo by its number of
entries only, and a model writes the texts: a program may have 256 KiB (``MAX_PROGRAM_CHARS``)
and a reply 1 MiB (``MAX_REPLY_CHARS``), so 4,096 entries of replies could hold 4 GiB and 16 parsed
trees of the largest programs 1.4 GB (an ``ast`` tree holds 60-350 bytes per character of its
code; fifteenth red team). Here the characters of the string arguments also count, against
``max_chars`` (set lower where an entry holds much more than its texts, as a tree does); the
oldest entries go first, and an entry larger than the whole bound is not kept.
Programs and replies of a normal run (a few KB each) are kept as many as before (``maxsize``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import update_wrapper
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_MISSING = object()

# What a memo of texts and what is worked out from them (diffs, units, idea lines: about as large)
# holds at most: 16 MiB of arguments, some 1,600 programs or replies of 10 KB.
CACHED_TEXT_CHARS = 16 * 1024 * 1024


def _chars(args: tuple[Any, ...]) -> int:
    return sum(len(a) for a in args if isinstance(a, str))


class TextCache(Generic[P, R]):
    """``fn`` memoised on its positional arguments: at most ``maxsize`` entries and ``max_chars``
    characters of string arguments, the oldest entries going first (by when they were made: a hit
    only reads, 0.2 us more than ``lru_cache``'s); exceptions are never kept (as ``lru_cache``)."""

    def __init__(self, fn: Callable[P, R], maxsize: int, max_chars: int) -> None:
        self.fn = fn
        self.maxsize = maxsize
        self.max_chars = max_chars
        self._items: dict[tuple[Any, ...], tuple[R, int]] = {}
        self._chars = 0
        self._lock = threading.Lock()
        update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        found = self._items.get(args, _MISSING) if not kwargs else _MISSING
        if found is not _MISSING:
            return found[0]  # type: ignore[index,no-any-return]
        value = self.fn(*args, **kwargs)
        chars = _chars(args)
        if kwargs or chars > self.max_chars:
            return value  # larger than the whole memo: worked out again when asked again
        with self._lock:
            if args not in self._items:
                self._items[args] = (value, chars)
                self._chars += chars
                while len(self._items) > self.maxsize or self._chars > self.max_chars:
                    _, gone = self._items.pop(next(iter(self._items)))
                    self._chars -= gone
        return value

    def cache_info(self) -> tuple[int, int]:
        """(entries, characters of their arguments) held now."""
        with self._lock:
            return len(self._items), self._chars

    def cache_clear(self) -> None:
        with self._lock:
            self._items = {}
            self._chars = 0


def text_cache(maxsize: int, max_chars: int) -> Callable[[Callable[P, R]], TextCache[P, R]]:
    """Decorator: :class:`TextCache` of the function."""
    def wrap(fn: Callable[P, R]) -> TextCache[P, R]:
        return TextCache(fn, maxsize, max_chars)
    return wrap
