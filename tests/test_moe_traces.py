"""MoE --instances files: vLLM load_history JSON and .npz traces, windowing, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.moe import MoeVerifier

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "moe"


def history(entries: int, layers: int = 2, experts: int = 16, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"logical_expert_load": rng.integers(0, 50, size=(layers, experts)).tolist()} for _ in range(entries)]


def write(tmp_path: Path, payload: object, name: str = "trace.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


def test_load_history_is_summed_per_window_and_chunked(tmp_path: Path) -> None:
    entries = history(25)
    path = write(tmp_path, {"load_history": entries})
    verifier = MoeVerifier(PROBLEM_DIR, {"history_interval": 5, "windows_per_instance": 3})
    instances = verifier.load_instances(path)
    raw = np.array([e["logical_expert_load"] for e in entries])
    windows = np.stack([raw[s:s + 5].sum(axis=0) for s in range(0, 25, 5)])  # 5 windows
    # Chunks of 3 windows overlapping by one: windows 0-2, 2-4: every transition once.
    assert [i.name for i in instances] == ["trace#0", "trace#1"]
    assert np.array_equal(instances[0].data["windows"], windows[0:3])
    assert np.array_equal(instances[1].data["windows"], windows[2:5])
    # 16 experts: one node of 8 GPUs, one redundant slot per GPU.
    data = instances[0].data
    assert (data["experts"], data["replicas"], data["groups"], data["nodes"], data["gpus"]) == (16, 24, 1, 1, 8)
    ref = instances[0].reference
    assert ref.kind == "bound" and ref.source.startswith("trivial") and 0 < (ref.value or 0) <= 1


def test_bare_list_partial_last_window_and_integral_floats(tmp_path: Path) -> None:
    entries = history(7)
    entries[3]["logical_expert_load"] = [[float(x) for x in row] for row in entries[3]["logical_expert_load"]]
    path = write(tmp_path, entries)
    (inst,) = MoeVerifier(PROBLEM_DIR, {"history_interval": 3}).load_instances(path)
    assert inst.data["windows"].shape == (3, 2, 16)  # 3 + 3 + 1 entries
    assert inst.data["windows"][2].sum() == np.sum(entries[6]["logical_expert_load"])


def test_deployment_options_and_v3_default(tmp_path: Path) -> None:
    path = write(tmp_path, history(4, layers=1, experts=256))
    (inst,) = MoeVerifier(PROBLEM_DIR, {"history_interval": 2}).load_instances(path)
    assert (inst.data["replicas"], inst.data["groups"], inst.data["nodes"], inst.data["gpus"]) == (288, 8, 4, 32)
    options = {"history_interval": 2, "num_replicas": 320, "num_gpus": 16, "num_nodes": 2, "num_groups": 4}
    (inst,) = MoeVerifier(PROBLEM_DIR, options).load_instances(path)
    assert (inst.data["replicas"], inst.data["groups"], inst.data["nodes"], inst.data["gpus"]) == (320, 4, 2, 16)
    with pytest.raises(UserError, match=r"replicas \(300\) must be a multiple of gpus \(16\)"):
        MoeVerifier(PROBLEM_DIR, {**options, "num_replicas": 300}).load_instances(path)


def test_npz_arrays_are_separate_workloads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 100, size=(3, 2, 16)), rng.integers(0, 100, size=(2, 4, 16))
    np.savez(tmp_path / "loads.npz", a=a, b=b)
    instances = MoeVerifier(PROBLEM_DIR, {}).load_instances(tmp_path / "loads.npz")
    assert [i.name for i in instances] == ["loads:a", "loads:b"]
    assert np.array_equal(instances[1].data["windows"], b)
    (tmp_path / "loads.npz").rename(tmp_path / "LOADS.NPZ")  # was read as JSON
    assert [i.name for i in MoeVerifier(PROBLEM_DIR, {}).load_instances(tmp_path / "LOADS.NPZ")] == ["LOADS:a", "LOADS:b"]


def test_ilp_reference_for_small_traces(tmp_path: Path) -> None:
    windows = np.array([[[3, 1, 1, 1]], [[10, 6, 2, 0]]])
    np.savez(tmp_path / "small.npz", w=windows)
    options = {"trace_bound": "ilp", "num_replicas": 4, "num_gpus": 2, "ilp_time_limit_s": 10.0}
    (inst,) = MoeVerifier(PROBLEM_DIR, options).load_instances(tmp_path / "small.npz")
    # Window 1 is the hand-checked case of test_moe_references: least max load 10, mean 9.
    assert inst.reference.kind == "optimal" and inst.reference.value == pytest.approx(0.9)


@pytest.mark.parametrize(("payload", "message"), [
    ("[1, 2", "invalid JSON at line 1"),
    ({"history": []}, 'expected {"load_history": [...]} or a list of entries'),
    ({"load_history": [{"logical_expert_load": [[1]]}]}, "load_history has 1 entries, expected at least 2"),
    ({"load_history": [{"load": 1}, {"load": 2}]}, "load_history[0]: expected an object with 'logical_expert_load'"),
    ({"load_history": [{"logical_expert_load": [[1, 2]]}, {"logical_expert_load": [[1], [2, 3]]}]},
     "load_history[1].logical_expert_load: expected [layers][experts] of non-negative integers (ragged"),
    ({"load_history": [{"logical_expert_load": [[1, 2]]}, {"logical_expert_load": [[1, -2]]}]},
     "load_history[1].logical_expert_load: expected token counts from 0 to"),
    ({"load_history": [{"logical_expert_load": [[1, 2]]}, {"logical_expert_load": [[1, 2.5]]}]},
     "load_history[1].logical_expert_load: expected integer token counts, got 2.5 at [0, 1]"),
    ({"load_history": [{"logical_expert_load": [[1, 2]]}, {"logical_expert_load": [[1, "2"]]}]},
     "load_history[1].logical_expert_load: expected [layers][experts] of non-negative integers, got 2-d str"),
    ({"load_history": [{"logical_expert_load": [[1, 2]]}, {"logical_expert_load": [[1, 2, 3]]}]},
     "load_history[1].logical_expert_load: shape [1, 3] differs from load_history[0] [1, 2]"),
    ({"load_history": [{"logical_expert_load": [[1, 2]]}] * 3}, "need at least 2 windows"),
    # beyond int64: was "(ragged or mixed values)"
    ({"load_history": [{"logical_expert_load": [[1, 2]]}, {"logical_expert_load": [[1, 10**30]]}]},
     "load_history[1].logical_expert_load: expected token counts from 0 to 1000000000000000, got 1000000000000"),
    ("[" * 100_000, "JSON nested too deeply"),  # was a RecursionError
])
def test_malformed_history_files_are_one_line_errors(tmp_path: Path, payload: object, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    with pytest.raises(UserError) as info:
        MoeVerifier(PROBLEM_DIR, {}).load_instances(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text, text


def test_malformed_npz_files(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="junk.npz: not an .npz file"):  # was "contains pickled (object) data"
        MoeVerifier(PROBLEM_DIR, {}).load_instances(tmp_path / "junk.npz")
    np.savez(tmp_path / "flat.npz", w=np.ones((3, 4)))
    with pytest.raises(UserError, match=r"array 'w': expected \[windows, layers, experts\]"):
        MoeVerifier(PROBLEM_DIR, {}).load_instances(tmp_path / "flat.npz")
    np.savez(tmp_path / "one.npz", w=np.ones((1, 2, 16), dtype=np.int64))
    with pytest.raises(UserError, match="array 'w' has 1 window, expected at least 2"):
        MoeVerifier(PROBLEM_DIR, {}).load_instances(tmp_path / "one.npz")
