"""Where a loop's wall goes, by what of ours runs or waits for a core at each instant.

Starts a bench (``loop``: ``bench/loop_overhead.py --iterations N --skip-openevolve``, the
tiny problem at one worker; ``workers``: ``bench/workers.py``'s ``run("jssp", N, W, "mock", 0)``),
waits ``--settle`` seconds into it, then records the kernel's scheduler events on every CPU for
``--seconds`` (``perf record -e sched:sched_switch,sched_wakeup,...``, as root) and splits that
window's wall by the number of the bench's own tasks that wanted a core at each instant (running,
or runnable and waiting): none (all of ours asleep, by the last of them to go to sleep and its
state: D is a wait in the kernel, such as an exit's teardown), one (the serial part: which one, by role), two or more (overlapped). Roles: the
controller's main thread, its other threads (evaluation, proposals), the model server, worker
processes, the zygote, the forker, candidate children. Also: what of ours ran on the cores
(ms per iteration, the kernel's switch times), what else ran there (other users' processes,
kernel threads: deferred work such as a mount namespace's or pid namespace's teardown is
not charged to the process that caused it), and the time our tasks waited, runnable, for a core.

An iteration is a candidate child here (the tiny problem: one per iteration; jssp: one per
split run, the quick split and the train split), counted from the scheduler's fork events.

    python bench/overlap.py loop [--iterations 1500] [--settle 2] [--seconds 3]
    python bench/overlap.py workers [--workers 2] [--iterations 200] [--settle 4] [--seconds 6]

Needs root (or perf_event_paranoid <= -1) and perf. On a busy machine the waits for a core
are the load's; what stays meaningful is the split of the wanting time between roles.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVENTS = "sched:sched_switch,sched:sched_wakeup,sched:sched_wakeup_new,sched:sched_process_fork,sched:sched_process_exit"
WORKERS_RUN = ("import sys; sys.path[:0] = ['bench', '.']; import workers; "
               "workers.run('jssp', {iterations}, {workers}, 'mock', 0)")
SWITCH = re.compile(r"prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=.* next_pid=(\d+)")
WAKE = re.compile(r"comm=.* pid=(\d+) prio")
FORK = re.compile(r"pid=(\d+) child_comm=.* child_pid=(\d+)")
LINE = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$")


def command(args: argparse.Namespace) -> list[str]:
    if args.bench == "loop":
        return [sys.executable, "bench/loop_overhead.py", "--iterations", str(args.iterations), "--skip-openevolve"]
    return [sys.executable, "-c", WORKERS_RUN.format(iterations=args.iterations, workers=args.workers)]


def tree(root: int) -> dict[int, tuple[int, str]]:
    """The live descendants of ``root`` (and it), by pid: (parent pid, command line)."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        procs[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    ours, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            ours[pid] = procs[pid]
            todo += [p for p, (ppid, _) in procs.items() if ppid == pid]
    return ours


def threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def initial_roles(root: int) -> dict[int, str]:
    """Role of every task (thread) of ours alive now."""
    procs = tree(root)
    roles: dict[int, str] = {}
    for pid, (_ppid, cmdline) in procs.items():
        if pid == root:
            role = "controller"
        elif "evolve.sandbox.zygote" in cmdline:
            role = "sandbox"  # the zygote, its forker or a spare child: settled by what it does (analyse)
        elif "evolve.workers" in cmdline:
            role = "worker process"
        elif "multiprocessing" in cmdline:
            role = "model server"
        else:
            role = "other of ours"
        for tid in threads(pid):
            roles[tid] = role + (" thread" if role == "controller" and tid == pid else "")
            if role == "controller" and tid != pid:
                roles[tid] = "controller, other threads"
    return roles


def record(args: argparse.Namespace, data: str) -> tuple[dict[int, str], float]:
    """Run the bench, record ``--seconds`` of it; (roles of the tasks alive at the start, load)."""
    bench = subprocess.Popen(command(args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(args.settle)
        if bench.poll() is not None:
            raise SystemExit(f"the bench ended before the window: {bench.stderr.read().decode()[-2000:]}")
        roles = initial_roles(bench.pid)
        load = os.getloadavg()[0]
        subprocess.run(["perf", "record", "-q", "-a", "-e", EVENTS, "-o", data, "--", "sleep", str(args.seconds)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if bench.poll() is not None:
            raise SystemExit("the bench ended inside the window: raise --iterations")
    finally:
        bench.kill()
        bench.wait()
    return roles, load


def analyse(data: str, roles: dict[int, str]) -> None:
    text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,tid,cpu,time,event,trace"],
                          capture_output=True, text=True, check=True).stdout
    events = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            events.append((float(m.group(5)), m.group(6), m.group(7), int(m.group(4)), m.group(1), int(m.group(3))))
    events.sort(key=lambda e: e[0])
    settle_sandbox_roles(events, roles)
    children = 0
    running: dict[int, int] = {}  # cpu -> tid on it
    wanting: set[int] = set()  # our tasks running or runnable
    comm: dict[int, str] = {}
    split: collections.Counter[str] = collections.Counter()
    on_cores: collections.Counter[str] = collections.Counter()  # by how many of ours ran
    on_cpu: collections.Counter[str] = collections.Counter()
    waited = 0.0
    start, last = events[0][0], events[0][0]
    last_asleep = "?"  # the role and state of the last of ours to go to sleep

    role = roles.get
    for t, kind, trace, cpu, who, _tid in events:
        dt = t - last
        ours_wanting = [role(x) for x in wanting]
        n = len(ours_wanting)
        split[f"none of ours wants a core (the last to sleep: {last_asleep})" if n == 0 else
              f"one: {ours_wanting[0]}" if n == 1 else "two or more (overlapped)"] += dt
        running_roles = [role(x) or _kind(comm.get(x, ""), x) for x in running.values()]
        for r in running_roles:
            on_cpu[r] += dt
        ours_running = sum(1 for x in running.values() if x in roles)
        ours_on = [role(x) for x in running.values() if x in roles]
        on_cores["none" if not ours_on else f"one: {ours_on[0]}" if len(ours_on) == 1
                 else "two or more"] += dt
        waited += dt * max(0, n - ours_running)
        last = t
        if kind == "sched_switch":
            m = SWITCH.search(trace)
            if not m:
                continue
            prev, state, nxt = int(m.group(1)), m.group(2), int(m.group(3))
            comm.setdefault(prev, who)
            cm = re.search(r"next_comm=(.*?) next_pid", trace)
            comm[nxt] = cm.group(1) if cm else ""
            if prev in roles and not state.startswith("R"):
                wanting.discard(prev)
                last_asleep = f"{role(prev)}, state {state}"  # D: in the kernel, uninterruptible
            running[cpu] = nxt
            if nxt in roles:
                wanting.add(nxt)
        elif kind in ("sched_wakeup", "sched_wakeup_new"):
            m = WAKE.search(trace)
            if m and int(m.group(1)) in roles:
                wanting.add(int(m.group(1)))
        elif kind == "sched_process_fork":
            m = FORK.search(trace)
            if m and int(m.group(1)) in roles:
                parent, child = int(m.group(1)), int(m.group(2))
                r = roles[parent]
                if r in ("forker", "zygote"):
                    children += roles.get(child) == "candidate children"
                else:
                    roles[child] = r if r != "controller thread" else "controller, other threads"
    wall = last - start
    per = max(1, children)
    print(f"window {wall * 1e3:.0f} ms, {children} candidate children forked in it: "
          f"{wall * 1e3 / per:.3f} ms of wall per child")
    print("\nthe wall, by how many of our tasks wanted a core (running or runnable), ms per child:")
    for name, dt in sorted(split.items(), key=lambda kv: -kv[1]):
        print(f"  {dt * 1e3 / per:8.3f}  {100 * dt / wall:5.1f} %  {name}")
    print("\nthe wall, by how many of our tasks were on a core, ms per child:")
    for name, dt in sorted(on_cores.items(), key=lambda kv: -kv[1]):
        print(f"  {dt * 1e3 / per:8.3f}  {100 * dt / wall:5.1f} %  {name}")
    print(f"\nour tasks waited, runnable, for a core: {waited * 1e3 / per:.3f} ms per child (task-ms)")
    print("\nwhat ran on the cores, ms per child (the kernel's switch times):")
    for name, dt in sorted(on_cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {dt * 1e3 / per:8.3f}  {name}")


def settle_sandbox_roles(events: list[tuple], roles: dict[int, str]) -> None:
    """The sandbox's processes share the zygote's command line: a forker forks candidates
    (many forks), a candidate forks nothing and exits, the zygote stays and forks a forker now
    and then (or, without one, the candidates itself)."""
    forks: collections.defaultdict[int, list[int]] = collections.defaultdict(list)
    exited = set()
    for _, kind, trace, *_ in events:
        if kind == "sched_process_fork" and (m := FORK.search(trace)):
            forks[int(m.group(1))].append(int(m.group(2)))
        elif kind == "sched_process_exit" and (m := re.search(r"pid=(\d+)", trace)):
            exited.add(int(m.group(1)))
    todo = [tid for tid, role in roles.items() if role == "sandbox"]
    while todo:
        tid = todo.pop()
        kids = forks.get(tid, [])
        if len(kids) >= 5:
            roles[tid] = "forker"  # (or a zygote forking its children itself)
        elif tid in exited or roles.get(tid) == "new sandbox":
            roles[tid] = "candidate children" if not kids else "zygote"
        else:
            roles[tid] = "zygote"
        for kid in kids:
            if kid not in roles:
                roles[kid] = "new sandbox"
                todo.append(kid)
    for tid, role in roles.items():
        if role == "new sandbox":
            roles[tid] = "candidate children"


def _kind(comm: str, tid: int) -> str:
    if tid == 0 or comm.startswith("swapper"):
        return "idle"
    if re.match(r"(kworker|ksoftirqd|rcu|migration|kthreadd|cpuhp|kcompactd|khugepaged|kswapd)", comm):
        return f"kernel threads ({re.sub(r'[/:].*', '', comm)})"
    return "others' processes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=("loop", "workers"))
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=float)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    defaults = {"loop": (1500, 2.0, 3.0), "workers": (200, 4.0, 6.0)}[args.bench]
    args.iterations = args.iterations or defaults[0]
    args.settle = args.settle if args.settle is not None else defaults[1]
    args.seconds = args.seconds or defaults[2]
    print(f"machine: {os.cpu_count()} CPUs, Linux {os.uname().release}, load {os.getloadavg()[0]:.2f}; "
          f"bench: {' '.join(command(args)[1:])}; window {args.seconds} s after {args.settle} s")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "sched.data")
        roles, load = record(args, data)
        print(f"load at the window's start {load:.2f}; tasks of ours alive then: {len(roles)}")
        analyse(data, roles)


if __name__ == "__main__":
    main()
