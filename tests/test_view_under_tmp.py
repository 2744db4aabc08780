"""Hostile candidates against a view with mounts inside /tmp (a venv or package made there).

When the runtime or an allowed package lives under /tmp (a clean-clone CI job's venv in a temp
dir), each child's fresh /tmp would bury the view's copies of it: they are moved aside
(MS_MOVE into a spot in another fresh writable dir), the fresh tmpfs goes on, and they are
moved back (``view.fresh_writable_dirs``).  These tests build that layout themselves, wherever
evolve runs from: an allowed package (``sandbox_packages``) in a dir made under /tmp, named by a
verifier written next to it.  The candidate writes into the moved-back copies (refused: they are
the same read-only mounts), looks for the holding spots (gone before it runs), plants files on
the way to them for the next candidate (who finds none) and still imports the package.
"""

from __future__ import annotations

import shutil
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest

from evolve.sandbox import Sandbox, SandboxLimits
from evolve.verifier import Instance

VERIFIER = '''
class HeldVerifier:
    direction = "minimize"
    sandbox_packages = ("heldpkg",)

    @staticmethod
    def solve(heuristic, instance):
        return heuristic(instance.data["x"])
'''

# What a candidate sees of the layout: the package (imported, and where), every writable dir's
# listing (a holding spot would be a ``.held-N`` entry), and the outcome of writing into the
# moved-back copy, next to it, on the way to it (skeleton dirs the child made) and in /tmp, and
# which of those files were there before it wrote (a previous candidate's).
PROBE = """
import os, heldpkg
def f(hints):
    here = os.path.dirname(heldpkg.__file__)
    targets = (heldpkg.__file__, os.path.join(here, "planted.py"), os.path.join(os.path.dirname(here), "planted"),
               "/tmp/planted")
    before = [t for t in targets[1:] if os.path.exists(t)]
    fd = os.open("/tmp/probe", os.O_CREAT | os.O_WRONLY, 0o600)
    inode = os.fstat(fd).st_ino
    os.close(fd)
    os.unlink("/tmp/probe")
    for k in range(300):  # moves this /tmp's inode counter on: a message to the next, were it shared
        os.close(os.open(f"/tmp/bump-{k}", os.O_CREAT | os.O_WRONLY, 0o600))
        os.unlink(f"/tmp/bump-{k}")
    listing = {d: sorted(os.listdir(d)) for d in ("/tmp", "/var/tmp", "/dev/shm")}
    outcome = {}
    for target in targets:
        try:
            with open(target, "a") as f:
                f.write("import os  # planted")
            outcome[target] = "written"
        except OSError as exc:
            outcome[target] = type(exc).__name__
    return {"value": heldpkg.VALUE, "here": here, "writes": outcome, "listing": listing,
            "source": open(heldpkg.__file__).read(), "before": before, "inode": inode}
"""


@pytest.fixture(scope="module")
def layout() -> Iterator[Path]:
    """A dir under /tmp holding the verifier and the package it allows."""
    top = Path(tempfile.mkdtemp(prefix="evolve-held-", dir="/tmp"))
    try:
        top.chmod(0o755)
        (top / "heldverifier.py").write_text(VERIFIER)
        (top / "heldpkg").mkdir(mode=0o755)
        (top / "heldpkg" / "__init__.py").write_text("VALUE = 41\n")
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox(layout: Path) -> Iterator[Sandbox]:
    limits = SandboxLimits(timeout_s=10.0, memory_mb=512, file_size_mb=4, max_output_mb=1)
    with Sandbox("heldverifier:HeldVerifier", limits, slot=23, extra_sys_path=[str(layout)]) as sb:
        if not sb.facts["filesystem"][0]:
            pytest.skip(f"no filesystem view here: {sb.facts['filesystem'][1]}")
        yield sb


def probe(sb: Sandbox) -> dict[str, object]:
    outcome = sb.run(textwrap.dedent(PROBE), "f", [Instance("probe", "g", {"x": 0})])
    assert outcome.status == "ok" and outcome.runs[0].error is None, outcome
    found = outcome.runs[0].solution
    assert isinstance(found, dict)
    return found


def test_the_moved_back_copies_cannot_be_written_and_the_holding_spots_are_gone(sandbox: Sandbox,
                                                                               layout: Path) -> None:
    found = probe(sandbox)
    package = str(layout / "heldpkg")
    assert found["value"] == 41 and found["here"] == package
    writes = found["writes"]
    assert isinstance(writes, dict)
    # The copy and the dir it is mounted on are the view's read-only mount, moved back intact.
    assert "written" not in (writes[f"{package}/__init__.py"], writes[f"{package}/planted.py"]), writes
    assert found["source"] == "VALUE = 41\n"
    listing = found["listing"]
    assert isinstance(listing, dict)
    assert not [n for names in listing.values() for n in names if n.startswith(".held")], listing
    # /tmp holds the ways back to the view's mounts there (the package; the runtime and numpy too
    # when they live under /tmp, as in a copy of CI's interpreter) and the work dirs' parent,
    # nothing else of the host's /tmp.
    shown = (layout, Path(sysconfig.get_paths()["stdlib"]), Path(numpy.__file__).parent)
    ways = {path.parts[2] for path in shown if path.parts[1] == "tmp"}
    assert sorted(listing["/tmp"]) == sorted({"evolve-runs", *ways}), listing
    if sandbox.uid is not None:  # root: the skeleton on the way is root's, not the candidate's
        assert writes[str(layout / "planted")] == "PermissionError", writes


def test_nothing_a_candidate_leaves_next_to_the_moved_back_copies_reaches_the_next(sandbox: Sandbox,
                                                                                  layout: Path) -> None:
    """Files in /tmp (and, without root, in the skeleton dirs the child made on the way back to
    the package, which the candidate then owns) and /tmp's inode counter go with the child's
    fresh tmpfs.  Before 33b6210 a /tmp holding the view's mounts stayed the worker's: its
    inode counter carried a message to the next candidate."""
    first = probe(sandbox)
    assert first["writes"]["/tmp/planted"] == "written"  # type: ignore[index]
    second = probe(sandbox)
    assert first["before"] == second["before"] == [], (first, second)
    assert second["inode"] == first["inode"]  # a fresh /tmp: its inode counter starts afresh
    assert second["listing"] == first["listing"] and second["value"] == 41
