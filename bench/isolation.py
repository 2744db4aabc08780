"""What isolation costs per candidate: the sandbox next to the obvious alternatives.

    PYTHONPATH=. python bench/isolation.py [--runs 200]

Rows: a trivial candidate through ``Sandbox.run`` with a pause of --gap-ms
between runs (what a search loop leaves while it scores, writes its archive and
waits for its model: the zygote cleans up and forks the next child then) and
back to back, the zygote's part of it (work order to reply), and the CPU time it
takes (the controller's thread, the zygote, its forker and the reaped child, which
stays meaningful on a busy machine) and their page faults (copy-on-write above all:
a count, not a time, so the load does not move it), one trivial call in an open session
(``SandboxSession.call`` round trip), the child's own CPU and page faults from its fork to the
first line of the candidate's function (what the child costs before the candidate runs:
lock-down, rehearsal if it had the time, work order, load), a fresh ``python -c "import numpy"``
(what a sandbox without a warm worker pays), and a bare ``os.fork()`` of a warm
numpy process (the floor of any fork-based design).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_clocks import zygote_cpu, zygote_faults  # noqa: E402

from evolve.sandbox import Sandbox, SandboxLimits
from evolve.verifier import Instance

VERIFIER = '''
class Echo:
    @staticmethod
    def solve(heuristic, instance):
        return heuristic(instance.data["x"])

    @staticmethod
    def respond(heuristic, payload):
        return heuristic(payload)
'''
TRIVIAL = "def f(x):\n    return x\n"
# What the child spent before the candidate's own code runs (fork, lock-down, rehearsal if
# any, work order, load): its own counters, read first thing by the candidate's function.
OWN_COUNTERS = ("import resource, time\ndef f(x):\n    usage = resource.getrusage(resource.RUSAGE_SELF)\n"
                "    return [usage.ru_minflt, time.process_time()]\n")


def timed(fn: Callable[[], object], runs: int, gap_s: float = 0.0) -> list[float]:
    out = []
    for _ in range(runs):
        if gap_s:
            time.sleep(gap_s)
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def row(name: str, seconds: list[float], digits: int = 2) -> str:
    s = sorted(seconds)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"{name:<52} {len(s):>6} {statistics.median(s) * 1e3:>9.{digits}f} {p95 * 1e3:>9.{digits}f}"


def cpu_of(pid: int) -> float:
    """CPU seconds of a zygote, of its reaped children (the candidates) and of its live ones
    (the forker, which lives as long as the zygote, and the spare), from /proc."""
    return zygote_cpu(pid)


def bare_fork() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def machine() -> list[str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {os.cpu_count()} CPUs (nproc), {model}, Linux {platform.release()}, load avg {load}",
        f"python {platform.python_version()}, numpy {numpy.__version__}, euid {os.geteuid()}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--fresh-runs", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20000, help="session calls timed")
    parser.add_argument("--gap-ms", type=float, default=2.0, help="pause between timed runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench_verifier.py").write_text(VERIFIER)
        os.chmod(tmp, 0o755)
        starts = []
        for _ in range(3):
            t = time.perf_counter()
            Sandbox("bench_verifier:Echo", SandboxLimits(timeout_s=5), slot=0, extra_sys_path=[tmp]).close()
            starts.append(time.perf_counter() - t)
        instances = [Instance(f"i{k}", "bench", {"x": k}) for k in range(3)]
        with Sandbox("bench_verifier:Echo", SandboxLimits(timeout_s=5), slot=0, extra_sys_path=[tmp]) as sb:
            isolation = sb.isolation
            for _ in range(10):  # warm-up: instances sent, caches hot
                sb.run(TRIVIAL, "f", instances)
            inner: list[float] = []

            def one() -> None:
                outcome = sb.run(TRIVIAL, "f", instances)
                assert outcome.status == "ok", outcome
                inner.append(outcome.wall_seconds)

            assert sb.worker_pid is not None
            sb.settle()
            cpu0 = cpu_of(sb.worker_pid) + time.thread_time()
            faults0 = zygote_faults(sb.worker_pid)
            sandbox_times = timed(one, args.runs, args.gap_ms / 1000)
            sb.settle()
            cpu = [(cpu_of(sb.worker_pid) + time.thread_time() - cpu0) / args.runs]
            faults = (zygote_faults(sb.worker_pid) - faults0) / args.runs
            back_to_back = timed(one, args.runs)
            counters = []
            for _ in range(args.runs):
                time.sleep(args.gap_ms / 1000)
                outcome = sb.run(OWN_COUNTERS, "f", instances[:1])
                assert outcome.status == "ok", outcome
                counters.append(outcome.runs[0].solution)
            calls: list[float] = []
            if hasattr(sb, "session"):  # sessions exist from the commit "Sandbox sessions" on
                with sb.session(TRIVIAL, "f") as session:
                    for k in range(100):  # warm-up
                        session.call(k)
                    calls = timed(lambda: session.call(1), args.calls)

    fresh = timed(lambda: subprocess.run([sys.executable, "-c", "import numpy"], check=True), args.fresh_runs)
    forks = timed(bare_fork, args.runs)

    print("\n".join(machine()))
    print("sandbox isolation: " + "; ".join(isolation))
    print()
    print(f"{'per candidate':<52} {'runs':>6} {'median ms':>9} {'p95 ms':>9}")
    print(row(f"evolve Sandbox.run, trivial candidate, 3 instances, {args.gap_ms:g} ms apart", sandbox_times))
    print(row("  of which zygote: work order -> last result line", inner[: args.runs]))
    print(row("  the same back to back (clean-up and fork in the way)", back_to_back))
    print(row("  CPU: controller thread + zygote + child, mean", cpu))
    print(f"{'  page faults of zygote, forker and child, mean':<52} {args.runs:>6} {faults:>9.0f}")
    print(row("  the child's CPU before the candidate's code runs", [c[1] for c in counters]))
    label = "  the child's page faults before it, median"
    print(f"{label:<52} {args.runs:>6} {statistics.median(c[0] for c in counters):>9.0f}")
    if calls:
        print(row("session call round trip, trivial candidate", calls, 4))
    print(row('fresh interpreter: python -c "import numpy"', fresh))
    print(row("bare os.fork()+_exit+waitpid of a warm numpy process", forks))
    print(row("one-off: Sandbox() start-up (zygote, numpy, probe)", starts))


if __name__ == "__main__":
    main()
