"""Seconds per policy on a 19,366-request Azure-conversation-like trace, with the shipped settings.

    python bench/serving_trace.py [--trace FILE.csv] [--option KEY=VALUE ...] [--step-by-step]

Generates the trace (``bench/azure_like.py``: no third-party data) unless one is
given, loads it as ``evolve eval serving PROGRAM --trace FILE`` does (the FCFS
reference run is part of that, once per trace), then evaluates shipped policies
through the real path: ``Evaluator.run_split``, one sandbox session, the trusted
simulation asking the sandboxed policy at each step with a choice.  It prints,
per policy: wall seconds of the evaluation, this process's CPU seconds (the
trusted simulation and scoring), the candidate's CPU seconds (the child's, as
the kernel counts them), the number of policy calls and their round trip.

``--step-by-step`` also times the trusted FCFS run with event-driven time
advance turned off (one Python iteration per engine step).  The figures of the
code before issue 11 (main at 8b45062) are printed as recorded by
``bench/serving_trace_before.py``, which says how to rerun them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from azure_like import write_trace  # bench/ is on sys.path when this script runs
from machine import cpu_model

from evolve.config import RunSettings
from evolve.evaluation import Evaluator, limits_from
from evolve.evaluators.serving.engine import EngineConfig, Trace, run_engine
from evolve.evaluators.serving.policy import PolicyDecider, fcfs_ask
from evolve.problem import load_problem, parse_options
from evolve.sandbox import Sandbox

POLICIES = ("fcfs", "shortest_prompt", "sjf_predicted")
BEFORE = ("before (main at 8b45062, bench/serving_trace_before.py on the same trace, load 5.6): 35.2-36.9 s "
          "CPU per policy: FCFS reference 12-13 s + candidate simulation in the sandbox 11-12 s + trusted "
          "replay 11-13 s (535,260 engine steps, three times); `evolve eval serving fcfs.py --trace` timed out "
          "after 8.0 s")


class TimedSession:
    """Passes calls through to the real session and keeps each reply's timing."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @property
    def source(self) -> str:
        return self.session.source

    def call(self, payload: Any, reply_limit: int | None = None) -> Any:
        reply = self.session.call(payload, reply_limit)
        self.wall.append(reply.wall_seconds)
        self.cpu.append(reply.cpu_seconds)
        return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", type=Path, help="a CSV trace (default: generate the Azure-like one)")
    parser.add_argument("--option", action="append", default=[], help="verifier option KEY=VALUE")
    parser.add_argument("--policy", action="append", help=f"baselines to run (default: {', '.join(POLICIES)})")
    parser.add_argument("--step-by-step", action="store_true", help="also time the engine without stretches")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.trace or write_trace(Path(tmp) / "azure_conv_like.csv")
        problem = load_problem("serving").with_options(parse_options(args.option))
        c0, w0 = time.process_time(), time.perf_counter()
        instances = problem.instances("train", path)  # prints the offered load on stderr
        load_cpu, load_wall = time.process_time() - c0, time.perf_counter() - w0
    (instance,) = instances
    data = instance.data
    print(f"trace: {len(data['trace']['arrival']):,} requests; engine: {problem.verifier.opts.describe()}")
    print(f"load + FCFS reference (once per trace, cached): {load_cpu:.2f} s CPU, {load_wall:.2f} s wall; "
          f"FCFS had a choice at {data['reference_decisions']:,} steps\n")
    print("| policy | status | seconds (wall) | trusted CPU s | candidate CPU s | policy calls | "
          "round trip us (median) | candidate CPU us/call |")
    print("|---|---|---|---|---|---|---|---|")
    settings = RunSettings.model_validate(problem.spec.run).sandbox
    sandbox = Sandbox(problem.spec.verifier.entry, limits_from(settings), extra_sys_path=problem.sys_path)
    with Evaluator(problem, settings) as evaluator, sandbox:
        evaluator.run_split(problem.baselines["fcfs"].read_text(), problem.instances("quick"), "quick")  # warm-up
        for name in args.policy or POLICIES:
            code = problem.baselines[name].read_text()
            c0, w0 = time.process_time(), time.perf_counter()
            evaluation = evaluator.run_split(code, instances, "trace")
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            (result,) = evaluation.instances
            calls = int(evaluation.solutions[0].get("policy_calls", 0)) if evaluation.solutions else 0
            timed = per_call(sandbox, problem, code, instance)
            print(f"| {name} | {evaluation.status} | {wall:.2f} | {cpu:.2f} | {result.seconds or 0:.2f} | "
                  f"{calls:,} | {timed[0]:.0f} | {timed[1]:.0f} |", flush=True)
    if args.step_by_step:
        trace = Trace.from_data(data["trace"])
        cfg = EngineConfig.from_data(data["engine"])
        for event_driven in (True, False):
            c0 = time.process_time()
            engine = run_engine(cfg, trace, PolicyDecider(fcfs_ask), 10**9, event_driven)
            label = "event-driven" if event_driven else "step by step"
            print(f"\ntrusted FCFS run, {label}: {time.process_time() - c0:.2f} s CPU ({engine.steps:,} steps)",
                  end="")
        print()
    print(f"\n{BEFORE}")


def per_call(sandbox: Sandbox, problem: Any, code: str, instance: Any) -> tuple[float, float]:
    """(median round trip us, median candidate CPU us) of the policy calls, from one more run."""
    with sandbox.session(code, problem.spec.function.name, timeout_s=600) as session:
        timed = TimedSession(session)
        problem.verifier.interact(instance, timed)
    if not timed.wall:
        return 0.0, 0.0
    return 1e6 * statistics.median(timed.wall), 1e6 * statistics.median(timed.cpu)


if __name__ == "__main__":
    sys.exit(main())
