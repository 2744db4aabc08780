"""Reading a model's reply as it really comes: newlines, thinking sections, fences, its idea.

Reasoning models put a thinking section before the answer, in one of several
spellings; a server may strip the opening tag and leave only the closing one,
and a reply cut off by ``max_tokens`` may end inside it. The thinking is kept
(the archive stores the whole reply) but never parsed for edits and never sent
back to a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evolve.text_cache import CACHED_TEXT_CHARS, text_cache

# (opening, closing) tag patterns, case-insensitive.
_THINK_PAIRS = [
    (r"<(think|thinking|thought|reasoning|reflection)>", r"</{tag}>"),
    (r"<\|begin_of_thought\|>", r"<\|end_of_thought\|>"),
    (r"\[THINK\]", r"\[/THINK\]"),
    (r"◁think▷", r"◁/think▷"),
    # gpt-oss "harmony" output, when a server passes it through raw.
    (r"<\|channel\|>\s*analysis\s*<\|message\|>", r"<\|end\|>"),
]
_ORPHAN_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.I)
_HARMONY_FINAL = re.compile(r"<\|start\|>\s*assistant\s*|<\|channel\|>\s*final\s*<\|message\|>"
                            r"|<\|(?:return|end)\|>", re.I)
# Possessive quantifiers (*+): a reply is hostile text, and overlapping runs (spaces, then
# spaces or an info string) backtracked quadratically on a long line that fails at its end.
_FENCE_RE = re.compile(r"^\s*+(`{3,}+|~{3,}+)\s*+([A-Za-z0-9_+.-]*+)[^\n`]*+$")
_PY_LANGS = {"", "python", "py", "python3", "python 3"}
_IDEA_RE = re.compile(
    r"^[#>*_\-\s]*+(?:idea|rationale|change|summary|approach|plan)[\s*_]*+:\s*[*_]*\s*(.+)$",
    re.I)


@dataclass(frozen=True)
class Reply:
    answer: str  # what the model answered, thinking removed, newlines normalised
    thinking: str  # the thinking sections, joined ("" if none)


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@text_cache(maxsize=64, max_chars=CACHED_TEXT_CHARS)
def split_thinking(text: str) -> Reply:
    """Separate the thinking sections from the answer (kept for the replies in hand: the edit
    reads one, then the prompts its idea line)."""
    text = normalise_newlines(text)
    thoughts: list[str] = []
    for opening, closing in _THINK_PAIRS:
        while True:
            start = re.search(opening, text, re.I)
            if start is None:
                break
            close_pattern = closing.format(tag=start.group(1)) if start.groups() else closing
            end = re.compile(close_pattern, re.I).search(text, start.end())
            if end is None:  # cut off while thinking: the rest is thinking
                thoughts.append(text[start.end():])
                text = text[: start.start()]
                break
            thoughts.append(text[start.end(): end.start()])
            text = text[: start.start()] + text[end.end():]
    orphan = _ORPHAN_CLOSE.search(text)
    if orphan is not None:  # the server dropped the opening tag
        thoughts.insert(0, text[: orphan.start()])
        text = text[orphan.end():]
    text = _HARMONY_FINAL.sub("", text)
    return Reply(text.strip("\n"), "\n\n".join(t.strip() for t in thoughts if t.strip()))


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block, in order; an unclosed fence runs to the end.

    Backtick and tilde fences of three or more characters, closed by the same
    kind and at least the same length (a ```` ```` ```` fence may hold ``` lines).
    """
    blocks: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE_RE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines):
            close = _FENCE_RE.match(lines[j])
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence) \
                    and not close.group(2):
                break
            j += 1
        blocks.append((lang, "\n".join(lines[i + 1: j])))
        i = j + 1
    return blocks


def python_blocks(text: str) -> list[str]:
    """Bodies of fences whose language is Python or unspecified."""
    return [body for lang, body in fenced_blocks(text) if lang in _PY_LANGS]


def is_fence_line(line: str) -> bool:
    return _FENCE_RE.match(line) is not None


def idea_of(answer: str, limit: int = 160) -> str:
    """The model's one-line statement of its idea ("Idea: ..."), else its first line of prose."""
    prose: list[str] = []
    in_fence = False
    for line in answer.split("\n"):
        if is_fence_line(line):
            in_fence = not in_fence
            continue
        if in_fence or line.lstrip().startswith(("<<<<<<<", "=======", ">>>>>>>")):
            continue
        m = _IDEA_RE.match(line)
        if m:
            return _cut(m.group(1).strip(" *_"), limit)
        if line.strip() and not prose:
            prose.append(line.strip(" #*>-"))
    return _cut(prose[0], limit) if prose else ""


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
