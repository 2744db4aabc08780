"""The engine's reference store and ``evolve references``: records, file, cache, the command.

Real files, real DP and CP-SAT solves on small SMTT instances, the real CLI in a
subprocess; a copy of the smtt problem folder stands in for a plug-in problem.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import evolve
from evolve.errors import UserError
from evolve.evaluators.smtt.exact import dp_optimum
from evolve.evaluators.smtt.generator import GeneratedInstance, generate
from evolve.evaluators.smtt.objective import content_hash, total_tardiness
from evolve.evaluators.smtt.references import attains
from evolve.references import FORMAT, ReferenceStore, StoredReference, read_file, write_file

SMTT = Path(__file__).resolve().parents[1] / "problems" / "smtt"


@pytest.fixture
def smtt_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The smtt problem folder, copied: a problem with a shipped file we may rewrite."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "smtt_copy"
    shutil.copytree(SMTT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_record_json_roundtrip_and_refusals() -> None:
    rec = StoredReference("x", 3, "best_known", 1, "ils", 0.5, [1, 0], {"n": 2})
    assert StoredReference.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert rec.to_reference().kind == "best_known" and rec.to_reference().bound == 1.0
    bare = StoredReference("b", 0.5, "bound", 0.5, "trivial")
    assert "witness" not in bare.to_json() and "details" not in bare.to_json()
    for bad, why in ((dict(rec.to_json(), kind="none"), "kind 'none'"),
                     (dict(rec.to_json(), value=math.nan), "expected finite numbers"),
                     (dict(rec.to_json(), value=True), "expected finite numbers"),
                     (dict(rec.to_json(), sequence=[1, 0]), "unknown field 'sequence'")):
        with pytest.raises(ValueError, match=why):
            StoredReference.from_json(bad)


def test_file_roundtrip_one_record_per_line_and_format_checked(tmp_path: Path) -> None:
    path = tmp_path / "data" / "references.json"
    records = {"k2": StoredReference("b", 7, "optimal", 7, "dp", 0.1, [0]),
               "k1": StoredReference("a", 2.5, "bound", 2.5, "trivial")}
    write_file(path, {"command": "evolve references p"}, records)
    header, got = read_file(path)
    assert got == records and header == {"command": "evolve references p"}
    lines = path.read_text().splitlines()
    assert lines[1] == f'  "format": "{FORMAT}",' and sum('"name"' in line for line in lines) == 2
    path.write_text(json.dumps({"format": "evolve-smtt-references-v1", "references": {}}))
    with pytest.raises(UserError, match="format 'evolve-smtt-references-v1', expected 'evolve-references-v1'"):
        read_file(path)
    path.write_text(json.dumps({"format": FORMAT, "references": {"k": {"name": "x", "value": 1, "kind": "?"}}}))
    with pytest.raises(UserError, match=r"references\.k: kind '\?'"):
        read_file(path)


def test_cache_refuses_a_record_its_witness_does_not_attain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    p, d = np.array([3, 2, 4]), np.array([2, 2, 9])
    store, key = ReferenceStore(tmp_path / "problem", "smtt"), content_hash(p, d)
    check = lambda r: attains(r, p, d)  # noqa: E731
    assert store.cached(key, check) is None and store.known(key, check) is None
    rec = StoredReference("x", 3, "optimal", 3, "dp", 0.0, [1, 0, 2])
    store.remember(key, rec)
    assert store.cached(key, check) == rec == store.known(key, check)
    (path,) = (tmp_path / "evolve" / "references" / "smtt").glob("*.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), "value": 1}))  # a lie
    assert store.cached(key, check) is None
    path.write_text("{broken")
    assert store.cached(key, check) is None


def test_cli_computes_missing_references_and_names_itself_in_the_file(smtt_copy: Path) -> None:
    path = smtt_copy / "data" / "references.json"
    header, before = read_file(path)
    dropped = {k: r for k, r in before.items() if r.name.startswith("quick-n20")}
    assert len(dropped) == 3
    write_file(path, header, {k: r for k, r in before.items() if k not in dropped})
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "references", str(smtt_copy), "--split", "quick",
                           "--time-limit", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 computed, 3 kept" in done.stdout
    assert "[3/3] quick-n20-" in done.stderr and "optimal (bound" in done.stderr
    header, after = read_file(path)
    assert header["command"] == "evolve references smtt --split quick --time-limit 2"  # the name in problem.toml
    assert {"python", "numpy", "ortools", "machine", "cpus"} <= set(header)
    for key, old in dropped.items():  # the DP optimum again, with its sequence
        assert (after[key].value, after[key].kind, after[key].witness) == (old.value, old.kind, old.witness)
    assert {k: after[k] for k in before if k not in dropped} == {k: before[k] for k in before if k not in dropped}


@pytest.mark.parametrize(("args", "message"), [
    # Only the splits the problem has: smtt's message listed valid and fit, which only smtt_rule has.
    (["smtt", "--split", "bogus"], "error: --split 'bogus': expected one of quick, train, test, a comma list, or all\n"),
    (["smtt_rule", "--split", "train,bogus"], "error: --split 'bogus': expected one of quick, train, test, valid, fit, "
                                              "a comma list, or all\n"),
    (["smtt", "--time-limit", "0"], "error: --time-limit 0: expected a positive number of seconds"),
    (["nope"], "error: unknown problem 'nope'"),
    (["serving"], "error: problem 'serving': its verifier (evolve.evaluators.serving:ServingVerifier) keeps no "
                  "references"),
    (["smtt", "--option", "reference_workers=0"], "error: --option reference_workers: "),
])
def test_cli_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "references", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_refresh_in_parallel_keeps_renames_fills_and_prunes(smtt_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evolve.evaluators.smtt import verifier as smtt_verifier

    made = {s: [GeneratedInstance(f"{s}-{k}", "n=6", *generate(6, 6, 4, np.random.default_rng([k, ord(s[1])])))
                for k in range(3)] for s in ("quick", "train", "test")}
    monkeypatch.setattr(smtt_verifier, "split_instances", lambda s, *_: made[s])
    kept = made["test"][0]
    value, seq = dp_optimum(kept.p, kept.d)
    old = {content_hash(kept.p, kept.d): StoredReference("old name", value, "optimal", value, "dp", 9.0, seq),
           "stale": StoredReference("gone", 0, "optimal", 0, "dp", 0.0, [0, 1])}
    path = smtt_copy / "data" / "references.json"
    write_file(path, {"command": "c"}, old)
    seen: list[tuple[int, int]] = []
    outcome = evolve.compute_references(smtt_copy, jobs=2, progress=lambda done, total, _: seen.append((done, total)))
    assert (outcome.computed, outcome.kept, outcome.refreshed, outcome.dropped) == (8, 1, 1, 1)
    assert seen[0] == (0, 8) and sorted(seen[1:]) == [(k, 8) for k in range(1, 9)]
    header, got = read_file(path)
    assert "stale" not in got and len(got) == 9 and header["command"] == "evolve references smtt " \
                                                                          "--split quick,train,test"
    assert got[content_hash(kept.p, kept.d)].seconds == 9.0  # kept, not recomputed
    assert got[content_hash(kept.p, kept.d)].name == "test-0"  # renamed to the split's name
    for split in made.values():
        for g in split:
            rec = got[content_hash(g.p, g.d)]
            assert rec.value == dp_optimum(g.p, g.d)[0] and total_tardiness(g.p, g.d, rec.witness) == rec.value
