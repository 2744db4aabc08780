"""The MoE workloads' seeds are out of a candidate's reach (docs/moe.md, "Seeds").

Found by reading (2026-12-06): every workload drew from ``default_rng([20251023, split id,
index])`` and ``generate`` is public, so a balancer carrying a copy of the generator could try
the few (split, index) pairs, keep the one whose first window equals the ``weight`` it was
given (exact integer counts) and place LPT on the window it is judged on.  That probe runs
here through the real sandbox: on the shipped workloads it finds nothing and places exactly as
LPT on the given window; handed the same deployments with the old public seeding, the same
probe finds its workload and scores near the oracle, so the test cannot pass blind.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from shipped_evaluator import run_each, shipped_evaluator

from evolve.errors import UserError
from evolve.evaluation import Evaluation
from evolve.evaluators.moe import generator
from evolve.evaluators.moe.generator import SPLITS, TRAIN_DRIFT, Workload, generate
from evolve.evaluators.moe.references import trivial_reference
from evolve.evaluators.moe.verifier import MoeVerifier
from evolve.evaluators.secret_seeds import SEEDS_FILE, load_secret
from evolve.problem import load_problem
from evolve.verifier import Instance

OLD_BASE_SEED = 20251023  # the public seeding before the fix: default_rng([BASE, split id, index])

# The attack: a copy of ``generate`` and of the public facts (drifts, seeding), a search over
# (split, index), and LPT (lpt.py's, renamed _lpt) placed on the window that follows the one it
# was given.  LPT on the given window when nothing matches: finding nothing means placing as lpt.py.
PROBE = """from __future__ import annotations

from types import SimpleNamespace

import numpy as np

BASE = OLD_BASE_SEED
DRIFTS = {1: TRAIN, 2: TRAIN, 3: TEST}  # split id -> drift (test drifts faster)
_found = {}  # shape -> the generated windows of the matched workload
_failed = []  # shapes of full searches that found nothing: three and the probe stops searching

GENERATE


def _workload(weight, num_groups):
    layers, experts = weight.shape
    key = (layers, experts)
    if _found.get(key) is None and _failed.count(key) < 3:  # warmup calls are perturbed: retry
        config = SimpleNamespace(experts=experts, groups=num_groups)
        for split_id, drift in DRIFTS.items():
            for index in range(20):  # the splits' workloads (train has 19)
                first = generate(config, layers, 1, drift, np.random.default_rng([BASE, split_id, index]))
                if np.array_equal(first[0], weight):
                    _found[key] = generate(config, layers, 6, drift, np.random.default_rng([BASE, split_id, index]))
                    break
            if _found.get(key) is not None:
                break
        else:
            _failed.append(key)
    return _found.get(key)


LPT


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    weight = np.asarray(weight)
    load = weight.astype(np.float64)
    windows = _workload(weight, num_groups) if weight.dtype.kind in "iu" else None
    if windows is not None:
        for k in range(len(windows) - 1):
            if np.array_equal(windows[k], weight):
                load = windows[k + 1].astype(np.float64)  # the window this placement is judged on
                break
    return _lpt(load, num_replicas, num_groups, num_nodes, num_gpus)
"""


def probe_source() -> str:
    drift = "SimpleNamespace(**{!r})"
    lpt = load_problem("moe").baselines["lpt"].read_text().split('"""', 2)[2]
    return (PROBE.replace("LPT\n", lpt.replace("def rebalance_experts(", "def _lpt(")).replace("OLD_BASE_SEED", str(OLD_BASE_SEED))
            .replace("TRAIN", drift.format(vars(generator.TRAIN_DRIFT)))
            .replace("TEST", drift.format(vars(generator.TEST_DRIFT)))
            .replace("GENERATE", "\n".join([inspect.getsource(generator._hot_count),
                                            inspect.getsource(generate)])))


@pytest.fixture(scope="module")
def moe() -> Any:
    with shipped_evaluator("moe") as pair:
        yield pair


def balancedness(moe: Any, instances: list[Instance]) -> dict[str, Evaluation]:
    problem, evaluator = moe
    codes = {"probe": probe_source(), "lpt": problem.baselines["lpt"].read_text()}
    return run_each(evaluator, codes, instances)


def publicly_seeded(problem: Any) -> list[Instance]:
    """The quick split's deployments with the windows the old code made (public seeds)."""
    out = []
    for index, spec in enumerate(SPLITS["quick"]):  # one workload per row on quick
        rng = np.random.default_rng([OLD_BASE_SEED, 1, index])
        windows = generate(spec.config, spec.layers, spec.windows, TRAIN_DRIFT, rng)
        workload = Workload(f"old-{spec.config.name}", spec.config, windows)
        out.append(problem.verifier._instance(workload, trivial_reference(spec.config, windows)))
    return out


def test_the_seed_search_finds_nothing_on_the_shipped_workloads(moe: Any) -> None:
    problem, _ = moe
    found = balancedness(moe, problem.instances("quick"))
    # The same placements as LPT on the given window, bit for bit, so the same balancedness.
    assert found["probe"].metrics["balancedness"] == found["lpt"].metrics["balancedness"]
    for name in ("probe", "lpt"):
        assert found[name].metrics["balancedness"] < 0.9


def test_the_seed_search_finds_the_judged_windows_under_the_old_public_seeding(moe: Any) -> None:
    problem, _ = moe
    found = balancedness(moe, publicly_seeded(problem))
    assert found["probe"].metrics["balancedness"] > 0.97  # LPT placed on the judged window ...
    assert found["probe"].metrics["balancedness"] > found["lpt"].metrics["balancedness"] + 0.1  # ... not the last


def test_every_workload_depends_on_the_secret_and_its_label() -> None:
    secret = load_secret(load_problem("moe").dir, "moe")
    first = generator.split_workloads("quick", secret)
    again = generator.split_workloads("quick", secret)
    assert all(np.array_equal(a.windows, b.windows) for a, b in zip(first, again, strict=True))
    other = generator.split_workloads("quick", bytes(16))
    assert not any(np.array_equal(a.windows, b.windows) for a, b in zip(first, other, strict=True))
    # Neither split leads to another's: the first train workload is not quick's, though both are small64.
    train = generator.split_workloads("train", secret)
    assert all(not np.array_equal(a.windows[0], b.windows[0]) for a in first for b in train
               if a.windows.shape == b.windows.shape)


@pytest.mark.parametrize(("content", "message"), [
    (None, "missing; the moe verifier seeds its built-in workloads from a secret there"),
    ('{"entropy": "abc"}', "field 'entropy': expected at least 32 hex digits"),
    ("[1", "cannot read the seeds file"),
])
def test_a_missing_or_bad_moe_seeds_file_is_one_line(tmp_path: Any, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "data").mkdir()
        (tmp_path / SEEDS_FILE).write_text(content)
    with pytest.raises(UserError, match=message) as info:
        MoeVerifier(tmp_path, {})
    assert "\n" not in str(info.value) and str(tmp_path / SEEDS_FILE) in str(info.value)
