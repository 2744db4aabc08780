"""SMTT baselines: valid permutations, hand-computed cases, quality ordering."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from evolve.evaluators.smtt.exact import dp_optimum
from evolve.evaluators.smtt.generator import generate
from evolve.evaluators.smtt.local_search import BASELINE_NAMES, BASELINES_DIR, load_baseline
from evolve.evaluators.smtt.objective import total_tardiness


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_returns_a_permutation_of_python_ints(name: str) -> None:
    schedule = load_baseline(name)
    rng = np.random.default_rng(0)
    cases = [([5], [0]), ([2, 2, 2], [1, 1, 1]), ([3, 1, 2], [0, 0, 0])]
    for n in (2, 20, 120):
        p, d = generate(n, 6, 4, rng)
        cases.append((p, d))
    for p, d in cases:
        seq = schedule(np.asarray(p), np.asarray(d))
        assert isinstance(seq, list) and all(type(j) is int for j in seq)
        assert sorted(seq) == list(range(len(p)))
        assert schedule(list(p), list(d)) == seq  # lists work too


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_standalone_numpy_and_stdlib_only(name: str) -> None:
    tree = ast.parse(Path(BASELINES_DIR / f"{name}.py").read_text())
    assert ast.get_docstring(tree)
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"numpy", "math", "itertools", "heapq", "functools"}


def test_edd_as_published_keeps_input_order_on_ties() -> None:
    edd = load_baseline("edd")
    assert edd(np.array([3, 2, 1]), np.array([4, 2, 2])) == [1, 2, 0]  # tie d=2: input order, not p
    assert edd(np.array([1, 1]), np.array([5, 5])) == [0, 1]
    rng = np.random.default_rng(5)
    for n in (5, 50, 300):  # repeated due dates: a stable sort of d, whatever p says
        d = rng.integers(-20, 20, size=n)
        p = rng.integers(1, 100, size=n)
        assert edd(p, d) == np.argsort(d, kind="stable").tolist()
        assert edd(p, d) == sorted(range(n), key=lambda j: (d[j], j))


def test_edd_spt_ties_breaks_ties_by_processing_time() -> None:
    variant = load_baseline("edd_spt_ties")
    assert variant(np.array([3, 2, 1]), np.array([4, 2, 2])) == [2, 1, 0]  # tie d=2: shorter first
    assert variant(np.array([1, 1]), np.array([5, 5])) == [0, 1]  # full tie: index


def test_spt_by_hand() -> None:
    spt = load_baseline("spt")
    assert spt(np.array([3, 1, 1, 2]), np.array([0, 5, 3, 1])) == [2, 1, 3, 0]  # tie p=1: earlier due


def test_mdd_by_hand() -> None:
    mdd = load_baseline("mdd")
    # t=0: max(d, t+p) = (6, 5) -> job 1; EDD would start with job 0.
    p, d = np.array([6, 1]), np.array([4, 5])
    assert mdd(p, d) == [1, 0] and total_tardiness(p, d, [1, 0]) == 3 < total_tardiness(p, d, [0, 1])
    # t=0: (5, 3, 6) -> job 1; t=1: (5, 6) -> job 0; then job 2.
    assert mdd(np.array([4, 1, 3]), np.array([5, 3, 6])) == [1, 0, 2]
    # t=0: (2, 2, 1) -> job 2; t=1: (3, 3) tie, same d and p -> index.
    assert mdd(np.array([2, 2, 1]), np.array([1, 1, 1])) == [2, 0, 1]


def test_eddc_by_hand() -> None:
    # SPT gives 0,1,2; job 1 walks past job 0 (d 5 > 1 = time before job 1);
    # job 2 walks past job 0 (5 > 3) but not past job 1 (1 <= 2).
    assert load_baseline("eddc")(np.array([1, 2, 3]), np.array([5, 1, 0])) == [1, 2, 0]


def test_mddc_weighs_long_jobs_back() -> None:
    # At t=0 MDD ties (both max(d, p) = 10) and takes the earlier due date;
    # MDDC's surcharges on the long job make it take the short one first.
    p, d = np.array([10, 2]), np.array([9, 10])
    assert load_baseline("mdd")(p, d) == [0, 1]
    assert load_baseline("mddc")(p, d) == [1, 0]


def test_dispatch_rules_beat_edd_on_dp_solved_instances() -> None:
    rng = np.random.default_rng(11)
    instances = [generate(20, tf, rdd, rng) for tf, rdd in [(6, 2), (8, 2), (6, 4), (8, 4), (10, 2), (4, 2)]]
    gaps: dict[str, list[float]] = {name: [] for name in ("edd", "mdd", "mddc", "mddc_augmented")}
    for p, d in instances:
        optimum, _ = dp_optimum(p, d)
        assert optimum > 0
        for name in gaps:
            value = total_tardiness(p, d, load_baseline(name)(p, d))
            assert value >= optimum
            gaps[name].append((value - optimum) / optimum)
    mean = {name: float(np.mean(g)) for name, g in gaps.items()}
    assert mean["edd"] > 0.15
    for name in ("mdd", "mddc", "mddc_augmented"):
        assert mean[name] < 0.2 * mean["edd"], mean
    assert mean["mddc_augmented"] <= mean["mddc"]


def test_augmented_mddc_moves_the_job_whose_move_to_the_end_lowers_tardiness_most() -> None:
    """Both tracks' repair (its tardiness saved per late job, for speed) against the definition:
    each earlier job moved to the end literally, the partial sequence's tardiness recomputed; ties
    in the saving go to the earliest position, as np.argmin's."""
    import importlib.util

    def literal(seq: list[int], p: np.ndarray, d: np.ndarray) -> int | None:
        def tardiness(order: list[int]) -> float:
            return float(np.maximum(np.cumsum(p[order]) - d[order], 0).sum())

        base = tardiness(seq)
        deltas = [tardiness(seq[:i] + seq[i + 1:] + [seq[i]]) - base for i in range(len(seq) - 1)] + [0.0]
        i = int(np.argmin(deltas))
        return i if deltas[i] < -1e-9 else None

    root = Path(__file__).resolve().parents[1] / "problems"
    moves = []
    for track, name in (("smtt", "_best_move_to_end"), ("smtt_rule", "_move_to_end")):
        spec = importlib.util.spec_from_file_location(f"aug_{track}", root / track / "baselines" / "mddc_augmented.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        moves.append((track, getattr(module, name)))
    rng = np.random.default_rng(5)
    checked = moved = 0
    for n in (2, 3, 8, 20, 45):
        for _ in range(12):
            p, d = generate(n, 6, 4, rng)
            p, d = p.astype(float), d.astype(float)
            for m in range(2, n + 1):
                seq = [int(j) for j in rng.permutation(n)[:m]]
                want = literal(seq, p, d)
                for track, move in moves:
                    if track == "smtt":
                        assert move(np.asarray(seq), p, d) == want
                    else:
                        got = list(seq)
                        move(got, p, d)
                        assert got == (seq if want is None else seq[:want] + seq[want + 1:] + [seq[want]])
                checked += 1
                moved += want is not None
    assert moved > checked // 4 and moved < checked  # both outcomes were checked, many times
