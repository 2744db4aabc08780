"""MoE verifier: options, the validity checks (one broken placement per check), balance, timing, score."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.moe import MoeVerifier
from evolve.evaluators.moe.candidate_side import pack
from evolve.evaluators.moe.configs import V3, EpConfig
from evolve.evaluators.moe.generator import (
    SPLITS,
    TEST_DRIFT,
    TRAIN_DRIFT,
    generate,
    split_workloads,
)
from evolve.evaluators.moe.harness import local_call, run_workload, unpack
from evolve.evaluators.moe.options import MoeOptions
from evolve.evaluators.moe.placement import check_placement, loads, parse_placement
from evolve.evaluators.moe.scoring import combine, runtime_budget_ms
from evolve.evaluators.secret_seeds import load_secret
from evolve.options import read_options
from evolve.verifier import Instance, Reference, Verifier

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "moe"
SECRET = load_secret(PROBLEM_DIR, "moe")
# 4 experts, 6 slots on 2 GPUs (3 per GPU), 2 groups on 1 node; 2 layers, 2 windows.
SMALL = EpConfig("t", experts=4, replicas=6, groups=2, nodes=1, gpus=2)
WINDOWS = np.array([[[8, 4, 2, 2], [1, 1, 1, 9]],
                    [[6, 6, 3, 1], [0, 2, 2, 8]]], dtype=np.int64)


@pytest.fixture(scope="module")
def verifier() -> MoeVerifier:
    return MoeVerifier(PROBLEM_DIR, {"timing_repeats": 2})


def make_instance(windows: np.ndarray = WINDOWS, config: EpConfig = SMALL, repeats: int = 2) -> Instance:
    data = {"windows": windows, "experts": config.experts, "replicas": config.replicas,
            "groups": config.groups, "nodes": config.nodes, "gpus": config.gpus,
            "warmup": 0, "repeats": repeats}
    return Instance("t", config.name, data, Reference(1.0, "bound", "test", 1.0))


def triple(phy2log: list[list[int]], experts: int) -> dict[str, Any]:
    """logcnt and log2phy derived from phy2log by plain loops (independent of the verifier)."""
    logcnt = [[row.count(e) for e in range(experts)] for row in phy2log]
    width = max(max(r) for r in logcnt)
    log2phy = [[[s for s, x in enumerate(row) if x == e] + [-1] * (width - row.count(e)) for e in range(experts)]
               for row in phy2log]
    return {"phy2log": phy2log, "log2phy": log2phy, "logcnt": logcnt}


GOOD = [[0, 2, 3, 0, 1, 1], [3, 0, 1, 3, 2, 3]]  # layer 0: GPU0 = {0,2,3}, GPU1 = {0,1,1}


def solution(placement: Any, calls: int = 3) -> dict[str, Any]:
    return {"placements": [placement], "wall_s": [0.002] * calls, "cpu_s": [0.001] * calls}


def test_protocol_and_direction(verifier: MoeVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.direction == "maximize"


# -- options ----------------------------------------------------------------------------------


def test_options_defaults_and_overrides() -> None:
    opts = read_options(MoeOptions, {"runtime_weight": 2, "timing_repeats": 3, "runtime_clock": "wall"})
    assert opts.runtime_weight == 2.0 and isinstance(opts.runtime_weight, float)
    assert opts.timing_repeats == 3 and opts.runtime_clock == "wall" and opts.balance_weight == 100.0


@pytest.mark.parametrize(("options", "message"), [
    ({"x": 1}, "[verifier.options] x: unknown key (expected one of balance_weight, "),
    ({"runtime_weight": "1"}, "[verifier.options] runtime_weight: Input should be a valid number (got '1')"),
    ({"timing_repeats": 2.5}, "[verifier.options] timing_repeats: Input should be a valid integer"),
    ({"warmup_calls": True}, "[verifier.options] warmup_calls: Input should be a valid integer"),
    ({"runtime_scale_ms": 0}, "[verifier.options] runtime_scale_ms: Input should be greater than or equal to 0.000001 (got 0)"),
    ({"runtime_weight": math.nan}, "[verifier.options] runtime_weight: Input should be a finite number"),
    ({"runtime_clock": "gpu"}, "[verifier.options] runtime_clock: Input should be 'cpu' or 'wall'"),
    ({"trace_bound": "exact"}, "[verifier.options] trace_bound: Input should be 'trivial' or 'ilp'"),
])
def test_bad_options_name_the_key(options: dict, message: str) -> None:
    with pytest.raises(UserError) as info:
        MoeVerifier(PROBLEM_DIR, options)
    assert message in str(info.value)


# -- generator and splits --------------------------------------------------------------------


def test_generator_is_reproducible_and_realistic() -> None:
    a = generate(V3, 6, 3, TRAIN_DRIFT, np.random.default_rng(5))
    b = generate(V3, 6, 3, TRAIN_DRIFT, np.random.default_rng(5))
    assert a.dtype == np.int64 and a.shape == (3, 6, 256) and np.array_equal(a, b)
    # Each window routes tokens x top_k assignments per layer, the same in every layer.
    totals = a.sum(axis=2)
    assert (totals == totals[:, :1]).all() and (totals % TRAIN_DRIFT.top_k == 0).all()
    low, high = TRAIN_DRIFT.tokens
    assert (totals >= low * TRAIN_DRIFT.top_k).all() and (totals <= high * TRAIN_DRIFT.top_k).all()
    skew = a.max(axis=2) / a.mean(axis=2)  # a few hot experts, heavy tail
    assert 3 < skew.mean() < 20
    # Consecutive windows are correlated, but not identical.
    logs = np.log1p(a.astype(float))
    corr = np.corrcoef(logs[0].ravel(), logs[1].ravel())[0, 1]
    assert 0.7 < corr < 0.999


def test_splits_are_disjoint_and_test_drifts_differently() -> None:
    assert TRAIN_DRIFT != TEST_DRIFT
    seen: dict[bytes, str] = {}
    for split in SPLITS:
        for w in split_workloads(split, SECRET):
            key = w.windows.tobytes()
            assert key not in seen, f"{w.name} repeats {seen.get(key)}"
            seen[key] = w.name
    names = [w.name for w in split_workloads("test", SECRET)]
    assert len(names) == len(set(names)) and {"tiny16", "small64", "v3", "qwen"} == {n.split("-")[1] for n in names}


def test_instances_carry_references_and_options(verifier: MoeVerifier) -> None:
    for inst in verifier.instances("quick"):
        assert inst.data["repeats"] == 2 and inst.data["warmup"] == 1
        ref = inst.reference
        assert ref.value is not None and 0 < ref.value <= 1 and ref.bound is not None and ref.bound >= ref.value
        assert ref.kind in ("optimal", "best_known", "bound") and ref.source
        if inst.group == "v3":
            assert ref.kind == "bound" and ref.source.startswith("trivial")
        else:
            assert "cp-sat" in ref.source


def test_unknown_split(verifier: MoeVerifier) -> None:
    with pytest.raises(UserError, match="unknown split 'dev'"):
        verifier.instances("dev")


# -- validity checks: one deliberately broken placement per check ---------------------------


def test_a_valid_placement_scores_by_hand(verifier: MoeVerifier) -> None:
    result = verifier.score(make_instance(), solution(triple(GOOD, 4)))
    assert result.feasible, result.error
    # Window 1, layer 0: loads 6,6,3,1 with counts 2,2,1,1 -> per replica 3,3,3,1;
    # GPU0 = 3 + 3 + 1 = 7, GPU1 = 3 + 3 + 3 = 9.  Layer 1: loads 0,2,2,8 with
    # counts 1,1,1,3 -> 0,2,2,8/3; GPU0 = 8/3 + 0 + 2 = 14/3, GPU1 = 8/3 + 2 + 8/3 = 22/3.
    mean = 8 + 6
    peak = 9 + 22 / 3
    assert result.objective == pytest.approx(mean / peak)
    assert result.extra["balancedness_layer_min"] == pytest.approx(6 / (22 / 3))
    assert result.extra["runtime_ms"] == pytest.approx(1.0)  # process CPU time by default
    assert result.extra["wall_ms"] == pytest.approx(2.0)
    assert result.gap == pytest.approx(1 - mean / peak)


def _broken(kind: str) -> Any:
    t = triple(GOOD, 4)
    if kind == "shapes":
        t["phy2log"] = [row[:5] for row in GOOD]
    elif kind == "slot validity":
        t["phy2log"] = [[0, 2, 3, 0, 1, 4], GOOD[1]]
    elif kind == "logcnt sum":
        t["logcnt"] = [[2, 2, 1, 2], t["logcnt"][1]]
    elif kind == "logcnt match":
        t["logcnt"] = [[2, 1, 2, 1], t["logcnt"][1]]
    elif kind == "log2phy wrong slot":
        t["log2phy"][0][1] = [5, 0, -1]  # expert 1 is in slots 4 and 5; slot 0 holds expert 0
    elif kind == "log2phy duplicate":
        t["log2phy"][0][1] = [4, 4, -1]
    elif kind == "log2phy padding":
        t["log2phy"][0][2] = [1, 3, -1]  # expert 2 has one replica: the rest must be -1
    elif kind == "log2phy too narrow":
        t["log2phy"] = [[row[:1] for row in layer] for layer in t["log2phy"]]
    elif kind == "coverage":
        t = triple([[0, 0, 1, 0, 1, 1], GOOD[1]], 4)  # experts 2 and 3 lose their replicas
    return t


@pytest.mark.parametrize(("kind", "reason"), [
    ("shapes", "window 0: shapes: phy2log has shape [2, 5], expected [2, 6]"),
    ("slot validity", "window 0: slot validity: layer 0 slot 5 holds expert 4, expected 0..3"),
    ("logcnt sum", "window 0: logcnt: layer 0 counts sum to 7, expected 6"),
    ("logcnt match", "window 0: logcnt: layer 0 expert 1 has logcnt 1 but 2 slots in phy2log"),
    ("log2phy wrong slot", "window 0: log2phy: layer 0 lists slot 0 for expert 1, but phy2log puts expert 0"),
    ("log2phy duplicate", "window 0: log2phy: layer 0 lists slot 4 2 times"),
    ("log2phy padding", "window 0: log2phy: layer 0 expert 2 entry 1 is 3, expected -1"),
    ("log2phy too narrow", "window 0: log2phy: has room for 1 replicas but layer 0 expert 0 has 2"),
    ("coverage", "window 0: coverage: layer 0 expert 2 has no replica (every expert keeps at least one; "
                 "load 3 in the next window)"),
])
def test_each_check_names_itself(verifier: MoeVerifier, kind: str, reason: str) -> None:
    result = verifier.score(make_instance(), solution(_broken(kind)))
    assert not result.feasible
    assert result.error is not None and result.error.startswith(reason), result.error


def test_an_expert_idle_in_both_windows_still_needs_a_replica(verifier: MoeVerifier) -> None:
    """The gamble the old coverage check allowed: expert 3 of layer 0 had no load in the last
    window nor in the next, so its slot went to the hottest expert (three replicas of expert
    0).  That placement balanced better (scored as feasible) though the contract says every
    expert keeps a replica; now it is infeasible."""
    windows = np.array([[[9, 3, 3, 0], [1, 1, 1, 9]],
                        [[9, 3, 3, 0], [0, 2, 2, 8]]], dtype=np.int64)
    gamble = triple([[0, 1, 0, 2, 0, 1], GOOD[1]], 4)
    result = verifier.score(make_instance(windows), solution(gamble))
    assert not result.feasible
    assert result.error is not None and result.error.startswith(
        "window 0: coverage: layer 0 expert 3 has no replica (every expert keeps at least one; "
        "load 0 in the next window)"), result.error


@pytest.mark.parametrize(("sol", "reason"), [
    (None, "harness: no placements"),
    ("x", "harness: no placements"),
    ({"error": "raised ValueError: no (line 3)"}, "raised ValueError: no (line 3)"),
    ({"placements": [{"error": "shapes: logcnt: expected integers, got bool values"}]},
     "window 0: shapes: logcnt: expected integers, got bool values"),
    ({"placements": []}, "harness: 0 placements for 1 windows"),
    ({"placements": [{"returned": "NoneType"}]}, "window 0: shapes: rebalance_experts returned a NoneType"),
    ({"placements": [[1, 2]]}, "window 0: shapes: a placement is (phy2log, log2phy, logcnt)"),
    ({"placements": [{"phy2log": 1}]}, "window 0: shapes: placement has no 'log2phy'"),
    ({"placements": [[[[1, 2], [3]], [], []]]}, "window 0: shapes: phy2log: not a rectangular"),
    ({"placements": [[[[0.5] * 6] * 2, [], []]]}, "window 0: shapes: phy2log: expected integers, got float64"),
    ({"placements": [[[[True] * 6] * 2, [], []]]}, "window 0: shapes: phy2log: expected integers, got bool"),
    ({"placements": [[[[2**70] * 6] * 2, [], []]]}, "window 0: shapes: phy2log: not a rectangular"),
    ({"placements": [[{"dtype": "float64"}, [], []]]}, "window 0: shapes: phy2log: expected integers, got float64"),
    ({"placements": [[[0] * 6, [], []]]}, "window 0: shapes: phy2log: expected 2 dimensions, got 1"),
    ({"placements": [[{"shape": [10**7] * 2, "values": [1]}, [], []]]},
     "window 0: shapes: phy2log: shape [10000000, 10000000] needs 100000000000000 values, got 1"),
    ({"placements": [[{"shape": [2, -6], "values": []}, [], []]]},
     "window 0: shapes: phy2log: expected a 2-d array as {'shape'"),
    ({"placements": [[{"shape": [2, 2], "values": [1, 2]}, [], []]]},
     "window 0: shapes: phy2log: shape [2, 2] needs 4 values, got 2"),
    ({"placements": [[{"shape": [1, 2], "values": [1, 2.5]}, [], []]]},
     "window 0: shapes: phy2log.values: expected integers, got float64"),
])
def test_hostile_solutions_fail_without_raising(verifier: MoeVerifier, sol: Any, reason: str) -> None:
    result = verifier.score(make_instance(), sol)
    assert not result.feasible and result.error is not None and result.error.startswith(reason), result.error


# -- the harness: calls, fresh inputs, replies from the sandbox ------------------------------------


def test_harness_calls_each_window_with_fresh_inputs() -> None:
    seen: list[np.ndarray] = []

    def heuristic(weight: np.ndarray, *args: int) -> Any:
        seen.append(weight.copy())
        weight[:] = 0  # mutating the input must not leak into later calls
        t = triple(GOOD, 4)
        return np.array(t["phy2log"]), np.array(t["log2phy"]), np.array(t["logcnt"])

    windows = WINDOWS * 1000
    out = run_workload(local_call(heuristic), windows, SMALL.args(), warmup=1, repeats=3)
    assert len(seen) == 1 + 1 + 3 and len(out["placements"]) == 1
    assert np.array_equal(seen[1], windows[0])  # the scored call sees the real window
    for variant in seen[2:]:  # repeats: perturbed copies
        assert variant.shape == windows[0].shape and not np.array_equal(variant, windows[0])
        assert np.allclose(variant, windows[0], rtol=0.3)
    # the warm-up: a made-up window of the same shape and per-layer totals (test_moe_attacks.py)
    assert seen[0].shape == windows[0].shape and seen[0].dtype == np.int64
    assert np.array_equal(seen[0].sum(axis=1), windows[0].sum(axis=1))
    assert len({v.tobytes() for v in seen}) == len(seen)
    assert len(out["cpu_s"]) == len(out["wall_s"]) == 4  # the timed calls only
    phy2log = out["placements"][0]["phy2log"]
    assert phy2log["shape"] == [2, 6] and phy2log["values"].tolist() == sum(GOOD, [])


def test_non_integer_outputs_come_back_as_a_note() -> None:
    def floats(weight: np.ndarray, *args: int) -> Any:
        return np.zeros((2, 6)), np.full((2, 4, 1), np.nan), np.zeros((2, 4))

    out = run_workload(local_call(floats), WINDOWS, SMALL.args(), warmup=0, repeats=0)
    assert out["placements"][0] == {"error": "shapes: phy2log: expected integers, got float64 values"}
    result = MoeVerifier(PROBLEM_DIR, {"timing_repeats": 0}).score(make_instance(repeats=0), out)
    assert result.error == "window 0: shapes: phy2log: expected integers, got float64 values"


def test_a_packed_reply_unpacks_to_the_triple() -> None:
    t = triple(GOOD, 4)
    packed = pack((np.array(t["phy2log"]), np.array(t["log2phy"]), np.array(t["logcnt"])))
    assert isinstance(packed, np.ndarray) and packed.dtype == np.int64
    record = unpack(packed)
    assert [record[k]["shape"] for k in ("phy2log", "log2phy", "logcnt")] == [[2, 6], [2, 4, 3], [2, 4]]
    placement, why = parse_placement(record, SMALL, 2)
    assert why is None and placement is not None and placement.log2phy.tolist() == t["log2phy"]


@pytest.mark.parametrize(("reply", "expected"), [
    (None, {"returned": "malformed reply"}),
    ("text", {"returned": "malformed reply"}),
    (np.zeros(5), {"returned": "malformed reply"}),  # float64, not a packed int64 array
    (np.array([], np.int64), {"returned": "malformed reply"}),
    (np.array([4, 2, 1, 1], np.int64), {"returned": "malformed reply"}),  # not three arrays
    (np.array([3, 2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 7, 7], np.int64), {"returned": "malformed reply"}),  # short
    (np.array([3, 2, 2, -6], np.int64), {"returned": "malformed reply"}),  # negative dimension
    (np.array([3, 9, 1, 1], np.int64), {"returned": "malformed reply"}),  # absurd ndim
    (np.array([3, 1, 6, 3, 1, 1, 1, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0], np.int64),
     {"error": "shapes: phy2log: expected 2 dimensions, got 1 (shape [6])"}),
    ({"returned": "NoneType"}, {"returned": "NoneType"}),
    ({"log2phy": {"dtype": "bool"}}, {"error": "shapes: log2phy: expected integers, got bool values"}),
    ({"phy2log": {"dtype": "object"}}, {"error": "shapes: phy2log: not a rectangular 2-d array of integers "
                                                 "(ragged or mixed values)"}),
    ({"junk": 1}, {"returned": "malformed reply"}),
])
def test_hostile_replies_unpack_to_a_reason(reply: Any, expected: dict) -> None:
    assert unpack(reply) == expected


# -- balance: cross-check with an independent computation -------------------------------------------


def _naive_balancedness(phy2log: np.ndarray, load: np.ndarray, gpus: int) -> float:
    layers, replicas = phy2log.shape
    per_gpu = replicas // gpus
    mean_sum = max_sum = 0.0
    for layer in range(layers):
        counts: dict[int, int] = {}
        for e in phy2log[layer]:
            counts[int(e)] = counts.get(int(e), 0) + 1
        gpu_loads = []
        for g in range(gpus):
            total = 0.0
            for s in range(g * per_gpu, (g + 1) * per_gpu):
                e = int(phy2log[layer, s])
                total += float(load[layer, e]) / counts[e]
            gpu_loads.append(total)
        mean_sum += sum(gpu_loads) / gpus
        max_sum += max(gpu_loads)
    return mean_sum / max_sum


def test_balancedness_matches_a_naive_loop_on_v3() -> None:
    rng = np.random.default_rng(3)
    windows = generate(V3, 5, 2, TRAIN_DRIFT, rng)
    # A random valid placement: every expert once, then 32 random extra replicas, shuffled.
    phy2log = np.stack([rng.permutation(np.concatenate([np.arange(256), rng.integers(0, 256, 32)]))
                        for _ in range(5)])
    t = triple(phy2log.tolist(), 256)
    placement, why = parse_placement(t, V3, 5)
    assert placement is not None and why is None
    assert check_placement(placement, V3, windows[1]) is None
    balance = loads(placement, V3, windows[1])
    assert balance.balancedness == pytest.approx(_naive_balancedness(phy2log, windows[1], 32), rel=1e-12)
    assert balance.gpu_load.sum() == pytest.approx(windows[1].sum())  # every token lands on a GPU


# -- score -------------------------------------------------------------------------------------------


def test_combined_score_formula(verifier: MoeVerifier) -> None:
    inst = make_instance()
    r1 = verifier.score(inst, solution(triple(GOOD, 4)))
    r2 = verifier.score(inst, {**solution(triple(GOOD, 4)), "cpu_s": [0.030] * 3, "wall_s": [0.031] * 3})
    score, metrics = verifier.aggregate([r1, r2])
    b = r1.objective
    expected = 100 * b - (math.log2(1 + 1 / 10) + math.log2(1 + 30 / 10)) / 2
    assert score == pytest.approx(expected)
    assert metrics["balancedness"] == pytest.approx(b)
    assert metrics["gap_ratio_pct"] == pytest.approx(100 * (1 - b))  # maximising: reference minus objective
    heavy = combine([r1, r2], read_options(MoeOptions, {"runtime_weight": 10, "runtime_scale_ms": 1}))[0]
    assert heavy == pytest.approx(100 * b - 10 * (1 + math.log2(31)) / 2)


def test_runtime_within_the_budget_costs_nothing_and_each_doubling_over_it_a_point() -> None:
    # The problem's budget, max(10 ms, 5 us x layers x slots): 10 ms for this 2-layer, 6-slot instance.
    budgeted = MoeVerifier(PROBLEM_DIR, {"timing_repeats": 2, "runtime_budget_ms": 10,
                                         "runtime_budget_us_per_slot": 5})
    inst = make_instance()

    def charged(ms: float) -> Any:
        return budgeted.score(inst, {**solution(triple(GOOD, 4)), "cpu_s": [ms / 1e3] * 3})

    # The same work measured at 7.0 and 9.6 ms (a clean-room agent's two programs in one run):
    # without a budget 0.12 points apart, more than the balance gains the search ranks by.
    fast, slow = charged(7.0), charged(9.6)
    b = fast.objective
    assert fast.extra["runtime_budget_ms"] == slow.extra["runtime_budget_ms"] == 10.0
    assert budgeted.aggregate([fast])[0] == budgeted.aggregate([slow])[0] == pytest.approx(100 * b)
    unbudgeted = MoeVerifier(PROBLEM_DIR, {"timing_repeats": 2})
    apart = [unbudgeted.aggregate([unbudgeted.score(inst, {**solution(triple(GOOD, 4)), "cpu_s": [ms / 1e3] * 3})])[0]
             for ms in (7.0, 9.6)]
    assert apart[0] - apart[1] == pytest.approx(math.log2(1.96) - math.log2(1.7))
    # Over the budget: one point per doubling, and the slowest instance's share of its budget.
    score, metrics = budgeted.aggregate([charged(40.0), fast])
    assert score == pytest.approx(100 * b - 2 / 2) and metrics["runtime_budget_use_max"] == pytest.approx(4.0)
    # A balancer at 500 ms loses to one at 5 ms that balances as well: log2(500 / 10) points.
    assert budgeted.aggregate([charged(500.0)])[0] == pytest.approx(budgeted.aggregate([charged(5.0)])[0]
                                                                     - math.log2(50))
    # The budget grows with the deployment (V3: 58 layers x 288 slots); none without the options.
    assert runtime_budget_ms(58, 288, budgeted.options) == pytest.approx(83.52)
    assert runtime_budget_ms(58, 288, MoeOptions()) is None and "runtime_budget_ms" not in unbudgeted.score(
        inst, solution(triple(GOOD, 4))).extra


def test_each_judged_call_is_charged_against_the_budget_on_its_own() -> None:
    """The budget is per call.  A balancer that spends the budgets of all its judged calls in one
    of them (27 ms against 10, then 1 ms twice: a costly placement once, cached or cheaply
    adjusted after) had a judged mean of 9.7 ms and paid nothing until the twelfth red team; now
    that call pays its own doublings over the budget, shared over the three judged calls."""
    budgeted = MoeVerifier(PROBLEM_DIR, {"timing_repeats": 2, "runtime_budget_ms": 10,
                                         "runtime_budget_us_per_slot": 5})
    inst = make_instance(np.concatenate([WINDOWS, WINDOWS]))  # 4 windows: 3 judged calls
    record = {"placements": [triple(GOOD, 4)] * 3, "cpu_s": [0.027, 0.001, 0.001, 0.001, 0.001],
              "wall_s": [0.028, 0.002, 0.002, 0.002, 0.002]}
    banked = budgeted.score(inst, record)
    assert banked.feasible and banked.extra["runtime_ms"] == pytest.approx(29 / 3)  # under the budget
    assert banked.extra["runtime_call_max_ms"] == pytest.approx(27.0)
    score, metrics = budgeted.aggregate([banked])
    assert banked.extra["runtime_call_penalty"] == pytest.approx(math.log2(2.7) / 3)
    assert metrics["runtime_penalty"] == pytest.approx(math.log2(2.7) / 3)
    assert score == pytest.approx(100 * banked.objective - math.log2(2.7) / 3)
    # Spread evenly within the budget it costs nothing; the charged runtime stays a floor (the
    # mean of the calls' logarithms is below the logarithm of their mean when all are over).
    even = budgeted.score(inst, {**record, "cpu_s": [0.0097] * 3 + [0.001] * 2})
    assert budgeted.aggregate([even])[1]["runtime_penalty"] == 0.0
    over = budgeted.score(inst, {**record, "cpu_s": [0.160, 0.020, 0.020, 0.001, 0.001]})
    assert budgeted.aggregate([over])[1]["runtime_penalty"] == pytest.approx(math.log2(200 / 30))
    # Without a budget nothing changes: log2(1 + ms / 10) of the charged runtime.
    plain = MoeVerifier(PROBLEM_DIR, {"timing_repeats": 2})
    assert plain.aggregate([plain.score(inst, record)])[1]["runtime_penalty"] == pytest.approx(
        math.log2(1 + 29 / 3 / 10))


def test_the_budget_the_model_is_told_is_the_verifiers() -> None:
    """The contract, the score line and context.md state the budget per deployment; each figure
    is the one the problem's verifier options give for that deployment's layers and slots."""
    from evolve.problem import load_problem

    problem = load_problem("moe")
    options = problem.verifier.options
    rule = f"max({options.runtime_budget_ms:g} ms, {options.runtime_budget_us_per_slot:g} us x layers x num_replicas)"
    texts = {"contract": problem.spec.function.contract, "score": problem.spec.prompt.score,
             "context": problem.context}
    sizes = {i.group: (i.data["windows"].shape[1], i.data["replicas"]) for i in problem.instances("train")}
    assert sorted(sizes) == ["qwen", "small64", "tiny16", "v3"]
    for where, text in texts.items():
        flat = " ".join(text.split())
        assert rule in flat, where
        for group, (layers, replicas) in sizes.items():
            budget = runtime_budget_ms(layers, replicas, options)
            assert budget is not None
            figure = f"{budget:.1f}".removesuffix(".0") + " ms"
            assert figure in flat and group in flat, (where, group, figure)


def test_wall_clock_option(verifier: MoeVerifier) -> None:
    wall = MoeVerifier(PROBLEM_DIR, {"timing_repeats": 2, "runtime_clock": "wall"})
    result = wall.score(make_instance(), solution(triple(GOOD, 4)))
    assert result.extra["runtime_ms"] == pytest.approx(2.0)


def test_scoring_v3_is_fast_enough_to_not_matter(verifier: MoeVerifier) -> None:
    # Functional guard only (timed targets live in bench/moe_scoring.py).
    rng = np.random.default_rng(0)
    windows = generate(V3, 58, 2, TRAIN_DRIFT, rng)
    phy2log = np.stack([np.concatenate([np.arange(256), np.arange(32)]) for _ in range(58)])
    sol = solution(triple(phy2log.tolist(), 256), calls=1)
    result = verifier.score(make_instance(windows, V3, repeats=0), sol)
    assert result.feasible and 0 < (result.objective or 0) < 1
