"""CPU clocks for the bench scripts: kernel-counted, so they stay meaningful on a busy machine.

``Observed`` wraps ``make_executor``: it times the controller's evaluation threads and
samples the CPU of worker processes and sandboxes (zygotes with their reaped
candidates) just before they are closed.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from evolve import workers as worker_processes

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_cpu(pid: int, children: bool = True) -> float:
    """CPU seconds of a process (and of its reaped children) from /proc."""
    fields = stat_fields(pid)
    return 0.0 if fields is None else sum(int(x) for x in fields[11 : 15 if children else 13]) / TICK


def child_pids(pid: int) -> list[int]:
    """Children started by the process's main thread."""
    return child_pids_of_task(pid, pid)


class ThreadClock:
    """Thread CPU (``seconds``) and wall time (``wall``) spent inside a wrapped call, summed
    over the threads that make it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.wall = 0.0
        self._lock = threading.Lock()

    def wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, began = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds += time.thread_time() - start
                    self.wall += time.perf_counter() - began
        return timed


class Observed:
    """make_executor, wrapped: times the controller's evaluation threads, samples the
    CPU of worker processes and sandboxes just before they are closed."""

    def __init__(self) -> None:
        self.evaluate = ThreadClock()
        self.workers_cpu = 0.0
        self.sandbox_cpu = 0.0
        self.make = worker_processes.make_executor
        self._executor: Any = None
        self._baseline = (0.0, 0.0)
        self.spans: list[tuple[float, float]] = []  # each evaluation's (start, end), perf_counter
        self.calls: list[tuple[Any, ...]] = []  # each evaluation's arguments, in the order they began
        self.close_wall = 0.0  # the executor's close: the worker processes' or sandboxes' exit

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        executor = self._executor = self.make(*args, **kwargs)
        evaluate = self.evaluate.wrap(executor.evaluate)

        def spanned(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(args)
            began = time.perf_counter()
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.spans.append((began, time.perf_counter()))
        executor.evaluate = spanned
        close = executor.close

        def observed_close() -> None:
            workers, sandboxes = _cpu_of(executor)
            self.workers_cpu, self.sandbox_cpu = workers - self._baseline[0], sandboxes - self._baseline[1]
            began = time.perf_counter()
            close()
            self.close_wall = time.perf_counter() - began
        executor.close = observed_close
        return executor

    def loop_starts(self) -> None:
        """After start-up and the seed's evaluation: what the processes spent so far is not the loop's."""
        self._baseline = _cpu_of(self._executor)
        self.evaluate.seconds = self.evaluate.wall = 0.0
        self.spans = []
        self.calls = []


def _cpu_of(executor: Any) -> tuple[float, float]:
    """(worker processes' own CPU, zygotes' CPU with their candidates and forkers)."""
    if hasattr(executor, "_workers"):  # WorkerProcesses
        workers = [w.proc.pid for w in executor._workers]
        zygotes = [z for w in workers for z in child_pids(w)]
        return sum(proc_cpu(w, children=False) for w in workers), sum(zygote_cpu(z) for z in zygotes)
    sandboxes = executor._evaluator._sandboxes.values()  # LocalExecutor: the zygotes are ours
    return 0.0, sum(zygote_cpu(sb.worker_pid) for sb in sandboxes if sb.worker_pid)


ROLES = (("controller", "MainThread"), ("proposal", "propose"), ("evaluation", "evaluate"))


def voluntary_switches() -> dict[str, int]:
    """Voluntary context switches (sleeps: each a wake-up to come) of this process's threads so
    far, by role: the controller's (main) thread, the proposal threads, the evaluation threads,
    the rest. Counts, not times: the load does not move them."""
    found = dict.fromkeys([role for role, _ in ROLES] + ["other"], 0)
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/status") as f:
                line = next(x for x in f if x.startswith("voluntary_ctxt_switches:"))
        except (OSError, StopIteration):
            continue
        role = next((r for r, prefix in ROLES if thread.name.startswith(prefix)), "other")
        found[role] += int(line.split()[1])
    return found


def proc_faults(pid: int) -> int:
    """Minor (copy-on-write and first-touch) page faults of a process and its reaped children."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[7]) + int(fields[8])


def zygote_faults(pid: int) -> int:
    """``proc_faults`` of a zygote and of its live children (forker, spare), as ``zygote_cpu``."""
    return proc_faults(pid) + sum(proc_faults(kid) for kid in child_pids(pid))


def zygote_cpu(pid: int) -> float:
    """CPU seconds of a zygote, its reaped candidates, and its live children: the forker
    (which lives as long as the zygote, so it is never among the reaped) and the spare."""
    return proc_cpu(pid) + sum(proc_cpu(kid) for kid in child_pids(pid))


def process_tree_cpu(exclude: int | None = None) -> float:
    """CPU seconds of this process and its child processes (each with its reaped children
    and its live ones: a zygote's forker and spare), whichever thread started them;
    ``exclude``: a child not to count."""
    kids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        kids.update(child_pids_of_task(os.getpid(), int(tid)))
    return time.process_time() + sum(zygote_cpu(pid) for pid in kids if pid != exclude)


def child_pids_of_task(pid: int, tid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []
