"""Trusted replay of a dispatching rule's decisions: is the sequence what the rule builds?

``smtt_rule`` scores the sequence the sandboxed dispatcher returns, and that process is the
candidate's: a program can keep state between calls (plan the whole sequence by local search
at the first call, then hand out ranks) or replace the dispatcher outright, and its sequence
still arrives as a permutation.  Such a program is not a dispatching rule, and its gap, below
every rule's, would be read as one's.

The state at every decision follows from the sequence alone (the unscheduled jobs in input
order, and t), so after the split the engine opens a *fresh* session (a new process: nothing
survives from the run) and ``Replay.audit`` asks the rule again at up to 32 decisions of each
instance, chosen at random with a seed the candidate never sees, never the first (which shows
the whole instance).  Each call asks one decision of each instance, in the run's order, so no
call shows which jobs ran at or after a decision it asks about.  A function of its inputs
answers as it did, at its usual cost per decision; a planner that kept state has none here
and must plan the rest again from the middle, within twice the run's CPU per decision, and
arrive at the same job.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolve.evaluators.smtt.dispatch import integral
from evolve.evaluators.smtt.objective import sequence_violation
from evolve.verifier import REPLY_NOTE_BYTES

# 32, not 4: one departure from the rule per instance is caught with probability states / (n - 2),
# and a search keeps the evaluations that escape.  With 4 a sequence departing at one decision on
# the train instances where it pays most gained 0.094 points of mean gap escaping half the time;
# with 32, 0.017 (bench/audit_departures.py), for 0.9 s more per audited train evaluation.
STATES_PER_INSTANCE = 32
# CPU per replayed decision: twice the run's budget per decision (cpu_budget_s(n) / n:
# 2.2 ms at n = 500, 7 ms at n = 20), plus 5 ms per call.
CALL_S = 0.005
# What a reply may hold: one int64 per decision asked, as raw bytes.  Every byte is read here: a
# reply padded to the sandbox's 64 MiB costs the controller ~0.24 s per call (docs/sandbox.md,
# sixth red team).
REPLY_BYTES_PER_STATE = 16


@dataclass
class _Plan:
    """One instance's decisions to replay, walked forward call by call."""

    p: np.ndarray
    d: np.ndarray
    seq: np.ndarray
    steps: list[int]
    left: np.ndarray
    integral_due: bool
    t: int = 0
    done: int = 0

    def state(self, step: int) -> dict[str, Any]:
        for job in self.seq[self.done:step].tolist():
            self.left[job] = False
            self.t += int(self.p[job])
        self.done = step
        remaining = np.flatnonzero(self.left)
        return {"p": self.p[remaining], "d": self.d[remaining], "t": self.t, "n": len(self.p),
                "integral_due": self.integral_due}

    def verdict(self, step: int, position: Any) -> str | None:
        remaining = np.flatnonzero(self.left)
        asked = f"asked again in a fresh process at decision {step} (t = {self.t}, {remaining.size} jobs left)"
        job = int(self.seq[step])
        if not (type(position) is int and 0 <= position < remaining.size):
            return f"{asked}, the answer was {str(position)[:40]}, not the position of a job"
        if int(remaining[position]) != job:
            return (f"{asked}, priority() picks job {int(remaining[position])}, but the sequence runs job "
                    f"{job} there: a rule must be a function of its inputs (no state kept between calls, "
                    "no dispatcher of its own)")
        return None


class Replay:
    """Picks the decisions to replay (a secret seed per process) and compares the answers."""

    def __init__(self, cpu_budget_s: Callable[[int], float], states: int = STATES_PER_INSTANCE) -> None:
        self.cpu_budget_s = cpu_budget_s  # the run's CPU budget of an instance of n jobs
        self.states = states
        self.rng = random.Random(secrets.randbits(64))

    def _plan(self, instance: Any, solution: Any) -> _Plan | None:
        p = np.asarray(instance.data["p"], dtype=np.int64)
        n = len(p)
        reason, seq = sequence_violation(solution, n)
        if reason is not None or seq is None or n < 3:
            return None  # score() rejects a non-permutation; below 3 jobs nothing to replay
        # Decisions 1 .. n-2: the first shows the whole instance, the last has one job.
        steps = sorted(self.rng.sample(range(1, n - 1), min(self.states, n - 2)))
        d = np.asarray(instance.data["d"], dtype=np.float64)
        return _Plan(p, d, seq, steps, np.ones(n, dtype=bool), integral(d))

    def audit(self, instances: list[Any], solutions: list[Any], session: Any) -> list[str | None]:
        """One verdict per instance: None, or why its sequence is not what the rule builds."""
        plans = {k: plan for k, (instance, solution) in enumerate(zip(instances, solutions, strict=True))
                 if solution is not None and (plan := self._plan(instance, solution)) is not None}
        verdicts: list[str | None] = [None] * len(instances)
        for round_ in range(self.states):
            asked = [(k, plan, plan.steps[round_]) for k, plan in plans.items()
                     if verdicts[k] is None and round_ < len(plan.steps)]
            if not asked:
                break
            reply = session.call({"states": [plan.state(step) for _, plan, step in asked]},
                                 reply_limit=REPLY_NOTE_BYTES + REPLY_BYTES_PER_STATE * len(asked))
            allowed = CALL_S + sum(2 * self.cpu_budget_s(len(plan.p)) / len(plan.p) for _, plan, _ in asked)
            failed = None
            if reply.error is not None:
                failed = f"asked again in a fresh process at some of its decisions, priority() raised {reply.error}"
            elif reply.cpu_seconds > allowed:
                failed = (f"asked again in a fresh process at {len(asked)} decisions (one per instance), it took "
                          f"{reply.cpu_seconds:.3f} s of CPU, {allowed:.3f} s allowed: a rule's cost per decision "
                          "must not hide in earlier calls")
            elif not isinstance(reply.value, np.ndarray) or reply.value.shape != (len(asked),):
                failed = "asked again in a fresh process, the reply was not one choice per decision asked"
            answers = [None] * len(asked) if failed else reply.value.tolist()
            for (k, plan, step), position in zip(asked, answers, strict=True):
                verdicts[k] = failed or plan.verdict(step, position)
        return verdicts
