"""Markdown code fences that the text they hold cannot close.

Program text, a candidate's output and a model's reply are hostile: a plain ``` line in them
ended the fence they were shown in, and what followed read as the page's own sections (a
forged ``# System`` heading in a prompt, an instruction in ``outcome_NNN.md``)."""

from __future__ import annotations

import re

_BACKTICKS = re.compile("`{3,}")


def fence(text: str) -> str:
    """A fence no line of ``text`` can close: one backtick longer than its longest run of three
    or more (Markdown's rule)."""
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=2)
    return "`" * max(3, longest + 1)


def fenced(text: str, language: str = "") -> str:
    """``text`` in a block that only its own closing fence ends."""
    bar = fence(text)
    return f"{bar}{language}\n{text}\n{bar}"
