"""context.md is optional, said once when a model will read the prompts; a context file that
problem.toml names but that is missing is a one-line error (real subprocesses)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
EDIT = "Idea: bigger first.\n<<<<<<< SEARCH\n    return x * 1.0\n=======\n    return -x\n>>>>>>> REPLACE\n"


def evolve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _toy(tmp_path: Path) -> Path:
    toy = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", toy, ignore=shutil.ignore_patterns("__pycache__"))
    assert not (toy / "context.md").exists()
    return toy


def test_a_model_run_without_context_md_says_so_once_and_an_offline_run_does_not(tmp_path: Path) -> None:
    toy = _toy(tmp_path)
    (tmp_path / "r.jsonl").write_text(json.dumps({"iteration": 1, "model": "m", "text": EDIT}) + "\n")
    note = (f"note: {toy / 'context.md'} is missing or empty: the model reads only problem.toml's "
            "description and function contract (docs/add-a-problem.md)")
    replayed = evolve("run", "toy", "--llm", "replay:r.jsonl", "--iterations", "1", "--out", "a", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.splitlines().count(note) == 1
    offline = evolve("run", "toy", "--llm", "mutate", "--iterations", "1", "--out", "b", cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert "context.md" not in offline.stdout
    (toy / "context.md").write_text("Lower numbers are better.\n")
    with_context = evolve("run", "toy", "--llm", "replay:r.jsonl", "--iterations", "1", "--out", "c", cwd=tmp_path)
    assert with_context.returncode == 0 and "context.md" not in with_context.stdout


def test_a_context_file_named_in_problem_toml_but_missing_is_a_one_line_error(tmp_path: Path) -> None:
    toy = _toy(tmp_path)
    toml = toy / "problem.toml"
    toml.write_text(toml.read_text().replace('seed = "seed.py"\n', 'seed = "seed.py"\ncontext = "ctx.md"\n', 1))
    assert 'context = "ctx.md"' in toml.read_text()
    result = evolve("run", "toy", "--iterations", "1", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"{toml}: context = 'ctx.md': {toy / 'ctx.md'} does not exist" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_baselines_folder_named_in_problem_toml_but_missing_is_a_one_line_error(tmp_path: Path) -> None:
    """QA as a new user: `baselines = "nobaselines"` showed the seed alone, as if the problem had
    no baselines. A folder problem.toml names must exist; the default baselines/ stays optional."""
    toy = _toy(tmp_path)
    toml = toy / "problem.toml"
    toml.write_text(toml.read_text().replace('baselines = "baselines"\n', 'baselines = "nobaselines"\n', 1))
    assert 'baselines = "nobaselines"' in toml.read_text()
    result = evolve("baselines", "toy", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"{toml}: baselines = 'nobaselines': {toy / 'nobaselines'} is not a folder" in result.stderr
