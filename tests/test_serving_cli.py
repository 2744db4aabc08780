"""End to end through the CLI and the sandbox: eval with a trace and a plot, baselines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def evolve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_eval_a_trace_with_a_latency_cdf_and_per_request_results(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 400
    arrival = np.cumsum(rng.exponential(1 / 60, n))
    rows = [f"{t:.4f},{p},{o}" for t, p, o in zip(arrival, rng.integers(50, 3000, n), rng.integers(1, 300, n), strict=True)]
    trace = tmp_path / "burst.csv"
    trace.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n" + "\n".join(rows) + "\n")
    plot, out = tmp_path / "cdf.png", tmp_path / "solutions.json"
    done = evolve("eval", "serving", "problems/serving/baselines/sjf_predicted.py", "--trace", str(trace),
                  "--plot", str(plot), "--solutions-out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "ok" and document["instances"][0]["name"] == "burst"
    assert 0 <= document["metrics"]["goodput_pct"] <= 100
    assert plot.read_bytes()[:4] == b"\x89PNG"
    (row,) = json.loads(out.read_text())
    assert len(row["solution"]["e2e"]) == n and len(row["solution"]["ttft"]) == n


def test_seed_on_quick_and_baselines_through_the_sandbox() -> None:
    done = evolve("eval", "serving", "problems/serving/seed.py", "--split", "quick", "--json")
    assert done.returncode == 0, done.stderr
    seed = json.loads(done.stdout)
    assert seed["status"] == "ok" and seed["metrics"]["gap_mean_pct"] == 0.0  # the seed is FCFS
    done = evolve("baselines", "serving", "--split", "quick", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)["baselines"]}
    assert all(row["status"] == "ok" for row in rows.values())
    assert rows["srpt_oracle"]["metrics"]["oracle"] == 1.0  # the shipped oracle sees true lengths
    assert all(rows[name]["metrics"]["oracle"] == 0.0 for name in rows if name != "srpt_oracle")
    assert rows["fcfs"]["score"] == seed["score"]


def test_router_seed_on_quick() -> None:
    done = evolve("eval", "serving_router", "problems/serving_router/seed.py", "--split", "quick", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "ok" and document["metrics"]["gap_mean_pct"] == 0.0
