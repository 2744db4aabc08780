"""Baselines of another class than the problem admits (problem.toml ``other_class_baselines``,
smtt_rule's EDDC and augmented MDDC) are scored and shown, but never taken as the strongest
baseline a run's best is held against (real run, real sandbox, the CLI as a user runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import evolve
from evolve.holdout import evaluate_holdout
from evolve.problem import load_problem

REPO = Path(__file__).resolve().parent.parent

# Input order: a valid order of the toy, and worse than largest-first on every instance.
AS_GIVEN = '''
def order(x):
    """Input order."""
    return list(range(len(x)))
'''


def with_other_class(toy: Path, names: str) -> None:
    (toy / "baselines" / "as_given.py").write_text(AS_GIVEN)
    toml = toy / "problem.toml"
    text = toml.read_text().replace('baselines = "baselines"\n', f'baselines = "baselines"\nother_class_baselines = {names}\n')
    toml.write_text(text)


def test_the_strongest_baseline_is_never_one_of_another_class(toy_dir: Path, tmp_path: Path) -> None:
    with_other_class(toy_dir, '["descending"]')
    run = evolve.run(str(toy_dir), iterations=3, out=tmp_path / "run").dir
    holdout = evaluate_holdout(run)
    descending, as_given = holdout.evaluations["descending"], holdout.evaluations["as_given"]
    assert descending.score is not None and as_given.score is not None and descending.score > as_given.score
    assert holdout.strongest_baseline() == "as_given"  # the old code named "descending"
    assert holdout.to_json()["other_class_baselines"] == ["descending"]


def test_smtt_rule_names_its_two_orders_that_keep_state() -> None:
    problem = load_problem("smtt_rule")
    assert problem.spec.other_class_baselines == ["eddc", "mddc_augmented"]
    assert set(problem.spec.other_class_baselines) <= set(problem.baselines)


def test_a_name_that_is_no_baseline_is_one_line_naming_the_key(toy_dir: Path) -> None:
    with_other_class(toy_dir, '["descnding"]')
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "baselines", str(toy_dir), "--split", "quick"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "other_class_baselines" in lines[0] and "'descnding'" in lines[0] and "as_given" in lines[0]
