"""Trusted replay of a dispatching rule's decisions: is the sequence what the rule builds?

``smtt_rule`` scores the sequence the sandboxed dispatcher returns, and that process is the
candidate's: a program can keep state between calls (plan the whole sequence by local search
at the first call, then hand out ranks) or replace the dispatcher outright, and its sequence
still arrives as a permutation.  Such a program is not a dispatching rule, and its gap, below
every rule's, would be read as one's.

The state at every decision follows from the sequence alone (the unscheduled jobs in input
order, and t), so after the split the engine opens a *fresh* session (a new process: nothing
survives from the run) and ``Replay.check`` asks the rule again at a few decisions of each
instance, chosen at random with a seed the candidate never sees, one decision per call in
the order of the run (so no call shows which jobs ran at or after the decision it asks
about), never the first decision (which shows the whole instance).  A function of its inputs
answers as it did, at its usual cost per decision; a planner that kept state has none here
and must plan the rest again from the middle, within twice the run's CPU per decision, and
arrive at the same job.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from typing import Any

import numpy as np

from evolve.evaluators.smtt.dispatch import integral
from evolve.evaluators.smtt.objective import sequence_violation

STATES_PER_INSTANCE = 8
# CPU per replayed decision: twice the run's budget per decision (cpu_budget_s(n) / n:
# 2.2 ms at n = 500, 7 ms at n = 20), plus 5 ms for the call itself.
CALL_S = 0.005


class Replay:
    """Picks the decisions to replay (a secret seed per process) and compares the answers."""

    def __init__(self, cpu_budget_s: Callable[[int], float], states: int = STATES_PER_INSTANCE) -> None:
        self.cpu_budget_s = cpu_budget_s  # the run's CPU budget of an instance of n jobs
        self.states = states
        self.rng = random.Random(secrets.randbits(64))

    def check(self, instance: Any, solution: Any, session: Any) -> str | None:
        """None, or why the sequence is not what the rule builds (one line)."""
        p = np.asarray(instance.data["p"], dtype=np.int64)
        d = np.asarray(instance.data["d"], dtype=np.float64)
        n = len(p)
        reason, seq = sequence_violation(solution, n)
        if reason is not None or seq is None or n < 3:
            return None  # score() rejects a non-permutation; below 3 jobs nothing to replay
        # Decisions 1 .. n-2: the first shows the whole instance, the last has one job.
        steps = sorted(self.rng.sample(range(1, n - 1), min(self.states, n - 2)))
        allowed = 2 * self.cpu_budget_s(n) / n + CALL_S
        due_integral = integral(d)
        left = np.ones(n, dtype=bool)
        t, done = 0, 0
        for step in steps:
            for job in seq[done:step].tolist():
                left[job] = False
                t += int(p[job])
            done = step
            remaining = np.flatnonzero(left)
            reply = session.call({"p": p[remaining], "d": d[remaining], "t": t, "n": n,
                                  "integral_due": due_integral})
            asked = f"asked again in a fresh process at decision {step} (t = {t}, {remaining.size} jobs left)"
            if reply.error is not None:
                return f"{asked}, priority() raised {reply.error}"
            if reply.cpu_seconds > allowed:
                return (f"{asked}, the decision took {reply.cpu_seconds:.3f} s of CPU, {allowed:.3f} s allowed: "
                        "a rule's cost per decision must not hide in earlier calls")
            position, job = reply.value, int(seq[step])
            if not (type(position) is int and 0 <= position < remaining.size):
                return f"{asked}, the answer was {str(position)[:40]}, not the position of a job"
            if int(remaining[position]) != job:
                return (f"{asked}, priority() picks job {int(remaining[position])}, but the sequence runs job "
                        f"{job} there: a rule must be a function of its inputs (no state kept between calls, "
                        "no dispatcher of its own)")
        return None
