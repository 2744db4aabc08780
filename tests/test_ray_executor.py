"""--executor ray: evaluations as Ray actors (each with its own sandbox), archive on the driver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evolve.archive import Archive
from evolve.config import resolve_settings
from evolve.executors import RayExecutor
from evolve.llm import make_llm
from evolve.loop import Controller
from evolve.problem import load_problem

ray = pytest.importorskip("ray", reason="Ray is installed by the test extras; run pip install -e '.[test]'")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_offline_run_through_ray_archives_every_iteration_on_the_driver(
    local_ray: None, toy_dir: Path, tmp_path: Path
) -> None:
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(
        problem.spec.run, None, {"iterations": 12, "workers": 2, "concurrency": 2, "executor": "ray"}
    )
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    progress = Controller(problem, settings, archive, make_llm("stub"), tmp_path).run()
    assert progress.stop_reason == "iterations" and archive.attempt_count() == 12
    assert archive.best().score >= archive.seed().score
    assert ray.is_initialized()  # the run used the caller's Ray and left it running


def test_ray_actors_run_candidates_in_their_own_processes_and_sandboxes(local_ray: None, toy_dir: Path) -> None:
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"workers": 2, "executor": "ray"})
    splits = {"quick": problem.instances("quick"), "train": problem.instances("train")}
    executor = RayExecutor(problem, settings, splits, address=None)
    try:
        nodes = executor.nodes()
        assert len(set(nodes)) == 2 and all(not n.endswith(f":{__import__('os').getpid()}") for n in nodes)
        good = executor.run_split(problem.seed_code, "train")
        assert good.ok and len(good.instances) == 4
        hang = problem.seed_code.replace("return x * 1.0", "while True:\n        pass")
        assert executor.run_split(hang, "quick").status == "timeout"  # contained on the worker too
    finally:
        executor.close()


def test_interactive_verifier_runs_its_sessions_on_ray_actors(local_ray: None) -> None:
    problem = load_problem(str(Path(__file__).resolve().parent / "toy_interactive"))
    settings = resolve_settings(problem.spec.run, None, {"workers": 1, "executor": "ray"})
    splits = {"quick": problem.instances("quick"), "train": problem.instances("train")}
    executor = RayExecutor(problem, settings, splits, address=None)
    try:
        best = executor.run_split("def pick(r):\n    return int(r.argmax())\n", "train")
        assert best.ok and best.score == 0.0 and len(best.instances) == 4
    finally:
        executor.close()


def test_executor_ray_without_ray_installed_is_a_one_line_error(tmp_path: Path, toy_dir: Path) -> None:
    # A child interpreter where importing ray fails, as on a machine without the extra.
    blocker = tmp_path / "noray"
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    result = subprocess.run(
        [sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--executor", "ray", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(blocker)}, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --executor ray needs Ray: pip install -e '.[ray]'"
    assert not (tmp_path / "r").exists()


def test_instance_data_holding_a_class_of_a_folder_verifiers_module_reach_ray_actors(
        local_ray: None, tmp_path: Path) -> None:
    """The instances travel to each actor once; their Box class pickles by the folder's package
    name (evolve_plugin_<hash>.toy_verifier), which an actor knows only once it has loaded the
    problem: they are opened after that (evolve/executors.py, unpack_splits)."""
    from test_plugin_same_names import TESTS, _boxed  # tests/ is on sys.path

    folder = _boxed(tmp_path)
    problem = load_problem(str(folder))
    settings = resolve_settings(problem.spec.run, None, {"iterations": 2, "workers": 2, "executor": "ray"})
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    progress = Controller(problem, settings, archive, make_llm("stub"), tmp_path).run()
    assert progress.stop_reason == "iterations" and archive.attempt_count() == 2
    plain = load_problem(str(TESTS / "toy_problem"))
    import evolve

    seed = evolve.evaluate(plain, plain.seed_code, split="train")
    assert archive.seed().score == pytest.approx(seed.score)
