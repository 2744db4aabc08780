"""The project installs like a well-kept package: a wheel built from the repository adds one
import name, ``evolve`` (with its dist-info and the ``evolve`` command), and works from there."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from nested_venv import fresh_venv, install, run, see_this_environment, site_packages


@pytest.fixture
def wheel(evolve_wheel: Path) -> Path:
    """The checkout's wheel (conftest.py builds it once; tests/test_hostile_sandbox.py installs it too)."""
    return evolve_wheel


def test_the_wheel_holds_only_the_evolve_package_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"evolve", wheel.name.split("-py")[0] + ".dist-info"}
    for needed in ("evolve/problems/smtt/problem.toml", "evolve/problems/smtt/seed.py",
                   "evolve/evaluators/smtt/verifier.py", "evolve/prompts/system.jinja",
                   "evolve/templates/report.html.jinja", "evolve/templates/watch.html.jinja",
                   "evolve/templates/new_problem/tests/test_problem.py.tmpl"):
        assert needed in names, needed
    assert any(n.startswith("evolve/problems/smtt/data/") for n in names)
    assert not any("__pycache__" in n for n in names)


def test_installing_the_wheel_adds_only_evolve_and_its_command(wheel: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    packages, scripts = site_packages(python), python.parent
    before_packages, before_scripts = set(map(str, packages.iterdir())), set(map(str, scripts.iterdir()))
    install(python, wheel, tmp_path)
    added = {Path(p).name for p in set(map(str, packages.iterdir())) - before_packages}
    assert added == {"evolve", wheel.name.split("-py")[0] + ".dist-info"}
    assert {Path(p).name for p in set(map(str, scripts.iterdir())) - before_scripts} == {"evolve"}

    # And it works from there: problems and their data come from the wheel, not the checkout.
    see_this_environment(python)
    where = run(python, "-c", "import evolve.problems as p; print(p.__file__)", cwd=tmp_path)
    assert where.stdout.strip().startswith(str(packages)), where.stdout + where.stderr
    seed = packages / "evolve" / "problems" / "smtt" / "seed.py"
    scored = run(scripts / "evolve", "eval", "smtt", str(seed), "--split", "quick", "--json", cwd=tmp_path)
    assert scored.returncode == 0 and '"status": "ok"' in scored.stdout, scored.stderr
