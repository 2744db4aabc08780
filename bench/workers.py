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

Then the loop's two ends, which no worker count shares out: the time to the first
evaluation (the first prompts and model calls), the last evaluation running while the other
slots have nothing left, and after it the executor's close (each worker process closes its
sandbox and exits), all inside the loop's wall as a user waits for them.

Then the machine's own ceiling: the same CPU-bound work as a candidate's (the
problem's sandbox-side solve with its seed program over the train instances, in
plain processes, no sandbox, no engine) in 1 process alone and in N independent
processes at once, in interleaved rounds. Its speed-up bounds what any --workers N
can reach here: on a shared VM two busy cores each run slower than one (the
hypervisor, shared caches, other tenants), whatever the program does.

Then the executors' ceiling: the first run's evaluations (the same children, the same
parents' quick scores, the same cascade) replayed by the loop's own executor with 1 slot,
then with N slots at once (worker processes, full sandbox), from N threads as the loop's
evaluation threads, with no engine and no model. The loop's speed-up against this one is
what the engine and the model cost on the same cores; this one against the plain ceiling,
what an evaluation's own processes cost there (the sandbox's forks and clean-ups, which with
one slot run on the idle core, and the trusted side's turns with the candidate).

    python bench/workers.py [--problem jssp] [--iterations 120] [--workers 1 2 4] [--llm mock|mutate|gp]
                            [--ceiling-passes 15] [--ceiling-rounds 3] [--replay 40] [--no-lookahead]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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


def run(problem_name: str, iterations: int, workers: int, llm_spec: str, seed: int,
        lookahead: bool = True, replay: list[tuple[Any, ...]] | None = None) -> dict[str, float]:
    """One run of the loop; ``replay``, if given, receives the arguments of its evaluations."""
    replay = [] if replay is None else replay
    problem = load_problem(problem_name)
    settings = resolve_settings(problem.spec.run, None, {
        "iterations": iterations, "workers": workers, "concurrency": workers, "seed": seed,
        "tune_every": 0, "lookahead": lookahead})
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
            ended = time.perf_counter()
            total = ended - started
            process_cpu = time.process_time() - mark["cpu"]
            archive.close()
    finally:
        worker_processes.make_executor = original
        loop_module.make_executor = original
    loop_wall = total - (mark["t"] - started)
    n = max(1, progress.done)
    ends = sorted(end for _, end in observed.spans) or [ended]
    replay.extend(observed.calls)
    return {
        # the loop's ends: to the first evaluation's start; the last one's with fewer slots busy
        # (from the end of the last evaluation of another slot); after it, the executor's close
        "first": min((b for b, _ in observed.spans), default=ended) - mark["t"],
        "fewer": ends[-1] - ends[-workers] if workers > 1 and len(ends) >= workers else 0.0,
        "after": ended - ends[-1], "close": observed.close_wall,
        "workers": workers, "iterations": progress.done, "wall": total, "loop_wall": loop_wall,
        "engine": (progress.engine_seconds - mark["engine"]) / n,
        "proposals": (proposals.seconds - mark["proposals"]) / n,
        "evaluate_threads": observed.evaluate.seconds / n,
        "evaluate_wall": observed.evaluate.wall / n,
        "controller": process_cpu / n, "worker_processes": observed.workers_cpu / n,
        "sandboxes": observed.sandbox_cpu / n,
    }


def _ceiling_worker(problem_name: str, passes: int, start: Any, conn: Any) -> None:
    """``passes`` times the candidate side's work on the train split, after a warm-up pass:
    sends (wall seconds, CPU seconds)."""
    problem = load_problem(problem_name)
    solve = type(problem.verifier).solve
    instances = problem.instances("train")
    namespace: dict[str, Any] = {}
    exec(compile(problem.seed_code, "seed", "exec"), namespace)
    rule = namespace[problem.spec.function.name]
    for instance in instances:
        solve(rule, instance)
    start.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(passes):
        for instance in instances:
            solve(rule, instance)
    conn.send((time.perf_counter() - wall, time.process_time() - cpu))


def run_together(problem_name: str, passes: int, processes: int) -> list[tuple[float, float]]:
    """(wall, CPU) of each of ``processes`` independent processes doing the same work at once."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    pipes, procs = [], []
    for _ in range(processes):
        ours, theirs = context.Pipe()
        proc = context.Process(target=_ceiling_worker, args=(problem_name, passes, start, theirs))
        proc.start()
        pipes.append(ours)
        procs.append(proc)
    start.wait()  # every process has loaded and warmed up: they start together
    results = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join()
    return results


def machine_ceiling(problem_name: str, passes: int, rounds: int, most: int) -> None:
    """Print the machine's own speed-up for ``most`` processes (1 alone, then ``most`` at once,
    interleaved ``rounds`` times): what fraction of the ideal the cores allow."""
    print(f"\nthis machine's ceiling: {passes} passes of the candidate side's work ({problem_name} seed rule "
          f"over the train split) in plain processes, 1 alone then {most} at once, {rounds} interleaved rounds")
    print(f"{'round':>5} {'load':>5} {'1: wall s':>10} {'CPU s':>6} {f'{most}: wall s':>10} {'CPU s':>6} "
          f"{'speed-up':>9} {'CPU vs alone':>13}")
    speedups, slowdowns = [], []
    for k in range(1, rounds + 1):
        load = os.getloadavg()[0]
        (alone_wall, alone_cpu), = run_together(problem_name, passes, 1)
        together = run_together(problem_name, passes, most)
        wall = max(w for w, _ in together)
        cpu = statistics.mean(c for _, c in together)
        speedup = most * alone_wall / wall
        speedups.append(speedup)
        slowdowns.append(cpu / alone_cpu)
        print(f"{k:>5} {load:>5.2f} {alone_wall:>10.2f} {alone_cpu:>6.2f} {wall:>10.2f} {cpu:>6.2f} "
              f"{speedup:>8.2f}x {100 * (cpu / alone_cpu - 1):>+12.1f}%")
    print(f"median: {statistics.median(speedups):.2f}x of the ideal {most}x "
          f"({100 * statistics.median(speedups) / most:.0f} %); each process's CPU per pass "
          f"{100 * (statistics.median(slowdowns) - 1):+.1f} % when {most} run at once (same work: the cores, "
          "not the program, are slower)")


def _replay_once(problem_name: str, workers: int, calls: list[tuple[Any, ...]]) -> tuple[float, float]:
    """(wall, CPU of the slots) of ``calls`` evaluated by the loop's own executor for ``workers``
    (in this process for 1, worker processes for more), from ``workers`` threads as the loop's
    evaluation threads: everything an evaluation costs, without the engine or a model."""
    problem = load_problem(problem_name)
    settings = resolve_settings(problem.spec.run, None, {"workers": workers, "concurrency": workers})
    splits = {"quick": problem.instances("quick"), "train": problem.instances("train")}
    observed = Observed()
    with tempfile.TemporaryDirectory() as tmp:
        executor = observed(problem, settings, splits, [Path(tmp)])
        try:
            with ThreadPoolExecutor(workers) as pool:  # each slot warm, as after the seed's evaluation
                list(pool.map(lambda _: executor.run_split(problem.seed_code, "quick"), range(workers)))
                observed.loop_starts()
                started, cpu = time.perf_counter(), time.process_time()
                list(pool.map(lambda args: executor.evaluate(*args), calls))
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            executor.close()
    return wall, cpu + observed.workers_cpu + observed.sandbox_cpu


def executor_ceiling(problem_name: str, calls: list[tuple[Any, ...]], rounds: int, most: int) -> None:
    """Print the speed-up of the loop's executors alone: the first run's evaluations (the same
    children, parents' quick scores and cascade) replayed by 1 slot, then by ``most`` slots at
    once, interleaved ``rounds`` times. The sandbox, its processes and the trusted scoring are
    in it; the engine, the model and their CPU on the same cores are not: the loop's speed-up
    over this one is what the engine costs, this one under the plain ceiling what the
    evaluation's own processes (the zygote's forks and clean-ups, the trusted side's turns) do."""
    print(f"\nthe executors' ceiling: the first run's {len(calls)} evaluations replayed by the loop's executor "
          f"(full sandbox), 1 slot then {most} at once, no engine and no model, {rounds} interleaved rounds")
    print(f"{'round':>5} {'load':>5} {'1: wall s':>10} {'CPU s':>6} {f'{most}: wall s':>10} {'CPU s':>6} "
          f"{'speed-up':>9} {'CPU vs alone':>13}")
    speedups = []
    for k in range(1, rounds + 1):
        load = os.getloadavg()[0]
        alone_wall, alone_cpu = _replay_once(problem_name, 1, calls)
        wall, cpu = _replay_once(problem_name, most, calls)
        speedups.append(alone_wall / wall)
        print(f"{k:>5} {load:>5.2f} {alone_wall:>10.2f} {alone_cpu:>6.2f} {wall:>10.2f} {cpu:>6.2f} "
              f"{alone_wall / wall:>8.2f}x {100 * (cpu / alone_cpu - 1):>+12.1f}%")
    print(f"executors' median: {statistics.median(speedups):.2f}x of the ideal {most}x")


def speedup_parts(rows: list[dict[str, float]]) -> None:
    """Split each speed-up over the first row into its factors, exactly:
    N x (slots busy, against the first row's) x (wall of one evaluation, the first row's over this
    one's), and the latter into the candidate side's CPU for the same work (the cores'
    speed, or contention in the program) and the share of an evaluation's wall it is on a
    core (the rest: waiting for a core, a lock, a pipe)."""
    print("\nwhere the speed-up goes: N x slots busy x one evaluation's wall (CPU x on-core share)")
    print(f"{'workers':>7} {'slots busy':>11} {'eval wall ms/it':>16} {'eval CPU ms/it':>15} {'CPU/wall':>9}")
    parts = []
    for r in rows:
        busy = r["evaluate_wall"] * r["iterations"] / (r["loop_wall"] * r["workers"])
        cpu = r["evaluate_threads"] + r["worker_processes"] + r["sandboxes"]  # the candidate side, all of it
        parts.append((busy, r["evaluate_wall"], cpu))
        print(f"{r['workers']:>7} {100 * busy:>10.1f}% {1000 * r['evaluate_wall']:>16.2f} {1000 * cpu:>15.2f} "
              f"{cpu / r['evaluate_wall']:>9.2f}")
    busy0, wall0, cpu0 = parts[0]
    for r, (busy, wall, cpu) in zip(rows[1:], parts[1:], strict=True):
        n = r["workers"] / rows[0]["workers"]
        on_core = (cpu / wall) / (cpu0 / wall0)
        print(f"workers {r['workers']}: {n:.0f} x {busy / busy0:.3f} (slots busy) x {wall0 / wall:.3f} (one "
              f"evaluation's wall: CPU {cpu0 / cpu:.3f}, i.e. {100 * (cpu / cpu0 - 1):+.1f} % CPU for the same "
              f"work, x on-core share {on_core:.3f}) = {n * busy / busy0 * wall0 / wall:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="jssp")
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--llm", default="mock", help="'mock' (an instant model in its own process that "
                        "edits the rule's returned expression) or any --llm spec, e.g. mutate, gp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ceiling-passes", type=int, default=15,
                        help="passes over the train split per process in the machine's ceiling (0: skip it)")
    parser.add_argument("--ceiling-rounds", type=int, default=3)
    parser.add_argument("--replay", type=int, default=40,
                        help="evaluations of the first run replayed by the executors alone, 1 slot then the most "
                             "(0: skip it); as many rounds as --ceiling-rounds")
    parser.add_argument("--no-lookahead", action="store_true",
                        help="no request sent ahead while every slot evaluates (the loop before lookahead)")
    args = parser.parse_args()
    print(machine_line())
    print(f"\n{args.problem}, {args.iterations} iterations, --llm {args.llm}, concurrency = workers, "
          f"lookahead {'off' if args.no_lookahead else 'on'}, no constant tuning; the loop's time excludes "
          "the seed's evaluation and start-up")
    rows: list[dict[str, float]] = []
    calls: list[tuple[Any, ...]] = []
    for workers in args.workers:
        rows.append(run(args.problem, args.iterations, workers, args.llm, args.seed, not args.no_lookahead,
                        None if calls else calls))
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
    speedup_parts(rows)
    print("\nthe loop's two ends (s): to the first evaluation; the last one running with fewer than all "
          "slots busy; after it (of which the executor's close: worker processes or sandboxes exiting)")
    print(f"{'workers':>7} {'loop s':>7} {'first':>6} {'fewer':>6} {'after':>6} {'close':>6} {'share':>6}")
    for r in rows:
        lost = r["first"] + r["fewer"] * (r["workers"] - 1) / r["workers"] + r["after"]
        print(f"{r['workers']:>7} {r['loop_wall']:>7.2f} {r['first']:>6.3f} {r['fewer']:>6.3f} {r['after']:>6.3f} "
              f"{r['close']:>6.3f} {100 * lost / r['loop_wall']:>5.1f}%")
    most = max(args.workers)
    if args.ceiling_passes > 0 and args.ceiling_rounds > 0 and most > 1:
        machine_ceiling(args.problem, args.ceiling_passes, args.ceiling_rounds, most)
    if args.replay > 0 and args.ceiling_rounds > 0 and most > 1 and calls:
        executor_ceiling(args.problem, calls[:args.replay], args.ceiling_rounds, most)


if __name__ == "__main__":
    main()
