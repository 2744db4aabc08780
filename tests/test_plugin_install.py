"""A problem shipped as an installed package is found through the ``evolve.problems``
entry-point group: build and install tests/plugin_example (online bin packing) into a
fresh virtual environment and drive it through the CLI of that environment."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent / "plugin_example"


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=240)


def can_build_wheels() -> bool:
    """setuptools builds wheels itself from 70.1 on; before that it needs the wheel package."""
    major, minor = (int(x) for x in importlib.metadata.version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not can_build_wheels():
        pytest.skip("building the example package offline needs setuptools>=70.1 or wheel (the [test] extra)")
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the repository.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env_dir = root / "venv"
    # --system-site-packages: evolve, numpy, setuptools and wheel come from this
    # interpreter's environment, and this pip installs into the new one: no download.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
                   check=True, timeout=120)
    python = env_dir / "bin" / "python"
    install = run(Path(sys.executable), "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                  "--no-build-isolation", "--no-index", "--disable-pip-version-check", str(source), cwd=root)
    assert install.returncode == 0, install.stderr
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
