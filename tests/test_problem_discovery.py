from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evolve.errors import UserError
from evolve.problem import discover, load_problem

TESTS = Path(__file__).resolve().parent


def test_builtin_smtt_is_discovered_with_its_baselines() -> None:
    problems = discover()
    assert "smtt" in problems
    smtt = problems["smtt"]
    assert smtt.origin == "builtin"
    assert {"edd", "mdd"} <= set(smtt.baselines)
    assert "EVOLVE-BLOCK-START" in smtt.seed_code


def test_problem_folder_given_by_path_loads(toy_dir: Path) -> None:
    problem = load_problem(str(toy_dir))
    assert problem.name == "toy" and problem.origin == "path"
    assert len(problem.instances("train")) == 4


def test_unknown_problem_lists_known_ones() -> None:
    with pytest.raises(UserError, match=r"unknown problem 'nope' \(known: .*smtt"):
        load_problem("nope")


def test_unknown_split_is_a_clear_error(toy_dir: Path) -> None:
    with pytest.raises(UserError, match="unknown split 'validation'"):
        load_problem(str(toy_dir)).instances("validation")


def test_installed_package_is_found_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real distribution on sys.path (dist-info + entry_points.txt), no mocking."""
    site = tmp_path / "site"
    package = site / "toyplug_pkg"
    shutil.copytree(TESTS / "toy_problem", package)
    (package / "__init__.py").write_text("")
    toml = package / "problem.toml"
    toml.write_text(toml.read_text().replace('name = "toy"', 'name = "toyplug"').replace(
        'entry = "toy_verifier:ToyVerifier"', 'entry = "toyplug_pkg.toy_verifier:ToyVerifier"'))
    dist = site / "toyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[evolve.problems]\ntoyplug = toyplug_pkg\n")
    monkeypatch.syspath_prepend(str(site))

    found = discover()
    assert "toyplug" in found and found["toyplug"].origin == "entry point (toyplug)"
    problem = load_problem("toyplug")
    assert problem.verifier.instances("quick")
