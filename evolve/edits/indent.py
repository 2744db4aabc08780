"""Indentation arithmetic for edits: widths, continuation lines, a program's indent
step, and re-indenting new lines from a model's indentation to the program's."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

_STRING_RE = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")


def indent_width(line: str) -> int:
    stripped = line.lstrip()
    return len(line[: len(line) - len(stripped)].expandtabs(4))


def continuation_lines(lines: list[str]) -> list[bool]:
    """Which lines continue a statement begun above (open brackets or a backslash)."""
    flags: list[bool] = []
    depth, backslash = 0, False
    for line in lines:
        flags.append(depth > 0 or backslash)
        code = _STRING_RE.sub("''", line).split("#", 1)[0]
        depth = max(0, depth + sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}"))
        backslash = code.rstrip().endswith("\\")
    return flags


def indent_unit(lines: list[str]) -> int:
    """The indentation step of code: the gcd of its statements' indent widths (4 if none)."""
    unit = 0
    for line, continued in zip(lines, continuation_lines(lines), strict=True):
        if line.strip() and not continued:
            unit = math.gcd(unit, indent_width(line))
    return unit or 4


def indent_scale(program: list[int], search: list[int]) -> Fraction | None:
    """The scale s with program_rel == s * search_rel for every line, if one exists."""
    rel_p = [p - program[0] for p in program]
    rel_s = [s - search[0] for s in search]
    if rel_p == rel_s:
        return Fraction(1)
    scale: Fraction | None = None
    for p, s in zip(rel_p, rel_s, strict=True):
        if s == 0:
            if p != 0:
                return None
            continue
        ratio = Fraction(p, s)
        if ratio <= 0 or (scale is not None and ratio != scale):
            return None
        scale = ratio
    return scale


@dataclass(frozen=True)
class Reindent:
    """A model's indentation mapped onto the program's: a statement indented ``w``
    by the model goes to ``base_program + scale * (w - base_search)``."""

    base_program: int  # indent of the first matched program line
    base_search: int  # indent of the first SEARCH line
    scale: Fraction = Fraction(1)  # program indent steps per SEARCH indent step

    def apply(self, lines: list[str], tab: bool) -> list[str]:
        """``lines`` in the program's indentation.

        A continuation line (inside brackets) keeps its offset from the start
        of its statement: its indentation is layout, not block structure.
        """
        out: list[str] = []
        shift = 0  # how far the current statement's first line moved
        for line, continued in zip(lines, continuation_lines(lines), strict=True):
            if not line.strip():
                out.append(line)
                continue
            old = indent_width(line)
            if continued:
                width = max(0, old + shift)
            else:
                width = max(0, int(round(self.base_program + self.scale * (old - self.base_search))))
                shift = width - old
            pad = "\t" * (width // 4) + " " * (width % 4) if tab else " " * width
            out.append(pad + line.lstrip())
        return out


def rescaled(new: list[str], unit: int) -> list[str]:
    """New lines re-indented from the model's indent step to the program's ``unit``."""
    step = indent_unit(new)
    if step >= unit or unit % step:
        return new
    structural = [line for line, c in zip(new, continuation_lines(new), strict=True)
                  if line.strip() and not c]
    base = indent_width(structural[0]) if structural else 0
    return Reindent(base, base, Fraction(unit, step)).apply(new, tab=False)
