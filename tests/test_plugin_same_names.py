"""Problem folders whose verifier modules share a name (a problem copied and edited): each gets
its own verifier, sandbox side and cache digest in one process, whichever was loaded first."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import evolve
from evolve.evalcache import source_digest
from evolve.formats import json_safe
from evolve.problem import load_problem

TESTS = Path(__file__).resolve().parent
REVERSED_SIDE = "    return result.tolist() if hasattr(result, \"tolist\") else list(result)\n"


def _copies(root: Path) -> dict[str, Path]:
    """a: the toy; b: its sandbox side reverses the candidate's order and its instances are named
    b-...; c: solve is written in the verifier's own module and reverses the order too."""
    folders = {}
    for name in "abc":
        folders[name] = root / name / "toy_problem"
        shutil.copytree(TESTS / "toy_problem", folders[name])
    side = folders["b"] / "toy_side.py"
    assert REVERSED_SIDE in side.read_text()
    side.write_text(side.read_text().replace(REVERSED_SIDE, "    return [int(i) for i in result][::-1]\n"))
    verifier = folders["b"] / "toy_verifier.py"
    verifier.write_text(verifier.read_text().replace('Instance(f"{split}-{k}"', 'Instance(f"b-{split}-{k}"'))
    verifier = folders["c"] / "toy_verifier.py"
    text = verifier.read_text().replace("from toy_side import solve\n", "")
    text = text.replace("    solve = staticmethod(solve)  # toy_side.py\n",
                        "    @staticmethod\n    def solve(heuristic, instance):\n"
                        "        return [int(i) for i in heuristic(instance.data['x'].copy())][::-1]\n")
    verifier.write_text(text)
    return folders


def test_same_named_verifiers_in_two_folders_each_score_with_their_own(tmp_path: Path) -> None:
    folders = _copies(tmp_path)
    seed = (TESTS / "toy_problem" / "seed.py").read_text()  # ascending: the worst order; reversed: optimal
    results = {name: evolve.evaluate(str(folders[name]), seed, split="quick") for name in ("a", "b", "c", "a2")
               if name != "a2"}
    results["a2"] = evolve.evaluate(str(folders["a"]), seed, split="quick")
    assert results["a"].score < 0 and results["a2"].score == pytest.approx(results["a"].score)
    assert [r.name for r in results["a"].instances] == ["quick-0", "quick-1"]
    assert [r.name for r in results["b"].instances] == ["b-quick-0", "b-quick-1"]
    assert results["b"].score == pytest.approx(0.0) and results["c"].score == pytest.approx(0.0)
    problems = {name: load_problem(str(folder)) for name, folder in folders.items()}
    assert problems["a"].verifier_class is not problems["b"].verifier_class
    digests = {name: source_digest(problem) for name, problem in problems.items()}
    assert len(set(digests.values())) == 3  # a cache entry of one never answers for another


def test_a_run_reviewed_after_a_same_named_problem_reads_the_cache_its_command_wrote(tmp_path: Path) -> None:
    folders = _copies(tmp_path)
    evolve.evaluate(str(folders["b"]), (TESTS / "toy_problem" / "seed.py").read_text(), split="quick")
    run = evolve.run(str(folders["a"]), iterations=2, seed=1, out=tmp_path / "run", islands=2)
    printed = subprocess.run([sys.executable, "-m", "evolve.cli", "review", str(run.dir), "--test", "--json"],
                             capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr
    held_out = run.review(test=True).to_json()["test"]  # the command's evaluations, from the cache
    assert json_safe(held_out) == json.loads(printed.stdout)["test"]
    assert run.seed.score < 0  # a's verifier: the ascending seed is the worst order, not b's optimal one
    assert [r["name"] for r in run.program(run.seed.id).instances] == ["train-0", "train-1", "train-2", "train-3"]


def _boxed(root: Path) -> Path:
    """The toy whose instance data hold a ``Box``, a class of the verifier's own module."""
    folder = root / "boxed" / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", folder)
    verifier = folder / "toy_verifier.py"
    text = verifier.read_text().replace(
        "class ToyVerifier:\n    direction = \"minimize\"\n",
        "class Box:\n    def __init__(self, x):\n        self.x = x\n\n\n"
        "class ToyVerifier:\n    direction = \"minimize\"\n    sandbox_modules = (\"toy_verifier\",)\n")
    text = text.replace('{"x": x, "delay_s": self.delay_s}', '{"x": x, "box": Box(x), "delay_s": self.delay_s}')
    verifier.write_text(text)
    side = folder / "toy_side.py"
    side.write_text(side.read_text().replace('heuristic(instance.data["x"].copy())',
                                             'heuristic(instance.data["box"].x.copy())'))
    return folder


def test_instance_data_of_a_class_of_the_verifiers_own_module_reaches_the_sandbox(tmp_path: Path) -> None:
    """docs/add-a-problem.md: a module whose types the instance data hold goes in sandbox_modules,
    by its file's name; the verifier's own module is imported under its folder's name now, and its
    classes pickle by that name, which the worker must know."""
    folder = _boxed(tmp_path)
    seed = (TESTS / "toy_problem" / "seed.py").read_text()
    evaluation = evolve.evaluate(str(folder), seed, split="quick")
    plain = evolve.evaluate(str(TESTS / "toy_problem"), seed, split="quick")
    assert evaluation.ok, evaluation.feedback
    assert evaluation.score == pytest.approx(plain.score)


LAZY_IMPORTS = {
    "statement": "        import scaled  # lazy: imported at the first score, not with the verifier\n",
    "import_module": "        import importlib\n\n        scaled = importlib.import_module(\"scaled\")\n",
    "from_importlib": "        from importlib import import_module\n\n        scaled = import_module(\"scaled\")\n",
    "sys_modules_importlib": "        import sys\n\n        scaled = sys.modules[\"importlib\"].import_module(\"scaled\")\n",
    "builtins_import": "        import builtins\n\n        scaled = builtins.__import__(\"scaled\")\n",
    "importlib_dunder_import": "        import importlib\n\n        scaled = importlib.__import__(\"scaled\")\n",
}


def _lazy_copies(root: Path, form: str = "statement") -> dict[str, Path]:
    """a and b: the toy, each with its own ``scaled.py`` (a: factor 1, b: factor 1000) that the
    verifier imports by its plain name only inside score(), after both folders were loaded, by
    an import statement or by ``importlib.import_module`` (``form``)."""
    folders = {}
    for name, factor in (("a", 1), ("b", 1000)):
        folders[name] = root / name / "toy_problem"
        shutil.copytree(TESTS / "toy_problem", folders[name])
        (folders[name] / "scaled.py").write_text(f"FACTOR = {factor}\n")
        verifier = folders[name] / "toy_verifier.py"
        text = verifier.read_text()
        lazy = (LAZY_IMPORTS[form] + "\n"
                "        value = float(np.sum(np.arange(len(x)) * x[np.asarray(solution)])) * scaled.FACTOR\n")
        old = "        value = float(np.sum(np.arange(len(x)) * x[np.asarray(solution)]))\n"
        assert old in text
        verifier.write_text(text.replace(old, lazy).replace('Reference(best, "optimal"',
                                                            f'Reference(best * {factor}, "optimal"'))
    return folders


@pytest.mark.parametrize("form", sorted(LAZY_IMPORTS))
def test_a_lazy_plain_named_import_in_a_verifier_finds_its_own_folders_module(tmp_path: Path, form: str) -> None:
    """Both verifiers loaded first, then each scores (in both orders): a lazy ``import scaled``
    (or ``importlib.import_module("scaled")``) inside score() gets its own folder's scaled.py,
    not the one of the folder loaded last or the one another folder's score imported first."""
    folders = _lazy_copies(tmp_path, form)
    seed = (TESTS / "toy_problem" / "seed.py").read_text()
    problems = {name: load_problem(str(folder)) for name, folder in folders.items()}
    for problem in problems.values():
        assert problem.verifier_class is not None  # both imported before either scores
    plain = evolve.evaluate(str(TESTS / "toy_problem"), seed, split="quick")
    values = {}
    for name in ("a", "b", "a", "b"):
        evaluation = evolve.evaluate(problems[name], seed, split="quick")
        assert evaluation.ok, evaluation.feedback
        values[name] = [r.objective for r in evaluation.instances]
        assert evaluation.score == pytest.approx(plain.score)  # the gap: value and reference scaled alike
    assert values["b"] == pytest.approx([1000 * v for v in values["a"]])
    assert values["a"] == pytest.approx([r.objective for r in plain.instances])


def test_instance_data_of_a_class_of_the_verifiers_own_module_reach_trusted_worker_processes(tmp_path: Path) -> None:
    """--workers 2: the instances travel pickled to each trusted worker process, where the class
    is known by its folder's package name (evolve_plugin_<hash>.toy_verifier.Box) only once the
    worker has loaded the problem."""
    folder = _boxed(tmp_path)
    run = evolve.run(str(folder), iterations=3, seed=1, out=tmp_path / "run", islands=2, workers=2)
    plain = evolve.evaluate(str(TESTS / "toy_problem"), (TESTS / "toy_problem" / "seed.py").read_text(),
                            split="train")
    assert run.seed.score == pytest.approx(plain.score)
    attempts = run.attempts()
    assert len(attempts) == 3
    assert list(attempts["outcome"]) == ["evaluated"] * 3, attempts.to_dict("records")
    assert set(run.programs()["status"]) == {"ok"}  # every child scored by a worker, none crashed


def test_two_threads_loading_same_named_folders_at_once_each_get_their_own_helper(tmp_path: Path) -> None:
    """The Python API from two threads: a's and b's verifiers (each importing its own toy_side,
    b's reversing the order) loaded at the same time. b got a's toy_side (it scored -92.46, a's
    worst order, instead of 0.0) while a's import of it was under way; the import of a helper
    now waits for the other thread's. Each toy_side sleeps 0.5 s on import so that the two
    imports overlap."""
    folders = _copies(tmp_path)
    for folder in folders.values():
        side = folder / "toy_side.py"
        side.write_text(side.read_text().replace("from typing import Any\n", "from typing import Any\n\ntime.sleep(0.5)\n"))
    seed = (TESTS / "toy_problem" / "seed.py").read_text()
    results: dict[str, object] = {}

    def evaluate(name: str) -> None:
        try:
            results[name] = evolve.evaluate(str(folders[name]), seed, split="quick")
        except BaseException as error:  # reported below, with the thread's name
            results[name] = error

    threads = [threading.Thread(target=evaluate, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a, b = results["a"], results["b"]
    assert isinstance(a, evolve.Evaluation) and isinstance(b, evolve.Evaluation), results
    assert a.score < 0 and [r.name for r in a.instances] == ["quick-0", "quick-1"]
    assert b.score == pytest.approx(0.0) and [r.name for r in b.instances] == ["b-quick-0", "b-quick-1"]

