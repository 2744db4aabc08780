"""SMTT references: exact DP, CP-SAT models, dominance, local search (the store: test_references.py).

Real OR-Tools solves, kept small: the whole file runs in well under 30 s.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evolve.evaluators.smtt import cpsat, references
from evolve.evaluators.smtt.exact import DP_MAX_N, dp_optimum, matching_lower_bound
from evolve.evaluators.smtt.generator import generate
from evolve.evaluators.smtt.local_search import (
    _insertion_deltas,
    insertion_descent,
    iterated_descent,
    warm_start,
)
from evolve.evaluators.smtt.objective import total_tardiness
from evolve.evaluators.smtt.references import Budget
from evolve.references import StoredReference


def brute_force(p: np.ndarray, d: np.ndarray) -> int:
    return min(total_tardiness(p, d, list(s)) for s in itertools.permutations(range(len(p))))


def random_instances(count: int, sizes: tuple[int, int], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    grid = [(2, 2), (6, 2), (8, 4), (4, 6), (10, 10), (6, 10)]
    return [generate(int(rng.integers(*sizes, endpoint=True)), *grid[k % len(grid)], rng) for k in range(count)]


# -- exact DP ---------------------------------------------------------------------------------


def test_dp_matches_brute_force() -> None:
    cases = random_instances(30, (1, 8), seed=1)
    # Ties and degenerate data: equal jobs, all due at 0, all early.
    cases += [(np.array([5] * 6), np.array([3, 3, 3, 9, 9, 0])), (np.array([2, 7, 1]), np.zeros(3, int)),
              (np.array([1, 2, 3]), np.array([100, 100, 100])), (np.array([0, 4, 0, 2]), np.array([0, 1, 0, 3]))]
    for p, d in cases:
        value, seq = dp_optimum(p, d)
        assert value == brute_force(p, d)
        assert sorted(seq) == list(range(len(p))) and total_tardiness(p, d, seq) == value


def test_dp_empty_and_limit() -> None:
    assert dp_optimum(np.zeros(0, int), np.zeros(0, int)) == (0, [])
    with pytest.raises(ValueError, match=f"n <= {DP_MAX_N}"):
        dp_optimum(np.ones(DP_MAX_N + 1, int), np.ones(DP_MAX_N + 1, int))


def test_matching_bound_is_a_lower_bound() -> None:
    tight = 0
    for p, d in random_instances(40, (1, 7), seed=10):
        bound, optimum = matching_lower_bound(p, d), brute_force(p, d)
        assert 0 <= bound <= optimum
        tight += bound == optimum
    assert tight >= 5  # and not trivially zero


def test_refresh_bound_only_raises() -> None:
    p, d = np.array([5, 5, 5]), np.array([0, 0, 0])  # bound = 5 + 10 + 15 = optimum
    rec = StoredReference("x", 30, "best_known", 3, "ils", 1.0, [0, 1, 2], {"n": 3})
    fresh = references.refresh_bound(rec, p, d)
    assert fresh.bound == 30 and fresh.kind == "optimal" and fresh.value == 30
    better = StoredReference("x", 30, "optimal", 30, "dp", 1.0, [0, 1, 2], {"n": 3})
    assert references.refresh_bound(better, p, d) is better


# -- dominance ---------------------------------------------------------------------------------


def test_dominance_pairs_keep_an_optimum() -> None:
    for p, d in random_instances(25, (3, 7), seed=2) + [(np.array([3, 3, 3, 1]), np.array([2, 2, 5, 2]))]:
        pairs = cpsat.dominance_pairs(p, d)
        best_constrained = min(
            total_tardiness(p, d, list(s))
            for s in itertools.permutations(range(len(p)))
            if all(s.index(i) < s.index(j) for i, j in pairs)
        )
        assert best_constrained == brute_force(p, d)


def test_respect_dominance_never_worsens() -> None:
    rng = np.random.default_rng(3)
    for p, d in random_instances(20, (5, 40), seed=3):
        seq = [int(j) for j in rng.permutation(len(p))]
        fixed = cpsat.respect_dominance(p, d, seq)
        where = {job: k for k, job in enumerate(fixed)}
        assert sorted(fixed) == list(range(len(p)))
        assert all(where[i] < where[j] for i, j in cpsat.dominance_pairs(p, d))
        assert total_tardiness(p, d, fixed) <= total_tardiness(p, d, seq)


# -- CP-SAT ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [cpsat.build_positional, cpsat.build_disjunctive])
def test_cpsat_proves_the_dp_optimum(build) -> None:
    for p, d in random_instances(4, (10, 12), seed=4):
        optimum, _ = dp_optimum(p, d)
        model = build(p, d)
        _, warm, _ = warm_start(p, d)
        cpsat.add_hint(model, p, d, cpsat.respect_dominance(p, d, warm))
        solver, status = cpsat.solve(model, time_limit_s=20, workers=1)
        outcome = cpsat.report(model, solver, status, p, d)
        assert outcome.status == "OPTIMAL" and outcome.proven_optimal
        assert outcome.objective == optimum == outcome.bound
        assert total_tardiness(p, d, outcome.sequence) == optimum


def test_cpsat_time_limited_reports_bound_and_best_known() -> None:
    p, d = random_instances(1, (200, 200), seed=5)[0]
    model = cpsat.build_disjunctive(p, d)
    _, warm, _ = warm_start(p, d, budget_s=0.5)
    cpsat.add_hint(model, p, d, cpsat.respect_dominance(p, d, warm))
    # Deterministic time, as the pipeline uses: a 0.5 s wall limit found nothing at load 11.
    solver, status = cpsat.solve(model, time_limit_s=60, workers=1, deterministic_time=0.25)
    outcome = cpsat.report(model, solver, status, p, d)
    assert outcome.objective is not None and 0 <= outcome.bound <= outcome.objective
    assert outcome.objective <= total_tardiness(p, d, warm)


def test_compute_reference_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    # Push n = 12 past the DP so the local search + CP-SAT path runs, and
    # check it against the DP anyway.
    monkeypatch.setattr(references, "DP_MAX_N", 8)
    budget = Budget(time_limit_s=10, workers=1, ils_share=0.05)
    rng = np.random.default_rng(6)
    for model, max_positional in (("positional", 60), ("disjunctive", 5)):
        monkeypatch.setattr(cpsat, "POSITIONAL_MAX_N", max_positional)
        sources = []
        for k, (tf, rdd) in enumerate([(6, 2), (4, 4), (8, 6)]):
            p, d = generate(12, tf, rdd, rng)
            rec = references.compute_reference(f"i{k}", p, d, budget)
            assert rec.kind == "optimal" and rec.value == dp_optimum(p, d)[0] == rec.bound
            assert total_tardiness(p, d, rec.witness) == rec.value
            sources.append(rec.source)
        assert any(f"cp-sat {model}" in s for s in sources), sources
    rec = references.compute_reference("dp", *random_instances(1, (6, 6), seed=9)[0], budget)
    assert rec.source == "dp"


# -- local search ----------------------------------------------------------------------------------


def test_insertion_deltas_match_recomputation() -> None:
    rng = np.random.default_rng(7)
    for p, d in random_instances(15, (2, 10), seed=7):
        seq = rng.permutation(len(p))
        ps, ds = p[seq], d[seq]
        c = np.cumsum(ps)
        tard = np.maximum(c - ds, 0)
        base = int(tard.sum())
        for i in range(len(p)):
            delta = _insertion_deltas(c, ps, ds, tard, i)
            for k in range(len(p)):
                moved = np.insert(np.delete(seq, i), k, seq[i])
                assert total_tardiness(p, d, moved) - base == delta[k]


def test_local_search_improves_and_stays_a_permutation() -> None:
    for p, d in random_instances(5, (30, 60), seed=8):
        start = list(range(len(p)))
        polished = insertion_descent(p, d, start)
        iterated = iterated_descent(p, d, polished, budget_s=0.2, seed=1)
        assert sorted(iterated) == start
        assert total_tardiness(p, d, iterated) <= total_tardiness(p, d, polished) <= total_tardiness(p, d, start)


def test_cpsat_on_deterministic_time_repeats_exactly() -> None:
    # What makes shipped references independent of the machine's load: one worker and a
    # deterministic-time limit give the same solution and bound on every run.
    p, d = random_instances(1, (120, 120), seed=12)[0]
    _, warm, _ = warm_start(p, d, budget_s=0.2)
    outcomes = []
    for _ in range(2):
        model = cpsat.build_disjunctive(p, d)
        cpsat.add_hint(model, p, d, cpsat.respect_dominance(p, d, warm))
        solver, status = cpsat.solve(model, time_limit_s=120, workers=1, deterministic_time=0.3)
        assert solver.deterministic_time <= 0.3 + 0.05
        outcomes.append(cpsat.report(model, solver, status, p, d))
    (a, b) = outcomes
    assert (a.objective, a.bound, a.sequence) == (b.objective, b.bound, b.sequence)
