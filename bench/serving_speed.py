"""Speed of the serving simulator: 10,000 requests on one core.

    python bench/serving_speed.py [--requests 10000] [--repeat 3]

Times the trusted simulation driven by a policy (FCFS, asked in-process through
the same ``respond`` as the sandbox, once per step with a real choice; the
sandbox round trip is measured by bench/serving_trace.py) and the score of its
record, on synthetic conversation traces at a realistic load (0.9 of nominal
capacity) and in overload (1.3), and prints a markdown table with the machine
and versions.  Target: FCFS on 10,000 requests at a realistic load in under 2 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from evolve.evaluators.serving.engine import Trace
from evolve.evaluators.serving.policy import fcfs_priority
from evolve.evaluators.serving.session import local_decide
from evolve.evaluators.serving.verifier import ServingVerifier
from evolve.evaluators.serving.workload import WorkloadSpec, generate

PROBLEM = Path(__file__).resolve().parents[1] / "problems" / "serving"


def best_of(repeat: int, func):  # noqa: ANN001, ANN201
    times, result = [], None
    for _ in range(repeat):
        started = time.process_time()  # CPU time: the machine is shared
        result = func()
        times.append(time.process_time() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    verifier = ServingVerifier(PROBLEM, {})
    print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"engine: {verifier.opts.describe()}\n")
    print("| workload | requests | steps | policy calls | simulate s | req/s | steps/s | score s |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, arrivals, load in (("conversation", "poisson", 0.9), ("conversation", "poisson", 1.3),
                                 ("mixed", "bursty", 1.0)):
        spec = WorkloadSpec(kind, arrivals, load, args.requests, 7)
        trace: Trace = generate(spec, verifier.opts.engine, verifier.opts.predictor_noise, verifier.secret)
        instance = verifier.make_instance(spec.name, kind, trace, "bench")
        decide = local_decide(ServingVerifier.respond, fcfs_priority)
        sim_s, record = best_of(args.repeat, lambda: verifier.simulate(instance, decide))  # noqa: B023
        score_s, result = best_of(args.repeat, lambda: verifier.score(instance, record))  # noqa: B023
        assert result.feasible, result.error
        steps = int(record["steps"])
        print(f"| {kind} {arrivals} load {load} | {args.requests} | {steps} | {record['policy_calls']} | "
              f"{sim_s:.2f} | {args.requests / sim_s:,.0f} | {steps / sim_s:,.0f} | {score_s:.3f} |")

if __name__ == "__main__":
    main()
