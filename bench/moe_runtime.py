"""Runtime of MoE balancers on the V3-like deployment, measured two ways in one run.

    python bench/moe_runtime.py [--program runs/x/best.py ...] [--calls 20]

1. the verifier's own measurement: the trusted harness (``run_workload``) calls
   the program in a real sandbox session and reads each call's CPU time from the
   kernel's clock of the candidate's process, and its round-trip wall time;
2. a fresh interpreter runs the program N times and then 0 times; the per-call
   CPU time is the difference of the child's rusage (user + system, read by
   this process with ``os.wait4``) divided by N: the same program timed by
   another route, without the sandbox (see docs/moe.md).

Speed-ups are ratios to DeepSeek's EPLB measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evolve.evaluators.moe.configs import V3
from evolve.evaluators.moe.generator import TRAIN_DRIFT, generate
from evolve.evaluators.moe.harness import run_workload, session_call
from evolve.sandbox import Sandbox, SandboxLimits

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT / "problems" / "moe" / "baselines"
RUNNER = """
import sys, numpy as np
from evolve.evaluators.moe.configs import V3
from evolve.evaluators.moe.generator import TRAIN_DRIFT, generate
windows = generate(V3, 58, 2, TRAIN_DRIFT, np.random.default_rng(1))
namespace = {}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), namespace)
rng = np.random.default_rng(2)
for _ in range(int(sys.argv[2])):
    weight = np.rint(windows[0] * np.exp(rng.normal(0, 0.05, windows[0].shape))).astype(np.int64)
    namespace["rebalance_experts"](weight, *V3.args())
"""


def kernel_cpu(path: Path, calls: int) -> tuple[float, float]:
    """(CPU seconds by rusage, wall seconds) of a fresh interpreter making ``calls`` calls."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(path), str(calls)], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{path}: the runner failed with status {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def harness(sandbox: Sandbox, path: Path, calls: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms) per call, as the verifier measures them."""
    windows = generate(V3, 58, 2, TRAIN_DRIFT, np.random.default_rng(1))
    with sandbox.session(path.read_text(), "rebalance_experts", timeout_s=600) as session:
        out = run_workload(session_call(session), windows, V3.args(), warmup=1, repeats=calls)
    return 1e3 * float(np.median(out["wall_s"])), 1e3 * float(np.median(out["cpu_s"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/moe_runtime.py", description=__doc__.split("\n")[0])
    parser.add_argument("--program", type=Path, action="append", default=[])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)
    programs = [("deepseek_eplb", BASELINES / "deepseek_eplb.py"), ("lpt", BASELINES / "lpt.py"),
                ("seed", ROOT / "problems" / "moe" / "seed.py"), ("round_robin", BASELINES / "round_robin.py")]
    programs += [(str(p), p) for p in args.program]
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; V3-like deployment (58 layers, 256 experts, "
          f"288 slots, 32 GPUs); {args.calls} calls")
    print(f"{'program':<28} {'session wall ms':>15} {'session CPU ms':>15} {'fresh CPU ms':>14} "
          f"{'speed-up (session CPU)':>22}")
    base = None
    sandbox = Sandbox("evolve.evaluators.moe:MoeVerifier", SandboxLimits(timeout_s=600, max_processes=1))
    for name, path in programs:
        wall_ms, cpu_ms = harness(sandbox, path, args.calls)
        with_calls, _ = kernel_cpu(path, args.calls)
        without, _ = kernel_cpu(path, 0)
        kernel_ms = max(0.0, with_calls - without) / args.calls * 1e3
        base = cpu_ms if base is None else base
        speedup = base / cpu_ms if cpu_ms > 0 else float("inf")
        print(f"{name:<28} {wall_ms:15.2f} {cpu_ms:15.2f} {kernel_ms:14.2f} {speedup:21.2f}x")
    sandbox.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
