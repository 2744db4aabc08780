"""How fast the trusted MoE score is: `PYTHONPATH=. python bench/moe_scoring.py`.

For the DeepSeek-V3-like deployment (58 layers, 256 experts, 288 slots, 32
GPUs), times one placement's checks and loads from numpy arrays, and the full
``MoeVerifier.score`` of a 3-window instance from the record the trusted
harness builds (each placement unpacked from the sandbox's int64 reply into
flat lists), and prints a table with the machine, its load and versions.
"""

from __future__ import annotations

import os
import platform
import time
import types
from pathlib import Path

import numpy as np
from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.evaluators.moe import MoeVerifier
from evolve.evaluators.moe.configs import V3
from evolve.evaluators.moe.generator import TRAIN_DRIFT, generate
from evolve.evaluators.moe.harness import local_call, run_workload
from evolve.evaluators.moe.placement import check_placement, loads, parse_placement
from evolve.verifier import Instance, Reference

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 30



def timed_ms(fn: types.FunctionType) -> tuple[float, float]:
    """(median process CPU ms, best wall ms): on a shared machine wall medians measure the neighbours."""
    cpu, wall = [], []
    for _ in range(REPEATS):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return 1e3 * float(np.median(cpu)), 1e3 * min(wall)


def main() -> None:
    module = types.ModuleType("eplb")
    exec((ROOT / "problems/moe/baselines/deepseek_eplb.py").read_text(), module.__dict__)
    windows = generate(V3, 58, 4, TRAIN_DRIFT, np.random.default_rng(0))
    solution = run_workload(local_call(module.rebalance_experts), windows, V3.args(), warmup=0, repeats=0)
    arrays = [np.asarray(x) for x in module.rebalance_experts(windows[0], *V3.args())]
    verifier = MoeVerifier(ROOT / "problems" / "moe", {"timing_repeats": 0})
    data = {"windows": windows, "experts": 256, "replicas": 288, "groups": 8, "nodes": 4, "gpus": 32,
            "warmup": 0, "repeats": 0}
    instance = Instance("bench", "v3", data, Reference(1.0, "bound", "bench", 1.0))
    assert verifier.score(instance, solution).feasible

    def one_placement() -> None:
        placement, why = parse_placement(arrays, V3, 58)
        assert placement is not None and why is None
        assert check_placement(placement, V3, windows[1]) is None
        loads(placement, V3, windows[1])

    placement = timed_ms(one_placement)
    score = timed_ms(lambda: verifier.score(instance, solution))
    width = solution["placements"][0]["log2phy"]["shape"][2]
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.system()} "
          f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; "
          f"{REPEATS} repeats")
    print(f"deployment: V3-like, 58 layers x 256 experts, 288 slots on 32 GPUs (log2phy width {width})")
    print(f"{'what':<56} {'median CPU ms':>14} {'best wall ms':>13}")
    rows = [("one placement from arrays: checks + GPU loads", placement),
            ("score(): 3 placements from the harness's record", score),
            ("  per placement", (score[0] / 3, score[1] / 3))]
    for what, (cpu, wall) in rows:
        print(f"{what:<56} {cpu:14.2f} {wall:13.2f}")

if __name__ == "__main__":
    main()
