"""What the seeds' processes print, shown once, labelled with the seeds that printed it.

Every seed of a parallel study is a run of its own, so each prints the same notices (a
sandbox that cannot hide the checkout here, a library's warning): written straight to the
terminal, five seeds repeated each one five times between the live table's redraws.  Each
seed's stdout and stderr are a pipe to the study instead; ``SeedOutput`` cuts what comes
through into messages (a traceback or an indented continuation stays with the line above
it) and ``SeedMessages`` keeps each distinct text once with the seeds it came from
(``seeds 0-4: ...``), so a message of one seed alone reads ``seed 3: ...``.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable

_TRACEBACK = "Traceback (most recent call last):"


def seeds_label(seeds: list[int]) -> str:
    """``seed 3``, ``seeds 0-4``, ``seeds 0-2, 7``: runs of consecutive seeds as ranges."""
    ordered = sorted(set(seeds))
    runs: list[list[int]] = []
    for seed in ordered:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]
    return f"seed{'s' if len(ordered) > 1 else ''} {', '.join(parts)}"


class SeedOutput:
    """One seed's output pipe, cut into messages as bytes arrive."""

    def __init__(self) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # text after the last newline

    def feed(self, data: bytes) -> list[str]:
        """The messages completed by ``data`` (lines of one traceback stay together)."""
        text = self._partial + self._decode.decode(data)
        *lines, self._partial = text.split("\n")
        return _messages(lines)

    def close(self) -> list[str]:
        """The messages left once the pipe closed (a last line without its newline)."""
        rest, self._partial = self._partial + self._decode.decode(b"", final=True), ""
        return _messages([rest])


def _messages(lines: list[str]) -> list[str]:
    messages: list[list[str]] = []
    in_traceback = False
    for raw in lines:
        line = raw.rstrip("\r\n ")
        if not line.strip():
            continue
        if messages and (line[0].isspace() or in_traceback):
            messages[-1].append(line)
            in_traceback = line[0].isspace()  # the exception's own line closes a traceback
            continue
        messages.append([line])
        in_traceback = line.startswith(_TRACEBACK)
    return ["\n".join(m) for m in messages]


class SeedMessages:
    """Each distinct message once, in the order first seen, with the seeds that printed it.

    A live view shows the latest few (``lines``) and prints the older ones for good once
    (``retire``): a seed that prints a retired message later is noted, not shown again."""

    def __init__(self) -> None:
        self._seeds: dict[str, list[int]] = {}
        self._retired: set[str] = set()

    def add(self, seed: int, text: str) -> bool:
        """Note that ``seed`` printed ``text``; True the first time any seed printed it."""
        new = text not in self._seeds
        seeds = self._seeds.setdefault(text, [])
        if seed not in seeds:
            seeds.append(seed)
        return new

    def seeds(self, text: str) -> list[int]:
        return list(self._seeds.get(text, []))

    def lines(self) -> list[str]:
        """``seeds 0-4: text`` for each message not retired, oldest first."""
        return [f"{seeds_label(seeds)}: {text}" for text, seeds in self._seeds.items()
                if text not in self._retired]

    def retire(self, keep: int) -> list[str]:
        """Retire all but the latest ``keep`` messages not yet retired; their lines."""
        live = [text for text in self._seeds if text not in self._retired]
        old = live[: max(0, len(live) - keep)]
        self._retired.update(old)
        return [f"{seeds_label(self._seeds[text])}: {text}" for text in old]


def print_once() -> Callable[[int, str], None]:
    """The default for a study run from Python: each distinct message once on stderr, labelled
    with the seed that printed it first."""
    seen = SeedMessages()

    def show(seed: int, text: str) -> None:
        if seen.add(seed, text):
            print(f"{seeds_label([seed])}: {text}", file=sys.stderr, flush=True)

    return show
