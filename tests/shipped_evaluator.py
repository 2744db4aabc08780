"""A shipped problem with an Evaluator under its own sandbox limits, as `evolve eval` runs it,
and the seeds-attack tests' way of running a probe beside the baselines it must equal or beat."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.evaluators.smtt.generator import split_instances
from evolve.evaluators.smtt.local_search import warm_start
from evolve.problem import Problem, load_problem
from evolve.verifier import Instance


@contextmanager
def shipped_evaluator(name: str) -> Iterator[tuple[Problem, Evaluator]]:
    problem = load_problem(name)
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        yield problem, evaluator


def run_each(evaluator: Evaluator, codes: dict[str, str], instances: list[Instance]) -> dict[str, Evaluation]:
    """Every program on the instances (as quick), each required to pass: the probes pass either way."""
    out = {name: evaluator.run_split(code, instances, "quick") for name, code in codes.items()}
    for name, evaluation in out.items():
        assert evaluation.ok, (name, evaluation.feedback)
    return out


def objectives(evaluation: Evaluation) -> list[float]:
    return [float(r.objective) for r in evaluation.instances if r.objective is not None]


# A candidate's copy of evaluators/smtt/generator.py's old public seeding (the seeds attacks' probes).
OLD_SMTT_GENERATOR = """
_BASE, _IDS = 20250611, {"quick": 1, "train": 2, "test": 3}


def _gen(split, n, index, tf, rdd):
    rng = np.random.default_rng([_BASE, _IDS[split], n, index])
    p = rng.integers(1, 100, size=n, endpoint=True, dtype=np.int64)
    total = int(p.sum())
    low = -(-(total * (20 - 2 * tf - rdd)) // 20)
    high = total * (20 - 2 * tf + rdd) // 20
    return p, np.maximum(rng.integers(low, high, size=n, endpoint=True, dtype=np.int64), 0)
"""


def public_quick_file(folder: Path) -> Path:
    """smtt's quick split under the old public seeding (both tracks' before the secret), as a
    published set is given: a file, each instance with a stated best-known value (the best
    shipped baseline, then insertion descent)."""
    rows = [{"name": g.name, "p": g.p.tolist(), "d": g.d.tolist(), "best_known": int(warm_start(g.p, g.d)[0])}
            for g in split_instances("quick")]
    path = folder / "public_quick.json"
    path.write_text(json.dumps({"instances": rows}))
    return path
