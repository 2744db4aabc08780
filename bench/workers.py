"""How --workers scales, and where the serial parts are.

Runs the search loop on a problem whose evaluation takes ~100 ms or more
(JSSP's cascade: quick then 40 train instances, about 0.15-0.3 s of candidate
and scoring CPU per child) for each --workers count, with an instant mock model
in its own process (an OpenAI-compatible server that adds a random multiple of
a random input to the current rule's returned expression: every child is a new
rule that costs a full evaluation), or with an offline backend (--llm mutate,
whose proposals run in the controller), and prints wall time, iterations per
second and speed-up, then where the CPU of one iteration goes:

* controller, engine: the controller thread's own work (sampling, prompts,
  applying edits, duplicate checks, archive commits) -- serial;
* controller, proposals: the model calls (the HTTP client; or an offline
  backend's whole search step, in the controller's proposal threads, under its
  GIL) -- serial;
* controller, evaluation threads: with one worker the whole trusted side of an
  evaluation (driving the sandbox, verifier.score); with several, only handing
  the code to a worker process and taking its Evaluation back;
* worker processes (several workers only): driving the sandbox and the trusted
  scoring, one process per slot -- parallel;
* sandboxes: zygotes and candidate children -- parallel.

CPU times come from the kernel (thread and process clocks, /proc), count from
the start of the loop (after start-up and the seed's evaluation), and stay
meaningful on a busy machine; wall-clock speed-ups need an otherwise idle one
with at least as many cores as workers.

    python bench/workers.py [--problem jssp] [--iterations 120] [--workers 1 2 4] [--llm mock|mutate|gp]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cpu_clocks import Observed, ThreadClock  # noqa: E402
from loop_overhead import MockModel, MockServer, machine_line  # noqa: E402

from evolve import workers as worker_processes  # noqa: E402
from evolve.archive import Archive  # noqa: E402
from evolve.config import resolve_settings  # noqa: E402
from evolve.llm import make_llm  # noqa: E402
from evolve.loop import Controller  # noqa: E402
from evolve.problem import load_problem  # noqa: E402

RETURN = re.compile(r"^(\s*)return (.+)$", re.M)
MAX_EXPRESSION = 160


class RuleModel(MockModel):
    """A mock model for rule problems: adds a random multiple of a random input to the
    current program's returned expression (restarting from one input once it grows
    long), so every child is a new rule that costs a real evaluation."""

    pattern = RETURN
    inputs = ("proc_time", "job_work_left", "job_ops_left", "next_proc_time", "machine_work_left",
              "earliest_start")

    def draw(self, rng: random.Random) -> tuple[float, str, str]:
        return rng.gauss(0, self.step), rng.choice(self.inputs), rng.choice(self.inputs)

    def reply(self, match: re.Match[str], draw: tuple[float, str, str]) -> str:
        weight, name, base = draw
        indent, expression = match.groups()
        new = expression if len(expression) <= MAX_EXPRESSION else base
        return (f"Idea: weigh in {name}.\n<<<<<<< SEARCH\n{indent}return {expression}\n=======\n"
                f"{indent}return {new} + {weight:.6f} * {name}\n>>>>>>> REPLACE\n")


def run(problem_name: str, iterations: int, workers: int, llm_spec: str, seed: int) -> dict[str, float]:
    problem = load_problem(problem_name)
    settings = resolve_settings(problem.spec.run, None, {
        "iterations": iterations, "workers": workers, "concurrency": workers, "seed": seed,
        "tune_every": 0})
    observed = Observed()
    proposals = ThreadClock()
    server = MockServer(seed=seed, step=1.0, model_class=RuleModel) if llm_spec == "mock" else None
    worker_processes.make_executor, original = observed, worker_processes.make_executor
    import evolve.loop as loop_module

    loop_module.make_executor = observed  # the loop imported the name
    try:
        with tempfile.TemporaryDirectory() as tmp, server or contextlib.nullcontext() as base_url:
            if base_url is not None:
                llm = make_llm("openai/mock", api_base=base_url, seed=seed, timeout_s=30)
            else:
                llm = make_llm(llm_spec, seed=seed, rules=problem.spec.rule)
            llm.complete = proposals.wrap(llm.complete)  # type: ignore[method-assign]
            archive = Archive(Path(tmp) / "archive.sqlite", create=True)
            controller = Controller(problem, settings, archive, llm, Path(tmp))
            started = time.perf_counter()
            mark: dict[str, float] = {}

            def on_progress(p: Any) -> None:
                if "t" not in mark and p.loop_started is not None:  # the seed is in: the loop starts
                    mark.update(t=time.perf_counter(), cpu=time.process_time(), engine=p.engine_seconds,
                                proposals=proposals.seconds)
                    observed.loop_starts()
            controller.on_progress = on_progress
            progress = controller.run()
            total = time.perf_counter() - started
            process_cpu = time.process_time() - mark["cpu"]
            archive.close()
    finally:
        worker_processes.make_executor = original
        loop_module.make_executor = original
    loop_wall = total - (mark["t"] - started)
    n = max(1, progress.done)
    return {
        "workers": workers, "iterations": progress.done, "wall": total, "loop_wall": loop_wall,
        "engine": (progress.engine_seconds - mark["engine"]) / n,
        "proposals": (proposals.seconds - mark["proposals"]) / n,
        "evaluate_threads": observed.evaluate.seconds / n,
        "controller": process_cpu / n, "worker_processes": observed.workers_cpu / n,
        "sandboxes": observed.sandbox_cpu / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="jssp")
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--llm", default="mock", help="'mock' (an instant model in its own process that "
                        "edits the rule's returned expression) or any --llm spec, e.g. mutate, gp")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine_line())
    print(f"\n{args.problem}, {args.iterations} iterations, --llm {args.llm}, concurrency = workers, "
          "no constant tuning; the loop's time excludes the seed's evaluation and start-up")
    rows = []
    for workers in args.workers:
        rows.append(run(args.problem, args.iterations, workers, args.llm, args.seed))
        print(f"  workers {workers}: done, load {os.getloadavg()[0]:.2f}", flush=True)
    base = rows[0]["iterations"] / rows[0]["loop_wall"]
    print(f"\n{'workers':>7} {'wall s':>7} {'loop s':>7} {'it/s':>6} {'speed-up':>9}")
    for r in rows:
        rate = r["iterations"] / r["loop_wall"]
        print(f"{r['workers']:>7} {r['wall']:>7.1f} {r['loop_wall']:>7.1f} {rate:>6.2f} {rate / base:>8.2f}x")
    print("\nCPU per iteration (ms)")
    keys = [("engine", "controller: engine (serial)"), ("proposals", "controller: proposals (serial)"),
            ("evaluate_threads", "controller: evaluation threads"),
            ("controller", "controller process in all"),
            ("worker_processes", "worker processes (scoring, sandbox driving)"),
            ("sandboxes", "sandboxes (zygotes + candidates)")]
    print(f"{'':<46}" + "".join(f"{'w=' + str(r['workers']):>9}" for r in rows))
    for key, label in keys:
        print(f"{label:<46}" + "".join(f"{1000 * r[key]:>9.2f}" for r in rows))
    for r in rows:
        total = r["controller"] + r["worker_processes"] + r["sandboxes"]
        serial = r["engine"] + r["proposals"]
        if r["workers"] == 1:  # in one process the controller's evaluation thread holds the GIL while scoring
            serial += r["evaluate_threads"]
        share = serial / total if total else 0.0
        ceiling = 1 / (share + (1 - share) / r["workers"]) if total else 0.0
        print(f"workers {r['workers']}: serial {1000 * serial:.2f} of {1000 * total:.2f} ms CPU per iteration "
              f"({100 * share:.1f} %): at most {ceiling:.2f}x with {r['workers']} cores (Amdahl)")


if __name__ == "__main__":
    main()
