"""SMTT verifier: splits, instance files, solve and the trusted score."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.smtt import SmttRuleVerifier, SmttVerifier
from evolve.evaluators.smtt.generator import GRID, RULE_TRAIN_REPLICATES, SIZES, split_instances
from evolve.evaluators.smtt.objective import content_hash, total_tardiness
from evolve.problem import load_problem
from evolve.verifier import Instance, Reference, Verifier

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "smtt"


@pytest.fixture(scope="module")
def verifier() -> SmttVerifier:
    return SmttVerifier(PROBLEM_DIR, {})


def make_instance(p: list[int], d: list[int], ref: float | None = None) -> Instance:
    reference = Reference(ref, "optimal", "test") if ref is not None else Reference.missing()
    data = {"p": np.asarray(p, dtype=np.int64), "d": np.asarray(d, dtype=np.int64)}
    return Instance("t", f"n={len(p)}", data, reference)


def test_protocol_and_direction(verifier: SmttVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.direction == "minimize"


# -- options ----------------------------------------------------------------------------


def test_options_accepted() -> None:
    v = SmttVerifier(PROBLEM_DIR, {"reference_time_limit_s": 2.5, "reference_workers": 2})
    assert v.budget.time_limit_s == 2.5 and v.budget.workers == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"x": 1}, "problem.toml [verifier.options] x: unknown key (expected one of reference_time_limit_s, "),
        ({"reference_time_limit_s": "10"}, "[verifier.options] reference_time_limit_s: Input should be a valid number"),
        ({"reference_time_limit_s": 0}, "[verifier.options] reference_time_limit_s: Input should be greater than 0"),
        ({"reference_workers": True}, "[verifier.options] reference_workers: Input should be a valid integer"),
        ({"reference_workers": 1.5}, "[verifier.options] reference_workers: Input should be a valid integer"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(UserError, match=None) as info:
        SmttVerifier(PROBLEM_DIR, options)
    assert message in str(info.value) and "\n" not in str(info.value)


# -- built-in splits ----------------------------------------------------------------------


def test_split_sizes_and_names() -> None:
    quick, train, test = (split_instances(s) for s in ("quick", "train", "test"))
    assert len(quick) == 6 and {len(g.p) for g in quick} == {20, 50}
    assert len(train) == 500 and len(test) == 125
    # Train: the whole TF/RDD grid at every size, twelve times at n = 20, three at 50 and 100.
    for n in SIZES:
        names = [g.name for g in train if len(g.p) == n]
        points = [re.search(r"tf([\d.]+)-rdd([\d.]+)", name).groups() for name in names]  # type: ignore[union-attr]
        assert len(points) == 25 * {20: 12, 50: 3, 100: 3}.get(n, 1) and len(set(points)) == 25
        assert len(set(names)) == len(names)
    for split in (train, test):
        assert sorted({len(g.p) for g in split}) == list(SIZES)
    assert {g.name for g in test if len(g.p) == 50} == {
        f"test-n50-tf{tf / 10:.1f}-rdd{rdd / 10:.1f}-{k}" for k, (tf, rdd) in enumerate(GRID)
    }
    assert train[3].name == "train-n20-tf0.2-rdd0.8-3" and train[3].group == "n=20"


def test_the_rule_tracks_train_is_smtts_with_more_instances_at_n_100_and_above() -> None:
    """smtt_rule's train repeats the grid 6, 3 and 2 times at n = 100, 200, 500: smtt's
    instances first, then new ones from the same streams, none of them in test."""
    smtt, rule = split_instances("train"), split_instances("train", RULE_TRAIN_REPLICATES)
    counts = {n: sum(1 for g in rule if len(g.p) == n) for n in SIZES}
    assert counts == {20: 300, 50: 75, 100: 150, 200: 75, 500: 50}
    by_name = {g.name: g for g in rule}
    for g in smtt:
        assert np.array_equal(by_name[g.name].p, g.p) and np.array_equal(by_name[g.name].d, g.d)
    test = {content_hash(g.p, g.d) for g in split_instances("test")}
    assert not test & {content_hash(g.p, g.d) for g in rule}
    assert "train-n500-tf1.0-rdd1.0-49" in by_name and len(by_name) == len(rule)


def test_generator_is_reproducible_and_in_range() -> None:
    a, b = split_instances("train"), split_instances("train")
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.p, y.p) and np.array_equal(x.d, y.d)
        assert x.p.dtype == np.int64 and x.d.dtype == np.int64
        assert x.p.min() >= 1 and x.p.max() <= 100 and x.d.min() >= 0
        match = re.fullmatch(r"train-n\d+-tf([\d.]+)-rdd([\d.]+)-\d+", x.name)
        assert match is not None
        tf_v, rdd_v = float(match[1]), float(match[2])
        total = int(x.p.sum())
        assert x.d.max() <= total * (1 - tf_v + rdd_v / 2) + 1e-9
        assert x.d.min() >= max(0, math.ceil(total * (1 - tf_v - rdd_v / 2) - 1e-9))


def test_splits_share_no_instance_content() -> None:
    seen: dict[str, str] = {}
    for split in ("quick", "train", "test"):
        for g in split_instances(split):
            h = content_hash(g.p, g.d)
            assert h not in seen, f"{g.name} repeats {seen[h]}"
            seen[h] = g.name
    # Nor do they share job lists: no p vector is reused across splits.
    ps = {split: {g.p.tobytes() for g in split_instances(split)} for split in ("quick", "train", "test")}
    assert not (ps["quick"] & ps["train"]) and not (ps["quick"] & ps["test"]) and not (ps["train"] & ps["test"])


@pytest.mark.parametrize("track", ["smtt", "smtt_rule"])
@pytest.mark.parametrize("split", ["quick", "train", "test"])
def test_instances_carry_shipped_references(track: str, split: str) -> None:
    verifier = load_problem(track).verifier
    instances = verifier.instances(split)
    assert len(instances) == len(split_instances(split, verifier.train))
    shipped = verifier.references.shipped
    for inst in instances:
        ref = inst.reference
        assert ref.kind in ("optimal", "best_known") and ref.value is not None
        record = shipped[content_hash(inst.data["p"], inst.data["d"])]
        # The shipped sequence attains the shipped value: the number is honest.
        assert total_tardiness(inst.data["p"], inst.data["d"], record.witness) == ref.value
        assert ref.bound is not None and ref.bound <= ref.value
        if len(inst.data["p"]) <= 20:
            assert ref.kind == "optimal" and ref.source == "dp"


def test_unknown_split(verifier: SmttVerifier) -> None:
    with pytest.raises(UserError, match="unknown split 'dev'"):
        verifier.instances("dev")


def test_missing_shipped_reference_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match="no reference for instance test-n20.*--split test"):
        SmttVerifier(tmp_path, {}).instances("test")  # the test split needs no seeds file
    (tmp_path / "data" / "seeds.json").write_text((PROBLEM_DIR / "data" / "seeds.json").read_text())
    with pytest.raises(UserError, match="no reference for instance quick-n20.*--split quick"):
        SmttVerifier(tmp_path, {}).instances("quick")


# -- solve ------------------------------------------------------------------------------------


def test_solve_converts_without_validating() -> None:
    inst = make_instance([1, 2, 3], [0, 0, 0])
    seen = {}

    def heuristic(p: np.ndarray, d: np.ndarray) -> object:
        seen["args"] = (p, d)
        p[0] = 99  # must not leak into the instance
        return np.array([2, 0, 1])

    assert SmttVerifier.solve(heuristic, inst) == [2, 0, 1]
    assert inst.data["p"][0] == 1 and seen["args"][0] is not inst.data["p"]
    assert SmttVerifier.solve(lambda p, d: (2, 0, 1), inst) == [2, 0, 1]
    assert SmttVerifier.solve(lambda p, d: iter([2.5, "x", float("nan")]), inst)[:2] == [2.5, "x"]
    out = SmttVerifier.solve(lambda p, d: [np.int64(1), np.float64(2.0), True], inst)
    assert out == [1, 2.0, True] and type(out[0]) is int and type(out[1]) is float
    assert SmttVerifier.solve(lambda p, d: None, inst) is None
    assert SmttVerifier.solve(lambda p, d: 7, inst) == 7
    assert SmttVerifier.solve(lambda p, d: "012", inst) == "012"
    json.dumps(SmttVerifier.solve(lambda p, d: np.arange(3), inst))


# -- score ------------------------------------------------------------------------------------


def test_score_computes_total_tardiness(verifier: SmttVerifier) -> None:
    inst = make_instance([3, 2, 4], [2, 2, 9], ref=3)
    r = verifier.score(inst, [1, 0, 2])  # C = 2, 5, 9 -> T = 0, 3, 0
    assert r.feasible and r.objective == 3 and r.gap == 0.0 and r.extra["tardy_jobs"] == 1
    r = verifier.score(inst, [0, 1, 2])  # C = 3, 5, 9 -> T = 1, 3, 0
    assert r.objective == 4 and r.gap == pytest.approx(1 / 3)
    assert verifier.score(inst, [2, 1, 0]).objective == 0 + 4 + 7  # C = 4, 6, 9
    # Integral floats, numpy integers and arrays are accepted.
    assert verifier.score(inst, [1.0, np.int32(0), 2]).objective == 3
    assert verifier.score(inst, np.array([1, 0, 2])).objective == 3


@pytest.mark.parametrize(
    ("solution", "reason"),
    [
        (None, "solution is a NoneType, expected a list of job indices"),
        ("012", "solution is a str"),
        ({"a": 1}, "solution is a dict"),
        ([0, 1], "sequence has 2 entries, expected 3"),
        ([0, 1, 2, 3], "sequence has 4 entries, expected 3"),
        (np.arange(4), "sequence has 4 entries, expected 3"),
        (np.zeros((3, 1), dtype=int), "solution is an array of shape [3, 1], expected 3 job indices"),
        ([0, 2.5, 1], "element at position 1 is 2.5, not a job index"),
        ([0, 1, float("nan")], "element at position 2 is nan, not a job index"),
        ([True, 0, 1], "element at position 0 is True, not a job index"),
        ([0, "1", 2], "element at position 1 is '1', not a job index"),
        ([0, 1, 3], "element at position 2 is 3, out of range 0..2"),
        ([0, -1, 2], "element at position 1 is -1, out of range 0..2"),
        ([0, 10**30, 2], "element at position 1 is 1000000000000000000000000000000, out of range"),
        ([0, 1e300, 2], "element at position 1 is 1e+300, out of range 0..2"),
        ([1, 1, 1], "job 1 appears twice (positions 0 and 1)"),
        ([2, 0, 0], "job 0 appears twice (positions 1 and 2)"),
        ([0, 2.0, 2], "job 2 appears twice (positions 1 and 2)"),
    ],
)
def test_score_rejects(verifier: SmttVerifier, solution: object, reason: str) -> None:
    r = verifier.score(make_instance([3, 2, 4], [2, 2, 9], ref=3), solution)
    assert not r.feasible and r.objective is None and r.gap is None
    assert r.error is not None and r.error.startswith(reason)
    assert r.reference == 3 and r.reference_kind == "optimal"


def test_score_first_violation_in_position_order(verifier: SmttVerifier) -> None:
    inst = make_instance(list(range(1, 11)), [0] * 10)
    r = verifier.score(inst, [0, 5, 3, 5, 3, 1, 2, 4, 6, 9])
    assert r.error == "job 5 appears twice (positions 1 and 3)"
    r = verifier.score(inst, [0, 5, 3, 5, 3, 1, 2, 4, 6, 99])
    assert r.error == "element at position 9 is 99, out of range 0..9"


def test_score_zero_reference_has_no_gap(verifier: SmttVerifier) -> None:
    r = verifier.score(make_instance([1, 1], [5, 5], ref=0), [0, 1])
    assert r.feasible and r.objective == 0 and r.gap is None


def test_respond_sends_plain_numbers_as_arrays_and_anything_else_as_it_is(verifier: SmttVerifier) -> None:
    payload = {"p": np.array([1, 2, 3]), "d": np.array([0, 0, 0])}
    sent = SmttVerifier.respond(lambda p, d: [2, 0, 1], payload)
    assert isinstance(sent, np.ndarray) and sent.dtype == np.int64 and sent.tolist() == [2, 0, 1]
    nan = SmttVerifier.respond(lambda p, d: [2.0, float("nan"), 1], payload)
    assert nan.dtype == np.float64  # NaN travels as raw bytes; the trusted check names it
    inst = make_instance([1, 2, 3], [0, 0, 0], ref=1)
    assert verifier.score(inst, nan).error == "element at position 1 is nan, not a job index"
    assert SmttVerifier.respond(lambda p, d: [True, 0, 1], payload) == [True, 0, 1]  # bools stay bools
    assert SmttVerifier.respond(lambda p, d: [0, 2**70, 1], payload) == [0, 2**70, 1]
    assert SmttVerifier.respond(lambda p, d: None, payload) is None
    rule = SmttRuleVerifier.respond(lambda d: d, payload)
    assert rule.dtype == np.int64 and rule.tolist() == [0, 1, 2]
