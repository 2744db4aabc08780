"""SMTT ``--instances`` files as public sets publish them: negative due dates, stated references
of three kinds with an optional lower bound, refuted optima kept as best-known values."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.smtt import SmttVerifier, cpsat, references
from evolve.evaluators.smtt.exact import dp_optimum, matching_lower_bound
from evolve.evaluators.smtt.generator import generate
from evolve.evaluators.smtt.local_search import load_baseline
from evolve.evaluators.smtt.objective import content_hash, total_tardiness
from evolve.evaluators.smtt.references import Budget
from evolve.references import StoredReference
from evolve.verifier import Reference

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "smtt"


@pytest.fixture(scope="module")
def verifier() -> SmttVerifier:
    return SmttVerifier(PROBLEM_DIR, {})


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def write(tmp_path: Path, payload: object) -> Path:
    path = tmp_path / "instances.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def brute_force(p: np.ndarray, d: np.ndarray) -> int:
    return min(total_tardiness(p, d, list(s)) for s in itertools.permutations(range(len(p))))


def unclipped(n: int, tf: int, rdd: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A Potts & Van Wassenhove instance whose due-date interval reaches below 0, not clipped
    (as in the public n = 20 set, which has instances with negative due dates)."""
    p = rng.integers(1, 100, size=n, endpoint=True)
    total = int(p.sum())
    low, high = -(-total * (20 - 2 * tf - rdd) // 20), total * (20 - 2 * tf + rdd) // 20
    d = rng.integers(low, high, size=n, endpoint=True)
    assert d.min() < 0
    return p.astype(np.int64), d.astype(np.int64)


def rows_of(instances: list[tuple[np.ndarray, np.ndarray]], **extra: object) -> list[dict]:
    return [{"name": f"i{k}", "p": p.tolist(), "d": d.tolist(), **extra} for k, (p, d) in enumerate(instances)]


# -- negative due dates ---------------------------------------------------------------------


def test_negative_due_dates_are_read_and_get_exact_references(verifier: SmttVerifier, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tiny = [unclipped(6, 8, 10, rng) for _ in range(4)]
    instances = verifier.load_instances(write(tmp_path, {"instances": rows_of(tiny)}))
    for inst, (p, d) in zip(instances, tiny, strict=True):
        assert inst.data["d"].dtype == np.int64 and inst.data["d"].min() < 0
        assert inst.reference.kind == "optimal" and inst.reference.source == "dp"
        assert inst.reference.value == brute_force(p, d)  # independent of the DP
        assert 0 <= matching_lower_bound(p, d) <= inst.reference.value


@pytest.mark.parametrize("model", ["positional", "disjunctive"])
def test_negative_due_dates_through_cpsat_prove_the_dp_optimum(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # n = 12 pushed past the DP so local search + CP-SAT run; a job due at -500
    # is later than P, which the positional model's tardiness domain must allow.
    monkeypatch.setattr(references, "DP_MAX_N", 8)
    monkeypatch.setattr(cpsat, "POSITIONAL_MAX_N", 60 if model == "positional" else 5)
    rng = np.random.default_rng(2)
    for k in range(3):
        p, d = unclipped(12, 8, 10, rng)
        d[0] = -500
        rec = references.compute_reference(f"neg{k}", p, d, Budget(time_limit_s=10, ils_share=0.05))
        assert rec.kind == "optimal" and rec.value == dp_optimum(p, d)[0] == rec.bound
        assert total_tardiness(p, d, rec.witness) == rec.value


def test_score_with_negative_due_dates(verifier: SmttVerifier, tmp_path: Path) -> None:
    rows = [{"name": "a", "p": [2, 3], "d": [-4, 1], "optimum": 10}]
    (inst,) = verifier.load_instances(write(tmp_path, {"instances": rows}))
    # [0, 1]: C = 2, 5 -> T = 6, 4; [1, 0]: C = 3, 5 -> T = 2, 9.
    assert verifier.score(inst, [0, 1]).objective == 10
    assert verifier.score(inst, [1, 0]).gap == pytest.approx(0.1)


# -- stated references -----------------------------------------------------------------------


def test_reference_kinds_from_the_file(verifier: SmttVerifier, tmp_path: Path) -> None:
    p, d = [5, 1, 3, 2], [3, 1, 4, 9]  # optimum 8 (brute force), matching bound 4
    assert brute_force(np.array(p), np.array(d)) == 8 and matching_lower_bound(np.array(p), np.array(d)) == 4
    rows = [
        {"name": "opt", "p": p, "d": d, "optimum": 8},
        {"name": "bk", "p": p, "d": d, "best_known": 9, "lower_bound": 6},
        {"name": "ub", "p": p, "d": d, "upper_bound": 9, "lower_bound": 3},
        {"name": "closed", "p": p, "d": d, "upper_bound": 8, "lower_bound": 8},
        {"name": "lb only", "p": p, "d": d, "lower_bound": 8},
    ]
    got = {i.name: i.reference for i in verifier.load_instances(write(tmp_path, {"instances": rows}))}
    assert got["opt"] == Reference(8.0, "optimal", "file (optimum)", 8.0)
    # The bound is the better of the stated one and the matching bound (4, free).
    assert got["bk"] == Reference(9.0, "best_known", "file (best_known)", 6.0)
    assert got["ub"] == Reference(9.0, "best_known", "file (upper_bound)", 4.0)
    assert got["closed"] == Reference(8.0, "optimal", "file (upper_bound)", 8.0)
    assert got["lb only"] == Reference(8.0, "optimal", "dp", 8.0)  # computed, the file's bound agrees


def test_file_lower_bound_raises_a_computed_best_known_bound(verifier: SmttVerifier, tmp_path: Path) -> None:
    p, d = generate(30, 6, 4, np.random.default_rng(3))
    order = list(range(30))
    # A weak cached reference (bound 0), so the file's lower bound is the better one.
    rec = StoredReference("x", total_tardiness(p, d, order), "best_known", 0, "test", 0.0, order)
    verifier.references.remember(content_hash(p, d), rec)
    row = {"name": "x", "p": p.tolist(), "d": d.tolist(), "lower_bound": 5}
    (inst,) = verifier.load_instances(write(tmp_path, {"instances": [row]}))
    assert inst.reference == Reference(float(rec.value), "best_known", "test", 5.0)
    row["lower_bound"] = rec.value + 1
    with pytest.raises(UserError, match=rf"instances\[0\]\.lower_bound: {rec.value + 1} exceeds {rec.value}, "):
        verifier.load_instances(write(tmp_path, {"instances": [row]}))


def test_refuted_optima_warn_once_and_become_best_known(verifier: SmttVerifier, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(4)
    mdd = load_baseline("mdd")
    good, rows = [], []
    for k in range(6):
        p, d = unclipped(8, 8, 10, rng)
        optimum, mdd_value = brute_force(p, d), total_tardiness(p, d, mdd(p, d))
        # Two "optima" that MDD beats (the published n = 500 set has 63 of 200), the rest true.
        claimed = optimum if k >= 2 else mdd_value + 7
        rows.append({"name": f"i{k}", "p": p.tolist(), "d": d.tolist(), "optimum": claimed})
        good.append((optimum, mdd_value))
    with caplog.at_level(logging.WARNING):
        instances = verifier.load_instances(write(tmp_path, {"instances": rows}))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "2 of 6 claimed optima are beaten" in message and "instances[0] ('i0')" in message
    assert f"optimum {good[0][1] + 7}" in message and "\n" not in message
    for k, inst in enumerate(instances):
        if k < 2:
            assert inst.reference.kind == "best_known" and inst.reference.value == good[k][1] + 7
            assert "claimed optimum" in inst.reference.source
            p, d = inst.data["p"], inst.data["d"]
            result = verifier.score(inst, mdd(p, d))
            assert result.gap is not None and result.gap < 0  # negative gaps are allowed
        else:
            assert inst.reference == Reference(float(good[k][0]), "optimal", "file (optimum)", float(good[k][0]))


def test_a_value_below_a_proven_bound_is_refused(verifier: SmttVerifier, tmp_path: Path) -> None:
    p, d = [5, 5, 5], [0, 0, 0]  # every sequence: 5 + 10 + 15 = 30, the matching bound
    for key in ("optimum", "best_known", "upper_bound"):
        path = write(tmp_path, {"instances": [{"name": "a", "p": p, "d": d, key: 29}]})
        with pytest.raises(UserError) as info:
            verifier.load_instances(path)
        assert str(info.value) == (f"{path}: instances[0].{key}: 29 is below 30, a proven lower bound of this "
                                   "instance (shortest-first completion times matched to sorted due dates)")


GOOD = {"name": "a", "p": [1, 2], "d": [0, 3]}


def test_the_documented_example_file_states_true_references(verifier: SmttVerifier, tmp_path: Path) -> None:
    """docs/smtt.md's example claimed optimum 8 for an instance whose optimum is 10: accepted while
    nothing was cached, refused ('8 is below 10') once the same content had been computed."""
    import re

    text = (PROBLEM_DIR.parents[1] / "docs" / "smtt.md").read_text()
    example = re.search(r"### Custom instances.*?```json\n(.*?)```", text, re.S)
    assert example, "docs/smtt.md: the custom-instances example is gone"
    rows = json.loads(example.group(1))["instances"]
    for row in rows:
        stated = row.get("optimum", row.get("upper_bound"))
        assert stated == brute_force(np.array(row["p"]), np.array(row["d"])), row["name"]
    path = write(tmp_path, example.group(1))
    assert [i.reference.kind for i in verifier.load_instances(path)] == ["optimal", "optimal"]


def test_a_byte_order_mark_is_read_and_deep_nesting_is_one_line(verifier: SmttVerifier, tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"instances": [GOOD]}).encode())
    assert [i.name for i in verifier.load_instances(path)] == ["a"]  # was "Unexpected UTF-8 BOM"
    path.write_text('{"instances": ' + "[" * 100_000)
    with pytest.raises(UserError, match="bom.json: JSON nested too deeply"):  # was a RecursionError
        verifier.load_instances(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "instances.json: invalid JSON at line 1"),
        # OR-Library's wt40.txt as users have it: was "invalid JSON at line 1 column 2: Expecting value"
        ("   26   24   79   46   32\n", 'not a JSON instance file (expected {"instances": [...]}), it starts with "26   24'),
        # the rows alone, or a document without 'instances': "expected a JSON object ..., got dict" (QA)
        ([GOOD], 'a JSON list at the top; wrap the instances as {"instances": [...]}'),
        ({"jobs": [GOOD]}, """no key 'instances' (expected {"instances": [...]}; it has "jobs")"""),
        ({}, "no key 'instances' (expected {\"instances\": [...]}; it is empty)"),
        (7, 'not a JSON instance file (expected {"instances": [...]}), it starts with "7"'),
        ({"instances": []}, "instances: expected a non-empty list"),
        ({"instances": [GOOD], "extra": 1}, "unknown key 'extra'"),
        ({"instances": [GOOD, 3]}, "instances[1]: expected an object"),
        ({"instances": [{"name": "a", "p": [1]}]}, "instances[0]: missing key 'd'"),
        ({"instances": [{**GOOD, "due": [1]}]}, "instances[0]: unknown key 'due'"),
        ({"instances": [{**GOOD, "name": ""}]}, "instances[0].name: expected a non-empty string"),
        ({"instances": [GOOD, GOOD]}, "instances[1].name: duplicate name 'a' (also instances[0])"),
        ({"instances": [{**GOOD, "p": []}]}, "instances[0].p: expected a non-empty list"),
        ({"instances": [{**GOOD, "p": "12"}]}, "instances[0].p: expected a list of non-negative integers"),
        ({"instances": [{**GOOD, "p": [1, -2]}]}, "instances[0].p[1]: expected a non-negative integer, got -2"),
        ({"instances": [{**GOOD, "p": [1, 2.5]}]}, "instances[0].p[1]: expected a non-negative integer, got 2.5"),
        ({"instances": [{**GOOD, "p": [1, 2.0]}]}, "instances[0].p[1]: expected a non-negative integer, got 2.0"),
        ({"instances": [{**GOOD, "d": "12"}]}, "instances[0].d: expected a list of integers, got"),
        ({"instances": [{**GOOD, "d": [1, True]}]}, "instances[0].d[1]: expected an integer, got true"),
        ({"instances": [{**GOOD, "d": [1, None]}]}, "instances[0].d[1]: expected an integer, got null"),
        ({"instances": [{**GOOD, "d": [1, 0.5]}]}, "instances[0].d[1]: expected an integer, got 0.5"),
        ({"instances": [{**GOOD, "d": [1, -(10**10)]}]}, "d[1]: expected an integer at least -1000000000, got"),
        ({"instances": [{**GOOD, "d": [1, 2, 3]}]}, "instances[0].d: has 3 entries, expected 2"),
        ({"instances": [{**GOOD, "p": [1, 10**10]}]}, "at most 1000000000, got 10000000000"),
        ({"instances": [{**GOOD, "optimum": -1}]}, "instances[0].optimum: expected a non-negative integer"),
        ({"instances": [{**GOOD, "best_known": 1.5}]}, "instances[0].best_known: expected a non-negative integer"),
        ({"instances": [{**GOOD, "lower_bound": "3"}]}, "instances[0].lower_bound: expected a non-negative integer"),
        ({"instances": [{**GOOD, "optimum": 3, "upper_bound": 3}]},
         "instances[0]: both 'optimum' and 'upper_bound' given (expected at most one of optimum, best_known, "),
        ({"instances": [{**GOOD, "best_known": 3, "lower_bound": 4}]},
         "instances[0].lower_bound: 4 exceeds best_known 3"),
    ],
)
def test_malformed_instance_files(verifier: SmttVerifier, tmp_path: Path, payload: object, message: str) -> None:
    path = write(tmp_path, payload)
    with pytest.raises(UserError) as info:
        verifier.load_instances(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_missing_file(verifier: SmttVerifier, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read instance file"):
        verifier.load_instances(tmp_path / "nope.json")


def test_computed_references_are_cached(verifier: SmttVerifier, tmp_path: Path) -> None:
    rows = [{"name": "small", "p": [5, 1, 3, 2], "d": [3, 1, 4, 9]}]
    (inst,) = verifier.load_instances(write(tmp_path, {"instances": rows}))
    assert inst.reference == Reference(8.0, "optimal", "dp", 8.0) and inst.group == "n=4"
    assert list((tmp_path / "cache" / "evolve" / "references" / "smtt").glob("*.json"))


def test_eval_says_on_stderr_while_it_computes_references(tmp_path: Path) -> None:
    """A file without references took ~18 s of reference computation before the first program ran,
    with nothing on stderr when piped: it says what it computes, then how long it took."""
    import subprocess
    import sys

    rows = [{"name": "a", "p": [5, 1, 3, 2], "d": [3, 1, 4, 9]}, {"name": "b", "p": [4, 2, 6], "d": [1, 2, 3]},
            {"name": "c", "p": [2, 2], "d": [9, 9], "optimum": 0}]
    path = write(tmp_path, {"instances": rows})
    command = [sys.executable, "-m", "evolve.cli", "eval", "smtt", str(PROBLEM_DIR / "seed.py"), "--instances",
               str(path), "--json"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert len(lines) == 2, first.stderr
    assert lines[0].startswith(f"{path}: computing the references of 2 of 3 instances (none stated, shipped or cached")
    assert lines[1].startswith(f"{path}: 2 references computed in ") and lines[1].endswith(" s and cached "
                                                                                            "(the next use of the file reads them)")
    got = [(r["name"], r["reference"], r["reference_kind"]) for r in json.loads(first.stdout)["instances"]]
    assert got == [("a", 8.0, "optimal"), ("b", 14.0, "optimal"), ("c", 0.0, "optimal")]
    assert len(list((tmp_path / "cache" / "evolve" / "references" / "smtt").glob("*.json"))) == 2


def test_a_public_style_file_through_the_cli_on_the_rule_track(tmp_path: Path) -> None:
    import subprocess
    import sys

    rng = np.random.default_rng(5)
    p, d = unclipped(9, 8, 10, rng)
    mdd = load_baseline("mdd")
    mdd_value = total_tardiness(p, d, mdd(p, d))
    rows = [{"name": "beaten", "p": p.tolist(), "d": d.tolist(), "optimum": mdd_value + 5},
            {"name": "true", "p": p.tolist(), "d": (d + 1).tolist(), "optimum": brute_force(p, d + 1)}]
    path = write(tmp_path, {"instances": rows})
    baseline = Path(__file__).resolve().parents[1] / "problems" / "smtt_rule" / "baselines" / "mdd.py"
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "smtt_rule", str(baseline), "--instances",
                           str(path), "--json"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("claimed optima are beaten") == 1 and "1 of 2 claimed optima" in done.stderr
    got = {r["name"]: r for r in json.loads(done.stdout)["instances"]}
    assert got["beaten"]["reference_kind"] == "best_known" and got["beaten"]["objective"] == mdd_value
    assert got["beaten"]["gap"] == pytest.approx(-5 / (mdd_value + 5))
    assert got["true"]["reference_kind"] == "optimal" and got["true"]["gap"] >= 0


def test_a_device_or_pipe_is_not_called_missing(tmp_path: Path) -> None:
    """--instances /dev/null (or a pipe, <(gunzip -c ...)) said 'file not found'."""
    from evolve.problem import load_problem

    with pytest.raises(UserError, match=r"^/dev/null: not a regular file \(a device, pipe or socket\)"):
        load_problem("smtt").instances("train", Path("/dev/null"))
    with pytest.raises(UserError, match="nope.json: file not found"):
        load_problem("smtt").instances("train", tmp_path / "nope.json")
