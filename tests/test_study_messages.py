"""What the seeds of a parallel study print reaches the user once: a message every seed prints
is one line naming the seeds (``seeds 0-2: ...``), a seed's own message names its seed, and
nothing goes around the live table to the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import evolve
from evolve.study_output import SeedMessages, SeedOutput, seeds_label

CLI = [sys.executable, "-m", "evolve.cli"]
SHARED = "sandbox: verifier toy_verifier:ToyVerifier defines solve/respond in its own module"
OWN = "toy: verifier built in process "


def _noisy_toy(toy_dir: Path) -> Path:
    """The toy problem with ``solve`` in the verifier's module (so every seed's sandbox prints
    its real warning about that) and a verifier that logs the pid of the process building it."""
    verifier = toy_dir / "toy_verifier.py"
    code = verifier.read_text()
    side = (toy_dir / "toy_side.py").read_text().split("from typing import Any\n", 1)[1]
    code = code.replace("from toy_side import solve\n", "import logging\nimport os\nimport time\n")
    code = code.replace("    solve = staticmethod(solve)  # toy_side.py\n", "    solve = staticmethod(solve)\n")
    code = code.replace("class ToyVerifier:", side.strip() + "\n\n\nclass ToyVerifier:")
    code = code.replace("        self.delay_s = float(", "        logging.getLogger('toy').warning('%s%d', "
                        f"{OWN!r}, os.getpid())\n        self.delay_s = float(")
    verifier.write_text(code)
    return toy_dir


def _seed_pid(study: Path, seed: int) -> int:
    return int((study / f"seed-{seed}" / "run.lock").read_text())  # the pid of the seed's run


def test_a_message_every_seed_prints_is_shown_once_with_its_seeds_and_a_seeds_own_with_its_seed(
    toy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    done = subprocess.run([*CLI, "run", str(_noisy_toy(toy_dir)), "--seeds", "0-2", "--workers", "2",
                           "--iterations", "4", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    shared = [line for line in lines if SHARED in line]
    assert len(shared) == 1 and shared[0].startswith(f"seeds 0-2: {SHARED}"), done.stdout
    for seed in (0, 1, 2):
        own = [line for line in lines if OWN in line and line.startswith(f"seed {seed}: ")]
        assert own == [f"seed {seed}: {OWN}{_seed_pid(out, seed)}"], done.stdout
    assert sum(OWN in line for line in lines) == 3  # no seed's message under another seed's label
    assert SHARED not in done.stderr and f"{OWN}{_seed_pid(out, 0)}" not in done.stderr  # none around the table
    assert lines[-1] == f"review it with: evolve review {out} --test"
    assert f"study folder: {out}" in lines  # on a line of its own after the table


def test_the_python_api_gives_each_message_with_its_seed_and_prints_each_distinct_one_once(
    toy_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    problem = _noisy_toy(toy_dir)
    heard: list[tuple[int, str]] = []
    study = evolve.run_study(str(problem), [0, 1], parallel=2, out=tmp_path / "a", iterations=3,
                             on_message=lambda seed, text: heard.append((seed, text)))
    assert sorted(s for s, text in heard if SHARED in text) == [0, 1]
    assert {(s, t) for s, t in heard if OWN in t} == {(s, f"{OWN}{_seed_pid(study, s)}") for s in (0, 1)}
    capfd.readouterr()
    study = evolve.run_study(str(problem), [0, 1], parallel=2, out=tmp_path / "b", iterations=3)
    printed = capfd.readouterr().err.splitlines()
    assert len([line for line in printed if SHARED in line]) == 1  # the first seed's, labelled so
    assert [line for line in printed if SHARED in line][0].split(": ", 1)[0] in ("seed 0", "seed 1")
    for seed in (0, 1):
        assert f"seed {seed}: {OWN}{_seed_pid(study, seed)}" in printed


def test_seed_output_is_cut_into_messages_with_tracebacks_whole_and_lines_split_across_reads() -> None:
    output = SeedOutput()
    assert output.feed(b"first notice\nsecond no") == ["first notice"]
    traceback = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
                 "    boom()\nValueError: boom\n")
    assert output.feed(b"tice\n\n" + traceback.encode() + b"after\n") == [
        "second notice", traceback.rstrip("\n"), "after"]
    assert output.feed("caf\u00e9".encode()[:-1]) == []  # half of a two-byte character
    assert output.feed("caf\u00e9".encode()[-1:] + b"\nwarn.py:3: UserWarning: w\n  warnings.warn('w')\n") == [
        "caf\u00e9", "warn.py:3: UserWarning: w\n  warnings.warn('w')"]
    assert output.feed(b"no line end") == [] and output.close() == ["no line end"]


def test_messages_are_kept_once_in_order_with_the_seeds_that_printed_them() -> None:
    messages = SeedMessages()
    assert messages.add(2, "shared") and not messages.add(0, "shared") and not messages.add(2, "shared")
    assert messages.add(3, "mine") and not messages.add(1, "shared")
    assert messages.lines() == ["seeds 0-2: shared", "seed 3: mine"]
    assert [seeds_label(s) for s in ([4], [1, 0], [0, 1, 2, 3, 4], [0, 1, 2, 7, 9, 10])] == [
        "seed 4", "seeds 0, 1", "seeds 0-4", "seeds 0-2, 7, 9, 10"]


def test_older_messages_are_retired_once_and_a_retired_message_is_not_shown_again() -> None:
    messages = SeedMessages()
    for k in range(5):
        messages.add(0, f"notice {k}")
    assert messages.retire(3) == ["seed 0: notice 0", "seed 0: notice 1"]
    assert messages.lines() == ["seed 0: notice 2", "seed 0: notice 3", "seed 0: notice 4"]
    assert not messages.add(1, "notice 0") and messages.seeds("notice 0") == [0, 1]  # noted, not shown again
    assert messages.retire(3) == [] and len(messages.lines()) == 3
