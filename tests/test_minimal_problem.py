"""The smallest plug-in problem: only the required parts, and one source for its direction.

No ``[[features]]``, no ``load_instances``, ``picture``, ``headline_metrics``,
``aggregate`` or class ``direction``: it still runs, evaluates and reviews end to
end, and each missing part is either defaulted or a one-line error where it is asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.errors import UserError
from evolve.problem import load_problem
from evolve.verifier import BatchVerifier, LoadsInstances, Pictures, Verifier

TOML = """
name = "tiny-order"
title = "Order numbers, big first"
description = "Order x so that sum over positions k of k * x[order[k]] is smallest."

[function]
name = "order"
signature = "order(x: numpy.ndarray) -> list[int]"
contract = "Return a permutation of range(len(x))."

[objective]
name = "weighted position sum"
direction = "minimize"

[verifier]
entry = "tiny_order_verifier:TinyOrderVerifier"

[run]
islands = 1
"""
SIDE = '''
def solve(heuristic, instance):
    return [int(i) for i in heuristic(instance.data["x"].copy())]
'''
VERIFIER = '''
import numpy as np
from tiny_order_side import solve

from evolve.verifier import Instance, Reference, feasible, infeasible


class TinyOrderVerifier:
    def __init__(self, problem_dir, options):
        pass

    def instances(self, split):
        first, sizes = {"quick": (0, [4]), "train": (100, [5, 8]), "test": (200, [6, 9])}[split]
        out = []
        for k, n in enumerate(sizes):
            x = np.random.default_rng(first + k).integers(1, 50, size=n)
            best = float(np.sum(np.arange(n) * np.sort(x)[::-1]))
            out.append(Instance(f"{split}-{k}", f"n={n}", {"x": x}, Reference(best, "optimal", "sorting")))
        return out

    solve = staticmethod(solve)

    def score(self, instance, solution):
        x = instance.data["x"]
        if not isinstance(solution, list) or sorted(solution) != list(range(len(x))):
            return infeasible(instance, "not a permutation")
        return feasible(instance, float(np.sum(np.arange(len(x)) * x[np.asarray(solution)])), self.direction)
'''
SEED = '''import numpy as np


# EVOLVE-BLOCK-START
def priority(x):
    return x * 1.0
# EVOLVE-BLOCK-END


def order(x):
    return [int(i) for i in np.argsort(priority(np.asarray(x, dtype=float)), kind="stable")]
'''


def evolve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "tiny-order"
    root.mkdir()
    (root / "problem.toml").write_text(TOML)
    (root / "tiny_order_side.py").write_text(SIDE)
    (root / "tiny_order_verifier.py").write_text(textwrap.dedent(VERIFIER))
    (root / "seed.py").write_text(SEED)
    yield root
    for module in ("tiny_order_verifier", "tiny_order_side"):  # each test edits its own copy
        sys.modules.pop(module, None)


def test_a_problem_with_only_the_required_parts_runs_end_to_end(folder: Path, tmp_path: Path) -> None:
    problem = load_problem(str(folder))
    verifier = problem.verifier
    assert isinstance(verifier, Verifier) and isinstance(verifier, BatchVerifier)
    assert not isinstance(verifier, LoadsInstances | Pictures)
    assert verifier.direction == "minimize"  # from problem.toml
    assert [f.name for f in problem.spec.features] == ["code_length"]  # the default dimension
    out = tmp_path / "run"
    run = evolve("run", str(folder), "--llm", "stub", "--iterations", "12", "--out", str(out), cwd=tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    review = json.loads(evolve("review", str(out), "--json", cwd=tmp_path).stdout)
    assert review["iterations"] == 12 and review["seed"]["score"] is not None
    assert review["best"]["score"] >= review["seed"]["score"]


def test_instance_files_for_a_verifier_without_load_instances_are_a_one_line_error(folder: Path) -> None:
    data = folder / "mine.json"
    data.write_text("{}")
    result = evolve("eval", str(folder), str(folder / "seed.py"), "--instances", str(data), cwd=folder)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {data}: problem 'tiny-order' reads no instance files "
                                     "(its verifier defines no load_instances)")


def test_a_direction_mismatch_is_an_error_naming_the_file_and_both_values(folder: Path) -> None:
    verifier = folder / "tiny_order_verifier.py"
    verifier.write_text(verifier.read_text().replace("class TinyOrderVerifier:\n",
                                                     "class TinyOrderVerifier:\n    direction = \"maximize\"\n"))
    with pytest.raises(UserError) as err:
        load_problem(str(folder)).verifier  # noqa: B018
    message = str(err.value)
    assert message == (f"{folder.resolve() / 'problem.toml'}: objective.direction is 'minimize' but verifier "
                       "tiny_order_verifier:TinyOrderVerifier declares direction = 'maximize'; make them agree "
                       "(a mismatch would invert every gap)")
    result = evolve("eval", str(folder), str(folder / "seed.py"), "--split", "quick", cwd=folder)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "'maximize'" in result.stderr


def test_every_shipped_verifier_agrees_with_its_problem_toml() -> None:
    for name in ("jssp", "moe", "serving", "serving_router", "smtt", "smtt_rule"):
        problem = load_problem(name)
        assert problem.verifier.direction == problem.spec.objective.direction, name


def test_the_shipped_verifiers_optional_parts_match_their_protocols() -> None:
    """What each shipped verifier adds is typed: the Protocols see exactly those parts."""
    from evolve.verifier import Aggregates, InteractiveVerifier, PromptFacts, ScoreEras, TimeBudget

    smtt = load_problem("smtt").verifier
    assert isinstance(smtt, InteractiveVerifier) and isinstance(smtt, LoadsInstances) and isinstance(smtt, TimeBudget)
    jssp = load_problem("jssp").verifier
    assert isinstance(jssp, BatchVerifier) and isinstance(jssp, Aggregates) and isinstance(jssp, PromptFacts)
    assert not isinstance(jssp, InteractiveVerifier)
    from evolve.verifier import FeedbackLines, TrainFacts

    serving = load_problem("serving").verifier
    assert isinstance(serving, TrainFacts) and isinstance(serving, FeedbackLines)
    assert not isinstance(jssp, TrainFacts) and not isinstance(jssp, FeedbackLines)
    # moe says which archived scores predate its score's terms (review, report); jssp has no such term
    assert isinstance(load_problem("moe").verifier, ScoreEras) and not isinstance(jssp, ScoreEras)
