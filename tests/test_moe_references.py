"""MoE references: the CP-SAT bound (proven by hand and by enumeration), the trivial bound, shipped data."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.moe import MoeVerifier
from evolve.evaluators.moe.bounds import greedy_placement, trivial_lower_bound
from evolve.evaluators.moe.configs import EpConfig
from evolve.evaluators.moe.generator import SPLITS, split_workloads
from evolve.evaluators.moe.ilp import min_max_load
from evolve.evaluators.moe.references import compute_reference, content_hash, ilp_tractable
from evolve.evaluators.secret_seeds import load_secret
from evolve.references import read_file

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "moe"
SECRET = load_secret(PROBLEM_DIR, "moe")


def test_hand_checkable_case_is_proven_optimal() -> None:
    """Loads (10, 6, 2) on 2 GPUs x 2 slots: 4 slots, so exactly one expert gets a second replica.

    * expert 0 twice: replicas 5, 5, 6, 2 -> best pairing {6,2} {5,5}: max 10;
    * expert 1 twice: 10, 3, 3, 2 -> the 10 shares a GPU with at least 2: max >= 12;
    * expert 2 twice: 10, 6, 1, 1 -> max >= 11.
    So the least max GPU load is 10 (mean 9: balancedness 0.9 at best).
    """
    result = min_max_load(np.array([10, 6, 2]), gpus=2, slots_per_gpu=2, time_limit_s=10)
    assert result.optimal and result.value == 10 and result.bound == 10
    # The trivial bound (mean 9) is strictly weaker here.
    assert trivial_lower_bound(np.array([10, 6, 2]), gpus=2, replicas=4) == 9


def _enumerate(load: list[int], gpus: int, slots: int) -> float:
    """Least max GPU load by brute force over replica counts and their spread over GPUs."""
    experts, replicas = len(load), gpus * slots
    best = float("inf")
    for counts in itertools.product(range(replicas + 1), repeat=experts):
        if sum(counts) != replicas or any(c == 0 for c, x in zip(counts, load, strict=True) if x > 0):
            continue
        # Each expert's c replicas spread over GPUs: compositions of c into `gpus` parts.
        spreads = [[s for s in itertools.product(range(c + 1), repeat=gpus) if sum(s) == c] for c in counts]
        for choice in itertools.product(*spreads):
            if any(sum(choice[e][g] for e in range(experts)) != slots for g in range(gpus)):
                continue
            peak = max(sum(load[e] / counts[e] * choice[e][g] for e in range(experts) if counts[e])
                       for g in range(gpus))
            best = min(best, peak)
    return best


def test_cp_sat_matches_enumeration_on_random_small_cases() -> None:
    rng = np.random.default_rng(7)
    for _ in range(12):
        experts = int(rng.integers(2, 5))
        gpus, slots = int(rng.integers(2, 4)), int(rng.integers(1, 3))
        if gpus * slots < experts:
            slots = -(-experts // gpus)
        load = rng.integers(0, 30, size=experts)
        load[0] = max(load[0], 1)
        result = min_max_load(load, gpus, slots, time_limit_s=20)
        expected = _enumerate(load.tolist(), gpus, slots)
        assert result.optimal, (load, gpus, slots, result)
        assert result.value == pytest.approx(expected, rel=1e-12), (load, gpus, slots)


def test_greedy_placement_is_feasible_and_bounds_hold() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        load = rng.integers(0, 1000, size=12) * (rng.random(12) < 0.9)
        load[0] += 1
        greedy = greedy_placement(load, gpus=4, slots_per_gpu=4)
        used = np.zeros(4, dtype=int)
        gpu_load = np.zeros(4)
        for e in range(12):
            assert len(greedy.gpu_of[e]) == greedy.counts[e] and (greedy.counts[e] >= 1 or load[e] == 0)
            for g in greedy.gpu_of[e]:
                used[g] += 1
                gpu_load[g] += load[e] / greedy.counts[e]
        assert (used <= 4).all() and gpu_load.max() == pytest.approx(greedy.max_load)
        assert trivial_lower_bound(load, 4, 16) <= greedy.max_load + 1e-9


def test_compute_reference_on_a_proven_workload() -> None:
    config = EpConfig("hand", experts=3, replicas=4, groups=1, nodes=1, gpus=2)
    windows = np.array([[[1, 1, 1]], [[10, 6, 2]], [[4, 4, 0]]])
    record = compute_reference("hand", config, windows, time_limit_s=10)
    # Windows 1 and 2 are judged: (9 + 4) / (10 + 4); (4, 4, 0) splits perfectly.
    assert record.kind == "optimal" and record.details["proven"] == record.details["pairs"] == 2
    assert record.value == pytest.approx(13 / 14) and record.bound == pytest.approx(13 / 14)
    ref = record.to_reference()
    assert ref.kind == "optimal" and "2/2 layer-windows proven" in ref.source


def test_shipped_references_cover_the_small_workloads_and_are_consistent() -> None:
    shipped = read_file(PROBLEM_DIR / "data" / "references.json")[1]
    for split in SPLITS:
        for workload in split_workloads(split, SECRET):
            if not ilp_tractable(workload.config):
                continue
            record = shipped.get(content_hash(workload.config, workload.windows))
            assert record is not None, f"{workload.name} has no shipped reference"
            assert record.name == workload.name
            assert 0 < record.value <= record.bound <= 1.0
            assert record.kind in ("optimal", "best_known") and record.details["pairs"] == (
                (workload.windows.shape[0] - 1) * workload.windows.shape[1])
    # Recheck one record against an independent heuristic: the shipped oracle is a placement at
    # least as good as greedy replication + LPT on every judged window.
    workload = next(w for w in split_workloads("quick", SECRET) if ilp_tractable(w.config))
    config = workload.config
    mean_sum = greedy_sum = trivial_sum = 0.0
    for window in workload.windows[1:]:
        for layer in window:
            mean_sum += layer.sum() / config.gpus
            greedy_sum += greedy_placement(layer, config.gpus, config.slots_per_gpu).max_load
            trivial_sum += trivial_lower_bound(layer, config.gpus, config.replicas)
    record = shipped[content_hash(config, workload.windows)]
    assert mean_sum / greedy_sum <= record.value + 1e-9
    assert record.bound <= mean_sum / trivial_sum + 1e-9


def test_missing_shipped_reference_is_a_one_line_error(tmp_path: Path) -> None:
    shutil.copy(PROBLEM_DIR / "problem.toml", tmp_path / "problem.toml")
    (tmp_path / "data").mkdir()
    shutil.copy(PROBLEM_DIR / "data" / "seeds.json", tmp_path / "data" / "seeds.json")  # references.json missing
    with pytest.raises(UserError) as info:
        MoeVerifier(tmp_path, {}).instances("quick")
    message = str(info.value)
    assert "no reference for instance quick-small64-0" in message
    assert f"compute it with `evolve references {tmp_path} --split quick`" in message
    assert "\n" not in message
