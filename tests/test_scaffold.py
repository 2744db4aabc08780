"""evolve new-problem: the scaffold passes its own tests and evolves at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.errors import UserError
from evolve.scaffold import identifiers, scaffold


def evolve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def problem_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scaffold")
    result = evolve("new-problem", "night-shift", "--dir", "problems_wip/night-shift", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "problems_wip" / "night-shift"


def test_scaffold_creates_every_part_of_a_problem(problem_dir: Path) -> None:
    files = {str(p.relative_to(problem_dir)) for p in problem_dir.rglob("*") if p.is_file()}
    assert {"problem.toml", "seed.py", "context.md", "README.md", "baselines/wspt.py",
            "night_shift_verifier.py", "night_shift_candidate_side.py", "tests/test_night_shift.py"} <= files
    toml = (problem_dir / "problem.toml").read_text()
    assert 'name = "night-shift"' in toml and 'entry = "night_shift_verifier:NightShiftVerifier"' in toml
    assert "__" not in toml.replace("__init__", "")  # every placeholder was filled


def test_scaffold_runs_offline_and_improves_on_its_seed(problem_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = evolve("run", str(problem_dir), "--llm", "stub", "--iterations", "40", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    review = json.loads(evolve("review", str(out), "--json", cwd=tmp_path).stdout)
    assert review["problem"] == "night-shift" and review["iterations"] == 40
    assert review["best"]["score"] > review["seed"]["score"]  # SPT ignores the weights: the stub finds better
    header = evolve("export", str(out), "-o", str(tmp_path / "rule.py"), cwd=tmp_path).returncode == 0 and (
        tmp_path / "rule.py").read_text()
    # The scaffold's title starts with its name: the header says it once, not "night-shift: night-shift: ...".
    assert "# problem:   night-shift: weighted completion time" in header and "night-shift: night-shift" not in header
    # The check the header suggests runs as printed: a plug-in is named by its folder, not by its name.
    check = next(line for line in header.splitlines() if "evolve eval" in line).split("check it on held-out data: ")[1]
    assert check.split()[2] == str(problem_dir.resolve())
    result = evolve(*check.split()[1:-2], "--split", "quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_scaffold_gp_run_finds_the_optimal_rule(problem_dir: Path, tmp_path: Path) -> None:
    """Without --llm the scaffold's [rule] table makes the run a GP search; WSPT (p / w) is optimal."""
    out = tmp_path / "gp-run"
    result = evolve("run", str(problem_dir), "--iterations", "60", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "GP" in result.stdout
    review = json.loads(evolve("review", str(out), "--json", cwd=tmp_path).stdout)
    assert review["iterations"] == 60 and review["best"]["gap_pct"] == pytest.approx(0.0, abs=1e-9)


def test_scaffold_verifier_rejects_unknown_options(problem_dir: Path) -> None:
    result = evolve("eval", str(problem_dir), str(problem_dir / "seed.py"), "--split", "quick",
                    "--option", "colour=3", cwd=problem_dir)
    assert result.returncode == 2 and "unknown key 'colour'" in result.stderr


def test_baselines_of_the_scaffold_reach_the_optimum(problem_dir: Path) -> None:
    result = evolve("baselines", str(problem_dir), "--split", "test", "--json", cwd=problem_dir)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["baselines"]}
    assert rows["wspt"]["metrics"]["gap_mean_pct"] == pytest.approx(0.0, abs=1e-9)  # Smith's rule is optimal
    assert rows["seed"]["metrics"]["gap_mean_pct"] > 1.0


@pytest.mark.parametrize("name", ["Night", "-x", "a b", "ü", ""])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(UserError, match="lowercase letters"):
        identifiers(name)


def test_names_become_python_identifiers() -> None:
    assert identifiers("2-stage")["__MODULE__"] == "p_2_stage_verifier"
    assert identifiers("2-stage")["__CLASS__"] == "P2StageVerifier"


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder"):
        scaffold("taken", tmp_path / "taken")
    result = evolve("new-problem", "taken", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_a_folder_that_cannot_be_created_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where a parent folder should be (as /proc/x): was a traceback
    with pytest.raises(UserError, match=r"file/new: cannot create the problem folder \(Not a directory\)"):
        scaffold("new", blocker / "new")


def test_scaffold_next_steps_run_as_printed_and_its_generated_tests_pass(tmp_path: Path) -> None:
    """The 'next:' commands new-problem prints work when typed as printed: pytest through
    this interpreter (a bare `pytest` may be another Python's, without evolve), whose run of the
    scaffold's generated tests passes, and the default offline run, not the blind mutator."""
    made = evolve("new-problem", "late-jobs", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.split("next:\n", 1)[1].split("\nthen ", 1)[0].splitlines()
    commands = [line.split("   (first:")[0].split() for line in lines]
    assert [c[:3] for c in commands] == [["python", "-m", "pytest"], ["evolve", "baselines", "late-jobs"],
                                         ["evolve", "run", "late-jobs"]]
    assert "--llm" not in commands[2]
    for command in commands:
        argv = [sys.executable, *command[1:]] if command[0] == "python" else [sys.executable, "-m", "evolve.cli",
                                                                                *command[1:]]
        if command[1] == "run":
            argv += ["--iterations", "4", "--out", str(tmp_path / "run")]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        if command[0] == "python":  # the generated tests: they ran, and none failed
            assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-3000:]


def test_a_shipped_problems_name_is_refused_as_its_run_would_run_the_shipped_one(tmp_path: Path) -> None:
    """`evolve new-problem smtt` made ./smtt and said `evolve run smtt`, which runs the shipped
    smtt whatever ./smtt holds: a newcomer's edits would have had no effect."""
    result = evolve("new-problem", "smtt", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "problem name 'smtt': a shipped problem has that name" in result.stderr
    assert not (tmp_path / "smtt").exists()
