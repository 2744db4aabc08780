"""Engine overhead per iteration as the archive grows (issue: flat loop overhead).

Starts an OpenAI-compatible server on 127.0.0.1 that answers instantly (or after
--latency-ms) with a valid SEARCH/REPLACE edit of the tiny benchmark problem
(bench/tiny_problem, ~0.05 ms evaluation), runs the evolve loop on it through
the real OpenAI-compatible backend, and prints per window of 100 iterations:
the archive size, wall milliseconds per iteration, the controller's own
milliseconds per iteration (sampling, prompts, edits, archive writes: all but
waiting for the model and the sandbox) and the process's resident memory.

    python bench/loop_overhead.py [--iterations 5000] [--latency-ms 0] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evolve.archive import Archive  # noqa: E402
from evolve.config import resolve_settings  # noqa: E402
from evolve.llm import make_llm  # noqa: E402
from evolve.loop import Controller, Progress  # noqa: E402
from evolve.problem import load_problem  # noqa: E402
from tests.llm_server import FakeLLMServer, ok  # noqa: E402

CONSTANT = re.compile(r"^(\s*)return x \* (\S+)$", re.M)
# Both frameworks head the parent's code "Current Program" (ours "## Current program").
CURRENT = re.compile(r"#+ Current Program\s*\n", re.I)


class EditResponder:
    """Answers every prompt with a fresh constant, so each child is a new program."""

    def __init__(self, latency_s: float) -> None:
        self._counter = itertools.count(2)
        self._lock = threading.Lock()
        self.latency_s = latency_s

    def __call__(self, body: dict) -> object:
        prompt = body["messages"][-1]["content"]
        heads = list(CURRENT.finditer(prompt))
        match = CONSTANT.search(prompt, heads[-1].end() if heads else 0)
        with self._lock:
            k = next(self._counter)
        if match is None:
            return ok("no idea", delay_s=self.latency_s)
        indent, old = match.groups()
        text = (
            f"Try another constant.\n<<<<<<< SEARCH\n{indent}return x * {old}\n=======\n"
            f"{indent}return x * {k / 1000:.3f}\n>>>>>>> REPLACE\n"
        )
        return ok(text, prompt_tokens=len(prompt) // 4, completion_tokens=30, delay_s=self.latency_s)


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_line() -> str:
    return (f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
            f"Linux {platform.release()}, load {os.getloadavg()[0]:.2f}\n"
            f"python {platform.python_version()}, evolve {version('evolve')}, openai {version('openai')}")


def run_loop(
    iterations: int, latency_ms: float = 0.0, concurrency: int = 1, workers: int = 1,
    window: int = 100, extra: dict | None = None, options: dict | None = None,
    keep_arrivals: bool = False,
) -> tuple[Progress, float, int, list[tuple[int, int, float, float, float]], list[float]]:
    """One run of the loop on the tiny problem against a local model server.

    Returns (progress, wall seconds, programs archived, per-window rows, request arrivals)."""
    problem = load_problem(str(REPO / "bench" / "tiny_problem")).with_options(options or {})
    overrides = {"iterations": iterations, "concurrency": concurrency, "workers": workers, **(extra or {})}
    settings = resolve_settings(problem.spec.run, None, overrides)
    rows: list[tuple[int, int, float, float, float]] = []
    mark = {"t": time.perf_counter(), "engine": 0.0, "done": 0}
    holder: dict[str, Archive] = {}

    def on_progress(p: Progress) -> None:
        if p.done == mark["done"] or p.done % window:
            return
        now, n = time.perf_counter(), p.done - mark["done"]
        wall = 1000 * (now - mark["t"]) / n
        engine = 1000 * (p.engine_seconds - mark["engine"]) / n
        rows.append((p.done, holder["archive"].program_count(), wall, engine, rss_mib()))
        mark.update(t=now, engine=p.engine_seconds, done=p.done)

    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(
        responder=EditResponder(latency_ms / 1000), keep_requests=keep_arrivals
    ) as server:
        archive = holder["archive"] = Archive(Path(tmp) / "archive.sqlite", create=True)
        llm = make_llm("openai/bench", api_base=server.base_url, timeout_s=30)
        started = time.perf_counter()
        progress = Controller(problem, settings, archive, llm, Path(tmp), on_progress=on_progress).run()
        total = time.perf_counter() - started
        programs = archive.program_count()
        archive.close()
        arrivals = sorted(r.at for r in server.chat_requests())
    return progress, total, programs, rows, arrivals


def arrival_windows(arrivals: list[float], window: int) -> list[tuple[int, float]]:
    """(iterations so far, wall ms per iteration) from model-request arrival times."""
    out = []
    for end in range(window, len(arrivals), window):
        out.append((end, 1000 * (arrivals[end] - arrivals[end - window]) / window))
    return out


EVALUATOR = """
import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": -abs(float(module.f(1.0)) - 7.0)}
"""

OPENEVOLVE_CONFIG = """
max_iterations: {iterations}
log_level: WARNING
random_seed: 0
llm:
  api_base: "{api_base}"
  api_key: "EMPTY"
  models:
    - name: "bench"
      weight: 1.0
  timeout: 30
  retries: 1
  retry_delay: 1
database:
  population_size: {iterations}
  num_islands: 4
evaluator:
  timeout: 30
  cascade_evaluation: false
  parallel_evaluations: 1
"""


def run_openevolve(iterations: int, latency_ms: float) -> tuple[float, list[float]]:
    """OpenEvolve on the same tiny problem against the same kind of server.

    Returns (wall seconds, arrival times of its model requests)."""
    import logging

    from openevolve.api import run_evolution

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(responder=EditResponder(latency_ms / 1000)) as server:
        folder = Path(tmp)
        (folder / "evaluator.py").write_text(EVALUATOR)
        config = folder / "config.yaml"
        config.write_text(OPENEVOLVE_CONFIG.format(iterations=iterations, api_base=server.base_url))
        started = time.perf_counter()
        run_evolution(
            initial_program=str(REPO / "bench" / "tiny_problem" / "seed.py"),
            evaluator=str(folder / "evaluator.py"), config=str(config), iterations=iterations,
            output_dir=str(folder / "out"),
        )
        total = time.perf_counter() - started
        arrivals = sorted(r.at for r in server.chat_requests())
    return total, arrivals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-openevolve", action="store_true", help="do not run the side-by-side")
    args = parser.parse_args()

    print(machine_line())
    progress, total, programs, rows, _ = run_loop(
        args.iterations, args.latency_ms, args.concurrency, args.workers, args.window
    )
    print(f"\nevolve: {progress.done} iterations in {total:.1f} s, {programs} programs archived, "
          f"model latency {args.latency_ms:g} ms, concurrency {args.concurrency}, workers {args.workers}")
    print(f"{'iterations':>10} {'programs':>9} {'wall ms/it':>11} {'engine ms/it':>13} {'RSS MiB':>8}")
    for done, count, wall, engine, rss in rows:
        print(f"{done:>10} {count:>9} {wall:>11.2f} {engine:>13.3f} {rss:>8.1f}")
    if args.skip_openevolve:
        return
    try:
        from importlib.metadata import version as dist_version

        oe_version = dist_version("openevolve")
    except Exception:
        print("\nOpenEvolve: skipped (not installed; pip install openevolve to compare on the same server)")
        return
    # Side by side, measured the same way for both: wall time between model
    # requests, per window (each framework makes one request per iteration).
    ours = run_loop(args.iterations, args.latency_ms, window=10**9, keep_arrivals=True)
    theirs_seconds, theirs = run_openevolve(args.iterations, args.latency_ms)
    ours_rows = dict(arrival_windows(ours[4], args.window))
    print(f"\nside by side (openevolve {oe_version}), wall ms per iteration from model-request arrivals; "
          f"openevolve total {theirs_seconds:.1f} s for {len(theirs)} requests")
    print(f"{'iterations':>10} {'evolve':>9} {'openevolve':>11} {'ratio':>7}")
    for end, theirs_ms in arrival_windows(theirs, args.window):
        ours_ms = ours_rows.get(end)
        if ours_ms is None:
            continue
        print(f"{end:>10} {ours_ms:>9.2f} {theirs_ms:>11.2f} {theirs_ms / ours_ms:>6.1f}x")


if __name__ == "__main__":
    main()
