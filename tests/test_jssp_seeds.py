"""The generated JSSP instances' seeds are out of a candidate's reach (docs/jssp.md, "Seeds").

Found by attacking the replay audit (2026-12-06): every quick and train instance drew from
``default_rng([20240613, split seed, n, m, index])`` and the generator is six lines of public
code, so a "rule" carrying a copy recognised its instance from any decision's features (each
candidate's job total work, operation index and processing time), planned on the whole
instance (the best of 25 noisy MWKR schedules, built with the sandbox's own builder) and
dispatched that plan.  It is a function of its features, with the instance as hidden data, so
the replay in a fresh process recognises and plans again and agrees with the run: it passed
the audit at 9.35 % mean gap on quick against MWKR's 13.71 % (train: 9.76 % against 14.35 %).

The probe runs here through the real sandbox, audit included: on the shipped instances it
recognises nothing and dispatches exactly as MWKR; handed the same sizes under the old public
seeding it passes the audit and beats MWKR, so the test cannot pass blind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from shipped_evaluator import objectives, run_each, shipped_evaluator

from evolve.errors import UserError
from evolve.evaluation import Evaluation
from evolve.evaluators.jssp import JsspVerifier
from evolve.evaluators.jssp.generator import SIZES, generated_split, taillard_like
from evolve.evaluators.secret_seeds import SEEDS_FILE, load_secret
from evolve.problem import load_problem
from evolve.verifier import Instance, Reference

OLD_ROOT_SEED, OLD_SPLIT_SEED = 20240613, {"quick": 11, "train": 23}  # the public seeding before the fix

# The attack: the generator with the old public seeds, recognition from the decision's features,
# a plan on the whole instance, and MWKR wherever the instance is not known.
PROBE = """
import sys

import numpy as np

ROOT, SPLIT_SEEDS, SIZES, PER_SIZE = OLD_PUBLIC_SEEDING
_known = {}
_plans = {}


def _instances(n, m):
    if not _known:
        for split, sizes in SIZES.items():
            for a, b in sizes:
                for i in range(PER_SIZE[split]):
                    rng = np.random.default_rng([ROOT, SPLIT_SEEDS[split], a, b, i])
                    durations = rng.integers(1, 100, size=(a, b))
                    machines = np.stack([rng.permutation(b) for _ in range(a)])
                    _known.setdefault((a, b), []).append((machines, durations))
    return _known.get((n, m), [])


def _recognise(f):
    n, m = int(f["n_jobs"]), int(f["n_machines"])
    totals = f["job_work_left"] + f["job_work_done"]
    ops = f["op_index"].astype(np.int64)
    for k, (machines, durations) in enumerate(_instances(n, m)):
        sums = durations.sum(axis=1)
        if all(any(sums[j] == t and durations[j, o] == p for j in range(n))
               for t, o, p in zip(totals, ops, f["proc_time"])):
            return (n, m, k), machines, durations
    return None


def _key(f):
    return (float(f["now"]), float(f["machine_work_left"][0]), f["op_index"].tobytes(),
            f["job_work_done"].tobytes(), f["proc_time"].tobytes(), f["job_ready"].tobytes())


def _plan(machines, durations):
    build = sys.modules["evolve.evaluators.jssp.candidate_side"].build_schedule
    rng = np.random.default_rng(0)
    lengths = np.full(len(durations), durations.shape[1])
    best, best_makespan = None, None
    for k in range(25):
        noise = 0.0 if k == 0 else 0.3
        choices = {}

        def noisy(**f):
            values = f["job_work_left"] * (1 + noise * rng.random(f["job_work_left"].shape))
            choices[_key(f)] = int(values.argmax())
            return values

        start = build(noisy, machines, durations.astype(float), lengths, durations.shape[1], "non_delay")
        makespan = (start + durations).max()
        if best is None or makespan < best_makespan:
            best, best_makespan = choices, makespan
    return best


def priority(**f):
    found = _recognise(f)
    if found is None:
        return f["job_work_left"]  # MWKR wherever the instance is not known
    name, machines, durations = found
    if name not in _plans:
        _plans[name] = _plan(machines, durations)
    choice = _plans[name].get(_key(f))
    if choice is None:
        return f["job_work_left"]
    out = np.zeros(len(f["proc_time"]))
    out[choice] = 1.0
    return out
""".replace("OLD_PUBLIC_SEEDING", repr((OLD_ROOT_SEED, OLD_SPLIT_SEED, SIZES, {"quick": 1, "train": 4})))


@pytest.fixture(scope="module")
def jssp() -> Any:
    with shipped_evaluator("jssp") as pair:
        yield pair


def makespans(jssp: Any, instances: list[Instance]) -> dict[str, Evaluation]:
    problem, evaluator = jssp
    codes = {"probe": PROBE, "mwkr": problem.baselines["mwkr"].read_text()}
    return run_each(evaluator, codes, instances)


def publicly_seeded(problem: Any) -> list[Instance]:
    """The quick split's sizes with the instances the old code made (public seeds)."""
    out = []
    for n, m in SIZES["quick"]:
        shop = taillard_like(f"old-quick-{n}x{m}-0", n, m, [OLD_ROOT_SEED, OLD_SPLIT_SEED["quick"], n, m, 0])
        bound = float(shop.trivial_lower_bound())
        out.append(problem.verifier._instance(shop, shop.size, Reference(bound, "bound", "trivial bound", bound)))
    return out


def test_the_recognising_planner_finds_nothing_on_the_shipped_instances(jssp: Any) -> None:
    problem, _ = jssp
    found = makespans(jssp, problem.instances("quick"))
    assert objectives(found["probe"]) == objectives(found["mwkr"])  # MWKR's schedules, instance by instance
    assert len(objectives(found["probe"])) == len(SIZES["quick"])


def test_under_the_old_public_seeding_it_passed_the_audit_and_beat_mwkr(jssp: Any) -> None:
    problem, _ = jssp
    found = makespans(jssp, publicly_seeded(problem))
    planned, mwkr = objectives(found["probe"]), objectives(found["mwkr"])
    assert len(planned) == len(mwkr) == len(SIZES["quick"])
    assert all(a <= b for a, b in zip(planned, mwkr, strict=True))
    assert sum(planned) < 0.97 * sum(mwkr)  # a plan, not a rule: 2-13 % shorter per instance


def test_every_generated_instance_depends_on_the_secret_and_its_label() -> None:
    secret = load_secret(load_problem("jssp").dir, "jssp")
    first = generated_split("quick", secret)
    assert [s.content_hash() for s in first] == [s.content_hash() for s in generated_split("quick", secret)]
    other = generated_split("quick", bytes(16))
    assert not {s.content_hash() for s in first} & {s.content_hash() for s in other}
    # Same sizes, other labels: the 6x6 of quick is not train's first 6x6.
    train = generated_split("train", secret)
    assert not np.array_equal(first[0].durations, train[0].durations)


def test_a_missing_jssp_seeds_file_is_one_line_and_only_the_generated_splits_need_it(tmp_path: Any) -> None:
    verifier = JsspVerifier(tmp_path, {})
    with pytest.raises(UserError, match="missing; the jssp verifier seeds its generated quick and train") as info:
        verifier.reference_tasks("train")
    assert "\n" not in str(info.value) and str(tmp_path / SEEDS_FILE) in str(info.value)
    assert verifier.reference_tasks("test") == []
