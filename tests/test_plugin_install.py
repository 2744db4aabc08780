"""A problem shipped as an installed package is found through the ``evolve.problems``
entry-point group: build tests/plugin_example (online bin packing) into a wheel, install it
into a fresh virtual environment and drive it through the CLI of that environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from nested_venv import build_wheel, fresh_venv, install, run, see_this_environment

EXAMPLE = Path(__file__).resolve().parent / "plugin_example"


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    wheel = build_wheel(EXAMPLE, [], root)
    python = fresh_venv(root / "venv")
    see_this_environment(python)  # evolve and its dependencies come from the test's environment
    install(python, wheel, root)
    return python


def test_installed_plugin_is_listed_by_evolve_problems(venv_python: Path, tmp_path: Path) -> None:
    result = run(venv_python, "-m", "evolve.cli", "problems", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "binpack" in line)
    assert "entry point (evolve-binpack)" in line and "best_fit" in line and "first_fit" in line
    # Only the environment that installed the package sees it.
    outside = run(Path(sys.executable), "-m", "evolve.cli", "problems", cwd=tmp_path)
    assert outside.returncode == 0 and "binpack" not in outside.stdout


def test_installed_plugin_scores_its_baselines_through_the_sandbox(venv_python: Path, tmp_path: Path) -> None:
    result = run(venv_python, "-m", "evolve.cli", "baselines", "binpack", "--split", "quick", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["baselines"]}
    assert set(rows) == {"seed", "first_fit", "best_fit"}
    assert all(row["status"] == "ok" for row in rows.values())
    # Worst fit (the seed) wastes bins that best fit fills.
    assert rows["best_fit"]["metrics"]["gap_mean_pct"] < rows["seed"]["metrics"]["gap_mean_pct"]


def test_installed_plugin_runs_offline_and_can_be_reviewed(venv_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run(venv_python, "-m", "evolve.cli", "run", "binpack", "--iterations", "8", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert (out / "best.py").is_file()
    review = run(venv_python, "-m", "evolve.cli", "review", str(out), "--json", cwd=tmp_path)
    assert review.returncode == 0, review.stderr
    document = json.loads(review.stdout)
    assert document["problem"] == "binpack" and document["iterations"] == 8
    assert document["best"]["score"] >= document["seed"]["score"]
