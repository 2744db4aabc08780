"""MoE baselines and seed: valid placements everywhere, DeepSeek's structure, robustness, end to end."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.evaluators.moe.configs import QWEN, SMALL, TINY, V3, EpConfig
from evolve.evaluators.moe.generator import TRAIN_DRIFT, generate
from evolve.evaluators.moe.placement import check_placement, loads, parse_placement

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "moe"
PROGRAMS = ["seed", "deepseek_eplb", "lpt", "round_robin"]


def program_path(name: str) -> Path:
    return PROBLEM_DIR / ("seed.py" if name == "seed" else f"baselines/{name}.py")


def load(name: str, source: str | None = None) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source or program_path(name).read_text(), name, "exec"), module.__dict__)
    return module


def place(module: types.ModuleType, config: EpConfig, weight: np.ndarray) -> Any:
    out = module.rebalance_experts(weight.copy(), *config.args())
    placement, why = parse_placement([np.asarray(x) for x in out], config, weight.shape[0])
    assert why is None and placement is not None, why
    return placement


@pytest.mark.parametrize("name", PROGRAMS)
@pytest.mark.parametrize("config", [TINY, SMALL, QWEN, V3], ids=lambda c: c.name)
def test_valid_placements_on_every_deployment(name: str, config: EpConfig) -> None:
    windows = generate(config, 6, 2, TRAIN_DRIFT, np.random.default_rng(11))
    windows[0, 0, :3] = 0  # experts without load still get a replica: they may get load next
    placement = place(load(name), config, windows[0])
    assert check_placement(placement, config, windows[1]) is None
    assert (placement.logcnt >= 1).all()


@pytest.mark.parametrize("name", PROGRAMS)
def test_standalone_numpy_and_stdlib_only(name: str) -> None:
    tree = ast.parse(program_path(name).read_text())
    assert ast.get_docstring(tree)
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"numpy", "heapq", "math"}


def test_deepseek_hierarchical_keeps_groups_and_their_replicas_on_one_node() -> None:
    weight = generate(V3, 4, 1, TRAIN_DRIFT, np.random.default_rng(2))[0]
    p = place(load("deepseek_eplb"), V3, weight)
    slots_per_node = V3.replicas // V3.nodes
    group_size = V3.experts // V3.groups
    for layer in range(4):
        node_of_slot = np.arange(V3.replicas) // slots_per_node
        for group in range(V3.groups):
            experts = range(group * group_size, (group + 1) * group_size)
            nodes = {int(node_of_slot[s]) for s in range(V3.replicas) if p.phy2log[layer, s] in experts}
            assert len(nodes) == 1, f"layer {layer} group {group} spans nodes {nodes}"
        # Each node: 2 whole groups (64 experts) in 72 slots -> 8 redundant replicas per node.
        for node in range(V3.nodes):
            held = p.phy2log[layer, node * slots_per_node:(node + 1) * slots_per_node]
            assert len(set(held.tolist())) == V3.experts // V3.nodes
    # Greedy replication inside each node: when expert e got its last replica its load per
    # replica, l_e / (c_e - 1), was the node's highest, and per-replica loads only fall after.
    for layer in range(4):
        for node in range(V3.nodes):
            held = np.unique(p.phy2log[layer, node * slots_per_node:(node + 1) * slots_per_node])
            final = weight[layer, held] / p.logcnt[layer, held]
            for e in held[p.logcnt[layer, held] > 1]:
                assert weight[layer, e] / (p.logcnt[layer, e] - 1) >= final.max() * (1 - 1e-12)


def test_deepseek_global_policy_balances_like_lpt() -> None:
    """QWEN: 1 group on 2 nodes does not divide, so EPLB uses its global policy: greedy
    replication then balanced packing over all GPUs, which is LPT; GPU loads must agree."""
    windows = generate(QWEN, 8, 2, TRAIN_DRIFT, np.random.default_rng(4))
    eplb = place(load("deepseek_eplb"), QWEN, windows[0])
    lpt = place(load("lpt"), QWEN, windows[0])
    assert np.array_equal(eplb.logcnt, lpt.logcnt)
    a, b = loads(eplb, QWEN, windows[1]), loads(lpt, QWEN, windows[1])
    assert np.allclose(np.sort(a.gpu_load, axis=1), np.sort(b.gpu_load, axis=1))


def test_round_robin_by_hand() -> None:
    config = EpConfig("rr", experts=4, replicas=6, groups=1, nodes=1, gpus=2)
    phy2log, log2phy, logcnt = load("round_robin").rebalance_experts(np.ones((1, 4)), *config.args())
    assert phy2log.tolist() == [[0, 1, 2, 3, 0, 1]] and logcnt.tolist() == [[2, 2, 1, 1]]
    assert log2phy.tolist() == [[[0, 4], [1, 5], [2, -1], [3, -1]]]


def test_lpt_beats_round_robin_and_the_seed_on_average() -> None:
    windows = generate(SMALL, 8, 3, TRAIN_DRIFT, np.random.default_rng(9))
    score = {}
    for name in ("seed", "lpt", "round_robin"):
        module = load(name)
        total = [loads(place(module, SMALL, windows[k]), SMALL, windows[k + 1]) for k in range(2)]
        score[name] = sum(b.mean_sum for b in total) / sum(b.max_sum for b in total)
    assert score["round_robin"] < score["seed"] < score["lpt"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("body", ["np.nan * {x}", "1.0", "-np.inf + 0 * {x}", "np.inf * {x}", "{x} * 1e308 * 10"])
def test_seed_frame_survives_degenerate_priorities(body: str) -> None:
    source = program_path("seed").read_text()
    for old, first in (("return load / count", "load"), ("return -expert", "item_load"),
                       ("return gpu_load", "gpu_load")):
        assert old in source
        source = source.replace(old, "return " + body.format(x=first))
    module = load("seed", source)
    windows = generate(SMALL, 3, 2, TRAIN_DRIFT, np.random.default_rng(1))
    assert check_placement(place(module, SMALL, windows[0]), SMALL, windows[1]) is None


def evolve_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=PROBLEM_DIR.parents[1])


def test_cli_eval_json_heatmap_and_solutions(tmp_path: Path) -> None:
    png, sols = tmp_path / "heat.png", tmp_path / "sols.json"
    done = evolve_cli("eval", "moe", str(program_path("seed")), "--split", "quick", "--json",
                      "--heatmap", str(png), "--solutions-out", str(sols), "--option", "timing_repeats=1")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "ok" and document["problem"] == "moe"
    metrics = document["metrics"]
    for key in ("balancedness", "runtime_ms", "wall_ms", "cpu_ms", "gap_mean_pct", "balancedness[v3]",
                "runtime_ms[v3]", "balancedness_slot", "balancedness_layer_min", "runtime_budget_ms",
                "runtime_budget_use_max"):
        assert key in metrics, key
    # The problem's lpt_guard (2): the seed is below LPT on quick, and pays twice its shortfall.
    assert metrics["lpt_shortfall"] > 0
    expected = 100 * (metrics["balancedness"] - 2 * metrics["lpt_shortfall"]) - metrics["runtime_penalty"]
    assert document["score"] == pytest.approx(expected)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    rows = json.loads(sols.read_text())
    assert [r["name"] for r in rows] == ["quick-small64-0", "quick-v3-0"]
    first = rows[0]["solution"]["placements"][0]
    phy2log = np.reshape(first["phy2log"]["values"], first["phy2log"]["shape"])
    assert phy2log.shape == (4, 72) and len(rows[0]["solution"]["wall_s"]) == 3 + 1  # timed calls
