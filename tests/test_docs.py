"""What the README and docs/ name exists: modules and names they import, modules they run
with `python -m`, files and folders they point at, and `evolve` commands they show."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PATH = re.compile(r"`((?:evolve|evaluators|problems|prompts|bench|tests|docs|\.ci)/[\w./-]*)`")
IMPORT = re.compile(r"^\s*from (evolve[\w.]*) import ([\w, ]+)", re.M)
RUN_MODULE = re.compile(r"python -m (evolve[\w.]*)")
COMMAND = re.compile(r"^\s*(?:\$ )?evolve ([a-z][a-z-]*)", re.M)
# Files of the folder `evolve new-problem` creates, named relative to it (docs/add-a-problem.md).
SCAFFOLDED = {"tests/test_night_shift.py"}
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.*)$", re.M)


def text(doc: Path) -> str:
    return doc.read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_paths_named_in_docs_exist(doc: Path) -> None:
    named = [p for p in PATH.findall(text(doc)) if "<" not in p and "*" not in p and p not in SCAFFOLDED]
    missing = [p for p in named if not (REPO / p).exists()]
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_imports_and_modules_named_in_docs_resolve(doc: Path) -> None:
    body = text(doc)
    for module, names in IMPORT.findall(body):
        imported = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(imported, name), f"{doc.name}: from {module} import {name}"
    for module in RUN_MODULE.findall(body):
        assert importlib.util.find_spec(module) is not None, f"{doc.name}: python -m {module}"


def test_commands_shown_in_docs_exist() -> None:
    listed = subprocess.run([sys.executable, "-m", "evolve.cli", "--help"], capture_output=True, text=True,
                            timeout=60, env={"COLUMNS": "200", "PATH": ""}).stdout
    known = set(re.findall(r"│ ([a-z][a-z-]+) ", listed))
    blocks = [block for doc in DOCS for block in FENCE.findall(text(doc))]
    shown = {command for block in blocks for command in COMMAND.findall(block)}
    assert known and shown and shown <= known, f"commands in docs that evolve does not have: {shown - known}"


def anchors(doc: Path) -> set[str]:
    """A document's heading anchors as GitHub makes them: lower case, punctuation dropped, spaces as hyphens."""
    headings = HEADING.findall(FENCE.sub("", text(doc)))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", [*DOCS, REPO / "bench" / "RESULTS.md"], ids=lambda p: p.name)
def test_links_between_docs_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(text(doc)):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = doc.parent / file if file else doc
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
            broken.append(target)
    assert not broken, f"{doc.name} links to files or headings that do not exist: {broken}"
