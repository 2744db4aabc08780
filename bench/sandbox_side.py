"""The sandbox's own CPU per batch run, by process: what a slot spends beside the candidate.

    python bench/sandbox_side.py [--runs 300] [--instances 40] [--ints 400] [--rounds 3] [--session-calls N]

A verifier whose ``solve`` returns a list of ``--ints`` numbers per instance (a line of a few
KiB, about a jssp schedule's) runs a trivial candidate over ``--instances`` instances, ``--runs``
times back to back, and prints the CPU (user + system, the kernel's count, which the machine's
load moves much less than a wall time) per run of: the zygote itself (the work order, one
wake-up per result line, the reply, the clean-up, the next spare's fork request), the forker
(the clone of the next child), the candidate children (fork to exit: lock-down, rehearsal,
the run, the line encoding), and the controller's thread (``Sandbox.run``: the order, the
reply's parse). At one worker the zygote's and the forker's part run beside the slot on the
idle core; at two workers they take the two slots' cores, so each millisecond of it lowers
``--workers 2``'s speed-up (bench/workers.py) by about half a millisecond per evaluation.
With ``--session-calls N``, each round then makes N calls of one session (``[1, 2.5, 3]`` sent and
answered back) and prints the CPU per call of the controller's thread and of the session child.
To compare two trees, run it with each tree's Python in turn (each imports its own ``evolve``).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_clocks import child_pids, proc_cpu, stat_fields  # noqa: E402

from evolve.sandbox import Sandbox, SandboxLimits  # noqa: E402
from evolve.verifier import Instance  # noqa: E402

VERIFIER = '''
class Echo:
    @staticmethod
    def solve(heuristic, instance):
        return [heuristic(k) for k in range(instance.data["n"])]

    @staticmethod
    def respond(heuristic, payload):
        return heuristic(payload)
'''
CANDIDATE = "def f(x):\n    return x * 7 + 3\n"
ECHO = "def f(x):\n    return x\n"


def own_cpu(pid: int, reaped: bool = False) -> float:
    """CPU seconds of ``pid`` itself, or (``reaped``) of the children it has reaped."""
    alone = proc_cpu(pid, children=False)
    return proc_cpu(pid) - alone if reaped else alone


def own_faults(pid: int, reaped: bool = False) -> int:
    """Minor page faults of ``pid`` itself, or (``reaped``) of the children it has reaped."""
    fields = stat_fields(pid)
    return 0 if fields is None else int(fields[8 if reaped else 7])


def one_round(verifier_dir: str, runs: int, instances: int, ints: int) -> dict[str, float]:
    sets = [Instance(f"i{k}", "bench", {"n": ints}) for k in range(instances)]
    limits = SandboxLimits(timeout_s=10)
    with Sandbox("side_verifier:Echo", limits, slot=0, extra_sys_path=[verifier_dir]) as sb:
        for _ in range(10):  # warm-up: the set sent, the forker made, caches hot
            outcome = sb.run(CANDIDATE, "f", sets)
            assert outcome.status == "ok", outcome
        sb.settle()
        zygote, forker = sb.worker_pid, sb.forker_pid
        assert zygote is not None
        start = sample(zygote, forker)
        for _ in range(runs):
            sb.run(CANDIDATE, "f", sets)
        sb.settle()
        # The forker lives on (its CPU is its own; the children are the zygote's: CLONE_PARENT).
        # The spare forked last is alive and not counted; the one alive at the start is, in full.
        end = sample(zygote, forker)
        if sb.forker_pid != forker:
            print("  (the forker was replaced during the round: the old one's CPU is under children)")
    ms = {k: (end[k] - start[k]) * (1 if k.endswith(" faults") else 1e3) / runs for k in start}
    return ms


def sample(zygote: int, forker: int | None) -> dict[str, float]:
    """The clocks and fault counts ``one_round`` takes before and after its runs."""
    return {"zygote": own_cpu(zygote), "children": own_cpu(zygote, reaped=True),
            "forker": own_cpu(forker) if forker else 0.0, "thread": time.thread_time(),
            "wall": time.perf_counter(), "zygote faults": own_faults(zygote),
            "forker faults": own_faults(forker) if forker else 0, "children faults": own_faults(zygote, reaped=True)}


def session_round(verifier_dir: str, calls: int) -> dict[str, float]:
    """CPU per call of a session answering ``[1, 2.5, 3]`` back: the controller's thread
    (``SandboxSession.call``: the request, the reply's parse) and the session child (the
    request's unpickling, the reply's encoding), in us."""
    limits = SandboxLimits(timeout_s=600)
    with Sandbox("side_verifier:Echo", limits, slot=0, extra_sys_path=[verifier_dir]) as sb, \
            sb.session(ECHO, "f") as session:
        for _ in range(500):
            session.call([1, 2.5, 3])
        kids = child_pids(sb.worker_pid or 0)  # the forker, the spare and the session's child
        before, thread0 = [proc_cpu(pid, children=False) for pid in kids], time.thread_time()
        for _ in range(calls):
            session.call([1, 2.5, 3])
        thread = time.thread_time() - thread0
        child_cpu = max(proc_cpu(pid, children=False) - cpu for pid, cpu in zip(kids, before, strict=True))
    return {"thread": thread * 1e6 / calls, "child": child_cpu * 1e6 / calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--ints", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--session-calls", type=int, default=0,
                        help="then, per round, this many calls of one session (0: none)")
    args = parser.parse_args()
    import evolve
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Linux {platform.release()}, "
          f"load avg {load}; python {platform.python_version()}; evolve from {Path(evolve.__file__).parent}")
    print(f"{args.runs} batch runs per round, {args.instances} instances of {args.ints} numbers each; "
          "CPU ms per run (user + system)")
    print(f"{'round':>5} {'load':>5} {'zygote':>7} {'forker':>7} {'children':>9} "
          f"{'controller':>10} {'wall':>7}   page faults per run: {'zygote':>6} {'forker':>6} {'children':>8}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "side_verifier.py").write_text(VERIFIER)
        os.chmod(tmp, 0o755)
        for k in range(args.rounds):
            load_now = os.getloadavg()[0]
            ms = one_round(tmp, args.runs, args.instances, args.ints)
            rows.append(ms)
            print(f"{k + 1:>5} {load_now:>5.1f} {ms['zygote']:>7.3f} {ms['forker']:>7.3f} {ms['children']:>9.3f} "
                  f"{ms['thread']:>10.3f} {ms['wall']:>7.3f}   {'':>21}{ms['zygote faults']:>6.0f} "
                  f"{ms['forker faults']:>6.0f} {ms['children faults']:>8.0f}", flush=True)
        for k in range(args.rounds if args.session_calls else 0):
            load_now = os.getloadavg()[0]
            us = session_round(tmp, args.session_calls)
            print(f"session round {k + 1}, load {load_now:.1f}: CPU per call {us['thread']:.1f} us of the "
                  f"controller's thread, {us['child']:.1f} us of the session child", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"median: zygote {med['zygote']:.3f}, forker {med['forker']:.3f}, children {med['children']:.3f}, "
          f"controller thread {med['thread']:.3f}, wall {med['wall']:.3f} ms per run; page faults per run: "
          f"zygote {med['zygote faults']:.0f}, forker {med['forker faults']:.0f}, children {med['children faults']:.0f}")


if __name__ == "__main__":
    sys.exit(main())
