"""The corpus of model replies in ``tests/replies/``: loading and judging them.

Each problem folder holds ``seed.py`` (the shipped seed when the replies were
written; replies are applied to this copy, so a later change of the shipped
seed does not invalidate them) and one file per reply::

    mode: diff                      # what the prompt asked for: diff | rewrite
    expect: accept                  # what a careful human would do: accept | reject
    contains: np.maximum(d, t + p)  # the child must contain this (repeatable; a "JSON string"
                                    # when it holds newlines, tabs or edge spaces)
    absent: return d + p            # ... and must not contain this (repeatable)
    error: not closed               # for a reject: part of the one-line reason
    why: a fenced diff with prose around it
    ~~~~~~~~ reply ~~~~~~~~
    <the reply, byte for byte: CRLF, tabs and trailing spaces are kept>

Used by ``tests/test_reply_corpus.py`` and ``bench/reply_corpus.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "replies"
SEPARATOR = "~~~~~~~~ reply ~~~~~~~~"


@dataclass
class Case:
    problem: str
    name: str
    mode: str
    expect: str
    why: str
    reply: str
    parent: str
    contains: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class Verdict:
    case: Case
    accepted: bool
    detail: str  # the child's form, or the error
    wrong_child: bool = False  # accepted, but not as the expected child

    @property
    def as_expected(self) -> bool:
        if self.accepted != (self.case.expect == "accept") or self.wrong_child:
            return False
        return self.case.expect == "accept" or self.case.error in self.detail


def load_case(path: Path, parent: str) -> Case:
    raw = path.read_bytes().decode("utf-8")
    head, sep, reply = raw.partition(SEPARATOR + "\n")
    if not sep:
        head, sep, reply = raw.partition(SEPARATOR + "\r\n")
    if not sep:
        raise ValueError(f"{path}: no '{SEPARATOR}' line")
    fields: dict[str, list[str]] = {}
    for line in head.split("\n"):
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        # A value with newlines, tabs or edge spaces is written as a JSON string.
        fields.setdefault(key.strip(), []).append(json.loads(value) if value.startswith('"') else value)
    case = Case(
        problem=path.parent.name, name=path.stem, mode=fields["mode"][0],
        expect=fields["expect"][0], why=fields.get("why", [""])[0], reply=reply, parent=parent,
        contains=fields.get("contains", []), absent=fields.get("absent", []),
        error=fields.get("error", [""])[0],
    )
    if case.mode not in ("diff", "rewrite") or case.expect not in ("accept", "reject"):
        raise ValueError(f"{path}: mode must be diff|rewrite and expect accept|reject")
    return case


def load_corpus(root: Path = CORPUS) -> list[Case]:
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        parent = (folder / "seed.py").read_text()
        cases += [load_case(path, parent) for path in sorted(folder.glob("*.txt"))]
    return cases


def judge(case: Case) -> Verdict:
    from evolve.edits import EditError, edit_child

    try:
        edit = edit_child(case.parent, case.reply, case.mode)  # type: ignore[arg-type]
    except EditError as err:
        return Verdict(case, False, str(err))
    missing = [c for c in case.contains if c not in edit.code]
    present = [a for a in case.absent if a in edit.code]
    if missing or present:
        return Verdict(case, True, f"wrong child: missing {missing}, unexpected {present}", True)
    return Verdict(case, True, edit.form)
