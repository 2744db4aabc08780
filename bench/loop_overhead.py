"""Per-iteration overhead as the population grows: evolve next to OpenEvolve on one mock model.

The mock model is an OpenAI-compatible server in its own process (as a real
model server is) that answers at once, or after --latency-ms, with a
SEARCH/REPLACE edit of bench/tiny_problem (evaluation ~0.05 ms): it moves the
parent's constant by a random Gaussian step (sd --step, seeded). Like a real
model's proposals, a child is sometimes better and more often worse than its
parent, so a framework that keeps its population (OpenEvolve, up to its
population_size) sees it grow. (An earlier mock answered every prompt with a
constant closer to the target than all before it: every child beat every
program, OpenEvolve deleted each program it displaced, and its population never
grew.)

evolve runs through its real OpenAI-compatible backend with full sandbox
isolation. Printed per window of --window iterations: wall milliseconds per
iteration (from the arrival times of the model requests, so both frameworks are
measured the same way), the population (evolve: programs in the archive, which
keeps all; OpenEvolve: programs in its database), CPU milliseconds per iteration
of each framework's own processes (kernel clocks, not the model server's: they
stay meaningful on a busy machine), evolve's engine CPU per iteration (the
controller thread's own work) and resident memory; then evolve's CPU per
iteration by part, and both ratios at ~100, ~1,000 and ~3,000 programs.

    python bench/loop_overhead.py [--iterations 3200] [--window 100] [--latency-ms 0]
                                  [--openevolve-config ours|default] [--skip-openevolve] [--no-lookahead]

OpenEvolve 0.4.0 is not a dependency: pip install openevolve==0.4.0 to compare.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import re
import sys
import tempfile
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cpu_clocks import Observed, ThreadClock, proc_cpu, process_tree_cpu, voluntary_switches  # noqa: E402
from machine import cpu_model  # noqa: E402

from evolve import loop as loop_module  # noqa: E402
from evolve.archive import Archive  # noqa: E402
from evolve.config import resolve_settings  # noqa: E402
from evolve.llm import make_llm  # noqa: E402
from evolve.loop import Controller, Progress  # noqa: E402
from evolve.problem import load_problem  # noqa: E402
from tests.llm_server import FakeLLMServer, ok  # noqa: E402

CONSTANT = re.compile(r"^(\s*)return x \* (\S+)$", re.M)
# Both frameworks head the parent's code "Current program" (ours "# Current program (#N): ...").
CURRENT = re.compile(r"^#+ Current Program\b.*$", re.I | re.M)
MARKS = (100, 1000, 3000)  # populations at which the ratio is reported
CPU_PARTS = (  # (key, what it is): CPU per iteration, from the kernel's clocks
    ("engine", "controller thread: sampling, prompt, edit, duplicate check, archive commit"),
    ("client", "model calls in proposal threads (one sent ahead is sent and read by the controller thread)"),
    ("evaluation", "evaluation thread: driving the sandbox, trusted scoring"),
    ("controller", "controller process in all (the three above, other threads, GC)"),
    ("sandboxes", "sandbox: zygote and candidate children"),
    ("server", "the mock model server's process (not evolve's)"),
)


class MockModel:
    """Answers a prompt with a random step of the current program's constant."""

    pattern = CONSTANT  # what it edits in the current program

    def __init__(self, latency_s: float, step: float, seed: int) -> None:
        self.latency_s, self.step = latency_s, step
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.arrivals: list[float] = []

    def __call__(self, body: dict) -> object:
        arrived = time.monotonic()
        prompt = body["messages"][-1]["content"]
        heads = list(CURRENT.finditer(prompt))
        match = self.pattern.search(prompt, heads[-1].end() if heads else 0)
        with self._lock:
            self.arrivals.append(arrived)
            draw = self.draw(self._rng)
        if match is None:
            return ok("no idea", delay_s=self.latency_s)
        return ok(self.reply(match, draw), prompt_tokens=len(prompt) // 4, completion_tokens=30,
                  delay_s=self.latency_s)

    def draw(self, rng: random.Random) -> Any:
        return rng.gauss(0.0, self.step)

    def reply(self, match: re.Match[str], step: float) -> str:
        indent, old = match.groups()
        try:
            new = float(old) + step
        except ValueError:
            new = 1.0 + step
        return (f"Idea: try another constant.\n<<<<<<< SEARCH\n{indent}return x * {old}\n=======\n"
                f"{indent}return x * {new:.6f}\n>>>>>>> REPLACE\n")


def _serve(model_class: type, args: tuple[Any, ...], conn: Any) -> None:
    model = model_class(*args)
    with FakeLLMServer(responder=model, keep_requests=False) as server:
        conn.send(server.base_url)
        conn.recv()  # until told to stop
        conn.send(model.arrivals)


class MockServer:
    """A mock model (``model_class(*args)``, answering request bodies and keeping their
    ``arrivals``) in a process of its own; ``arrivals`` (monotonic times) after the block."""

    def __init__(self, latency_ms: float = 0.0, step: float = 0.5, seed: int = 0,
                 model_class: type = MockModel) -> None:
        self._model = (model_class, (latency_ms / 1000, step, seed))
        self.arrivals: list[float] = []

    def __enter__(self) -> str:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self._proc = context.Process(target=_serve, args=(*self._model, theirs), daemon=True)
        self._proc.start()
        return str(self._conn.recv())

    @property
    def pid(self) -> int | None:
        return getattr(self, "_proc", None) and self._proc.pid

    def cpu_seconds(self) -> float:
        """CPU the server process has used so far."""
        return proc_cpu(self.pid) if self.pid else 0.0

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self.arrivals = sorted(self._conn.recv())
        self._proc.join(10)


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_line() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Linux {platform.release()}, load avg {load}\n"
            f"python {platform.python_version()}, evolve {_version('evolve')}, openai {_version('openai')}, "
            f"openevolve {_version('openevolve')}")


def run_loop(
    iterations: int, latency_ms: float = 0.0, concurrency: int = 1, workers: int = 1,
    window: int = 100, extra: dict | None = None, options: dict | None = None, step: float = 0.5,
    cpu: dict[str, float] | None = None, window_cpu: dict[int, float] | None = None,
    switches: dict[str, float] | None = None,
) -> tuple[Progress, float, int, list[tuple[int, int, float, float, float]], list[float]]:
    """One run of the loop on the tiny problem against the mock model.

    Returns (progress, wall seconds, programs archived, per-window rows of
    (iterations, programs, wall ms/it, engine ms/it, RSS MiB), model-request arrivals).
    ``cpu``, if given, receives CPU seconds per iteration by part (see ``CPU_PARTS``),
    counted from the loop's start (after start-up and the seed's evaluation); ``window_cpu``
    the CPU milliseconds per iteration of each window (controller and sandbox processes,
    not the model server), keyed by iterations done; ``switches`` the voluntary context switches
    per iteration of the controller process's threads, by role (``voluntary_switches``)."""
    problem = load_problem(str(REPO / "bench" / "tiny_problem")).with_options(options or {})
    overrides = {"iterations": iterations, "concurrency": concurrency, "workers": workers, **(extra or {})}
    settings = resolve_settings(problem.spec.run, None, overrides)
    rows: list[tuple[int, int, float, float, float]] = []
    mark = {"t": time.perf_counter(), "engine": 0.0, "done": 0, "cpu": 0.0}
    holder: dict[str, Archive] = {}

    observed, client = Observed(), ThreadClock()
    server = MockServer(latency_ms, step)
    start: dict[str, float] = {}
    start_switches: dict[str, int] = {}

    def clocks(p: Progress) -> dict[str, float]:
        return {"engine": p.engine_seconds, "client": client.seconds, "evaluation": observed.evaluate.seconds,
                "controller": time.process_time(), "server": server.cpu_seconds()}

    def on_progress(p: Progress) -> None:
        if not start and p.loop_started is not None:  # the seed is in: the loop starts
            start.update(clocks(p), done=p.done)
            start_switches.update(voluntary_switches())
            mark["cpu"] = process_tree_cpu(exclude=server.pid)
            observed.loop_starts()
        if cpu is not None and p.done == iterations:
            start["n"] = max(1, p.done - start.get("done", 0))
            cpu.update({k: (v - start.get(k, 0.0)) / start["n"] for k, v in clocks(p).items()})
            if switches is not None:
                switches.update({k: (v - start_switches.get(k, 0)) / start["n"]
                                 for k, v in voluntary_switches().items()})
        if p.done == mark["done"] or p.done % window:
            return
        now, n = time.perf_counter(), p.done - mark["done"]
        wall = 1000 * (now - mark["t"]) / n
        engine = 1000 * (p.engine_seconds - mark["engine"]) / n
        rows.append((p.done, holder["archive"].program_count(), wall, engine, rss_mib()))
        used = process_tree_cpu(exclude=server.pid)
        if window_cpu is not None:
            window_cpu[p.done] = 1000 * (used - mark["cpu"]) / n
        mark.update(t=now, engine=p.engine_seconds, done=p.done, cpu=used)

    loop_module.make_executor = observed  # the loop imported the name
    try:
        with tempfile.TemporaryDirectory() as tmp, server as base_url:
            archive = holder["archive"] = Archive(Path(tmp) / "archive.sqlite", create=True)
            llm = make_llm("openai/bench", api_base=base_url, timeout_s=30)
            llm.complete = client.wrap(llm.complete)  # type: ignore[method-assign]
            started = time.perf_counter()
            progress = Controller(problem, settings, archive, llm, Path(tmp), on_progress=on_progress).run()
            total = time.perf_counter() - started
            programs = archive.program_count()
            archive.close()
    finally:
        loop_module.make_executor = observed.make
    if cpu is not None and "n" in start:
        cpu["sandboxes"] = (observed.sandbox_cpu + observed.workers_cpu) / start["n"]
    return progress, total, programs, rows, server.arrivals


def arrival_windows(arrivals: list[float], window: int) -> list[tuple[int, float]]:
    """(iterations so far, wall ms per iteration) from model-request arrival times."""
    return [(end, 1000 * (arrivals[end] - arrivals[end - window]) / window)
            for end in range(window, len(arrivals), window)]


EVALUATOR = """
import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": -abs(float(module.f(1.0)) - 7.0)}
"""

# What both configurations need to reach the mock model.
OPENEVOLVE_LLM = """
max_iterations: {iterations}
log_level: WARNING
llm:
  api_base: "{api_base}"
  api_key: "EMPTY"
  models:
    - name: "bench"
      weight: 1.0
  timeout: 30
  retries: 1
  retry_delay: 1
"""
# "ours": the population may hold every program of the run (as evolve's archive does), 4 islands
# (as the tiny problem), no cascade, one evaluation at a time (as --workers 1).
OPENEVOLVE_CONFIGS = {
    "ours": OPENEVOLVE_LLM + """random_seed: 0
database:
  population_size: {iterations}
  num_islands: 4
evaluator:
  timeout: 30
  cascade_evaluation: false
  parallel_evaluations: 1
""",
    "default": OPENEVOLVE_LLM,  # OpenEvolve's own defaults: population_size 1000, 5 islands, cascade on
}


def run_openevolve(
    iterations: int, latency_ms: float, config: str = "ours", step: float = 0.5, window: int = 0,
    cpu: list[float] | None = None,
) -> tuple[float, list[float], list[tuple[float, int]]]:
    """OpenEvolve on the same tiny problem against the same mock model.

    Returns (wall seconds, model-request arrivals, (time, population) before each iteration);
    ``cpu`` receives its processes' CPU seconds before every ``window``-th iteration."""
    cpu = cpu if cpu is not None else []
    import logging

    from openevolve.api import run_evolution
    from openevolve.process_parallel import ProcessParallelController

    logging.disable(logging.WARNING)
    population: list[tuple[float, int]] = []
    original = ProcessParallelController._create_database_snapshot
    server = MockServer(latency_ms, step)

    def observed(self: Any) -> dict:  # read-only: how many programs it holds, once per iteration
        if window and len(population) % window == 0:  # and its CPU (with its workers'), once per window
            cpu.append(process_tree_cpu(exclude=server.pid))
        population.append((time.monotonic(), len(self.database.programs)))
        return original(self)

    ProcessParallelController._create_database_snapshot = observed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp, server as base_url:
            folder = Path(tmp)
            (folder / "evaluator.py").write_text(EVALUATOR)
            path = folder / "config.yaml"
            path.write_text(OPENEVOLVE_CONFIGS[config].format(iterations=iterations, api_base=base_url))
            started = time.perf_counter()
            run_evolution(
                initial_program=str(REPO / "bench" / "tiny_problem" / "seed.py"),
                evaluator=str(folder / "evaluator.py"), config=str(path), iterations=iterations,
                output_dir=str(folder / "out"),
            )
            total = time.perf_counter() - started
    finally:
        ProcessParallelController._create_database_snapshot = original  # type: ignore[method-assign]
    return total, server.arrivals, population


def population_at(samples: list[tuple[float, int]], when: float) -> int:
    last = 0
    for t, n in samples:
        if t > when:
            break
        last = n
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3200)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--step", type=float, default=0.5, help="sd of the mock model's random step")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--openevolve-config", choices=sorted(OPENEVOLVE_CONFIGS), default="ours")
    parser.add_argument("--skip-openevolve", action="store_true", help="evolve alone (e.g. to 10,000 programs)")
    parser.add_argument("--no-lookahead", action="store_true",
                        help="evolve waits for each child's result before the next request (the loop before lookahead)")
    args = parser.parse_args()

    print(machine_line())
    cpu: dict[str, float] = {}
    ours_cpu: dict[int, float] = {}
    switches: dict[str, float] = {}
    progress, total, programs, rows, arrivals = run_loop(
        args.iterations, args.latency_ms, args.concurrency, args.workers, args.window, step=args.step, cpu=cpu,
        window_cpu=ours_cpu, switches=switches, extra={"lookahead": not args.no_lookahead})
    print(f"\nevolve: {progress.done} iterations in {total:.1f} s, {programs} programs archived, "
          f"model latency {args.latency_ms:g} ms, concurrency {args.concurrency}, workers {args.workers}, "
          f"lookahead {'off' if args.no_lookahead else 'on'}, "
          f"load after {os.getloadavg()[0]:.2f}")
    by_model = dict(arrival_windows(arrivals, args.window))
    print(f"{'iterations':>10} {'programs':>9} {'wall ms/it':>11} {'CPU ms/it':>10} {'engine ms/it':>13} {'RSS MiB':>8}")
    for done, count, wall, engine, rss in rows:
        wall = by_model.get(done, wall)  # from model requests where the window has them
        print(f"{done:>10} {count:>9} {wall:>11.2f} {ours_cpu.get(done, float('nan')):>10.2f} {engine:>13.3f} "
              f"{rss:>8.1f}")
    print("\nevolve's CPU per iteration (ms), whole run after start-up:")
    for key, label in CPU_PARTS:
        print(f"  {1000 * cpu.get(key, 0.0):6.2f}  {label}")
    print(f"  {1000 * (cpu.get('controller', 0.0) + cpu.get('sandboxes', 0.0)):6.2f}  evolve in all "
          "(controller process + sandbox)")
    if switches:  # each a sleep, so a wake-up (a thread hand-off); counts, which the load does not move
        print("voluntary context switches per iteration, controller process: " + ", ".join(
            f"{role} {n:.2f}" for role, n in switches.items()) + f"; in all {sum(switches.values()):.2f}")
    walls = sorted(by_model.get(done, wall) for done, _, wall, *_ in rows)
    ours_median = walls[len(walls) // 2] if walls else float("nan")
    print(f"\nissue 14: evolve's median window {ours_median:.2f} ms per iteration (target <= 4 ms: "
          f"{'reached' if ours_median <= 4 else 'not reached'}; load now {os.getloadavg()[0]:.2f})")
    if args.skip_openevolve:
        return
    if _version("openevolve") == "not installed":
        print("\nOpenEvolve: skipped (pip install openevolve==0.4.0 to compare on the same mock model)")
        return
    theirs_cpu: list[float] = []
    theirs_seconds, theirs, population = run_openevolve(
        args.iterations, args.latency_ms, args.openevolve_config, args.step, args.window, theirs_cpu)
    ours_programs = {done: count for done, count, *_ in rows}
    print(f"\nOpenEvolve {_version('openevolve')}, config '{args.openevolve_config}': {len(theirs)} requests "
          f"in {theirs_seconds:.1f} s, load after {os.getloadavg()[0]:.2f}; its configuration beyond the defaults:")
    shown = OPENEVOLVE_CONFIGS[args.openevolve_config].format(iterations=args.iterations, api_base="<mock>")
    print("    " + shown.strip().replace("\n", "\n    "))
    print("\nwall and CPU (ms per iteration; CPU: each framework's processes, not the model server's)")
    print(f"{'iterations':>10} {'evolve ms':>10} {'CPU':>6} {'programs':>9} {'OpenEvolve ms':>14} {'CPU':>7} "
          f"{'population':>11} {'ratio':>6} {'CPU ratio':>9}")
    side = []
    for end, theirs_ms in arrival_windows(theirs, args.window):
        ours_ms = by_model.get(end)
        if ours_ms is None:
            continue
        held = population_at(population, theirs[end])
        k = end // args.window
        theirs_cpu_ms = (1000 * (theirs_cpu[k] - theirs_cpu[k - 1]) / args.window if k < len(theirs_cpu)
                         else float("nan"))
        ours_cpu_ms = ours_cpu.get(end, float("nan"))
        side.append((end, ours_ms, theirs_ms, held, ours_cpu_ms, theirs_cpu_ms))
        print(f"{end:>10} {ours_ms:>10.2f} {ours_cpu_ms:>6.2f} {ours_programs.get(end, 0):>9} {theirs_ms:>14.2f} "
              f"{theirs_cpu_ms:>7.2f} {held:>11} {theirs_ms / ours_ms:>5.1f}x {theirs_cpu_ms / ours_cpu_ms:>8.1f}x")
    print()
    for mark in MARKS:
        near = [row for row in side if abs(row[3] - mark) <= 0.25 * mark]
        if not near:
            print(f"at ~{mark} programs: OpenEvolve's population was never near it in this run")
            continue
        end, ours_ms, theirs_ms, held, ours_cpu_ms, theirs_cpu_ms = min(near, key=lambda row: abs(row[3] - mark))
        print(f"at ~{mark} programs (iteration {end}, OpenEvolve holds {held}): evolve {ours_ms:.2f} ms "
              f"({ours_cpu_ms:.2f} CPU), OpenEvolve {theirs_ms:.2f} ms ({theirs_cpu_ms:.2f} CPU) per iteration: "
              f"{theirs_ms / ours_ms:.1f}x wall, {theirs_cpu_ms / ours_cpu_ms:.1f}x CPU")
    best = min(side, key=lambda row: row[2])
    ours_median = sorted(r[1] for r in side)[len(side) // 2]
    print(f"OpenEvolve's best window (iteration {best[0]}, {best[3]} programs): {best[2]:.2f} ms; "
          f"evolve's median window: {ours_median:.2f} ms: {best[2] / ours_median:.2f}x "
          f"(target >= 2x: {'reached' if best[2] >= 2 * ours_median else 'not reached'})")


if __name__ == "__main__":
    main()
