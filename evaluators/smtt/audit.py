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

The track admits *index rules*, the class of EDD, MDD, ATC and MDDC: a job's priority is a
function of its own p and d and the decision's scalar state.  A look-ahead (a pilot method:
try a few jobs first, complete the schedule with MDD, rank by the outcome) is a function of
its inputs too, but a job's priority then depends on the other jobs' p and d.  So the first
call of the session asks each instance once, at a random decision with at least
``SUBSET_MIN_JOBS`` jobs left, showing only the job the run chose there and a random half of
the others, with the scalar inputs of the *full* state (t, remaining_work, jobs_left, p_mean,
...).  An index rule gives every shown job the priority it had in the run, so the run's
choice, the first of the lowest there, is the first of the lowest here.  A look-ahead's
choice needs the removed jobs, and nothing in this process has seen them: it is the first
call, and it shows one state per instance.  A rule may notice the call (jobs_left is not
len(p)); that does not give it the removed jobs.  One such call per instance and process: a
second one, or any full call before it, would show jobs the first one removed.  So the
engine gives ``Replay.subsets`` ``SUBSET_SESSIONS - 1`` more fresh sessions, one subset
call each.

A look-ahead acts like an index rule at most decisions (the pilot method of the 2026-12-07
clean-room run departs from MDD at about 1 % of them) and only its departures can show, so
half of the checks are drawn among the decisions where the run's job is not MDD's (when
there are such decisions), half among all.  An index rule passes wherever it is asked.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolve.evaluators.smtt.dispatch import RULE_INPUTS, inputs_at, integral
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
# The subset check: decisions with at least this many jobs left (at least two removed: with one,
# its p and d follow from remaining_work and d_mean); the run's choice and half of the others
# shown.  Not 8: no decision with 7 jobs or fewer left was ever asked, and MDD that orders the
# last seven jobs as well as it can (every order tried) passed every audit, train score -1.287
# against MDD's -1.360 (thirteenth red team, docs/sandbox.md); at 4 only the last three are
# unasked (0.014 points of mean gap).
SUBSET_MIN_JOBS = 4
# Subset checks per instance, each in a fresh process of its own (the audit's and its reaudits).
SUBSET_SESSIONS = 8
# Instances whose MDD departures are kept between an evaluation's sessions.
_DEPARTURES_KEPT = 4096
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


@dataclass
class _Subset:
    """One instance's subset check: a decision asked with some unscheduled jobs removed."""

    step: int
    shown: np.ndarray  # job indices, input order; the run's choice is one of them
    removed: int
    state: dict[str, Any]

    def verdict(self, job: int, position: Any) -> str | None:
        asked = (f"asked again in a fresh process at decision {self.step} with {self.removed} of the jobs it "
                 "was not choosing removed")
        if not (type(position) is int and 0 <= position < self.shown.size):
            return f"{asked}, the answer was {str(position)[:40]}, not the position of a job"
        if int(self.shown[position]) != job:
            return (f"{asked}, priority() picks job {int(self.shown[position])} instead of job {job}: its choice "
                    "depends on jobs it was not choosing, so it is not an index rule (each job's priority from "
                    "its own p and d and the scalar inputs, as EDD, MDD, ATC and MDDC); use p_mean, jobs_left, "
                    "remaining_work and the other scalars instead of reductions of p and d, and no look-ahead")
        return None


def mdd_departures(p: np.ndarray, d: np.ndarray, seq: np.ndarray, last: int) -> list[int]:
    """The decisions up to ``last`` where the sequence's job is not MDD's there (max(d, t + p),
    ties in input order)."""
    left = np.ones(len(p), dtype=bool)
    work = p.astype(np.float64)
    t, out = 0, []
    for step, job in enumerate(seq[:last + 1].tolist()):
        remaining = np.flatnonzero(left)
        if int(remaining[int(np.argmin(np.maximum(d[remaining], t + work[remaining])))]) != job:
            out.append(step)
        left[job] = False
        t += int(p[job])
    return out


def subset_state(p: np.ndarray, d: np.ndarray, seq: np.ndarray, step: int, shown: np.ndarray,
                 integral_due: bool) -> dict[str, Any]:
    """The state at ``step`` with only the jobs ``shown``, and the full state's scalar inputs
    (the floats ``dispatch`` passed there: ``inputs_at`` over every unscheduled job)."""
    left = np.ones(len(p), dtype=bool)
    left[seq[:step]] = False
    t = int(p[~left].sum())
    scalars = inputs_at(set(RULE_INPUTS) - {"p", "d"}, p[left], d[left], t, len(p), integral_due)
    return {"p": p[shown], "d": d[shown], "t": t, "n": len(p), "integral_due": integral_due, "scalars": scalars}


class Replay:
    """Picks the decisions to replay (a secret seed per process) and compares the answers."""

    def __init__(self, cpu_budget_s: Callable[[int], float], states: int = STATES_PER_INSTANCE) -> None:
        self.cpu_budget_s = cpu_budget_s  # the run's CPU budget of an instance of n jobs
        self.states = states
        self.rng = random.Random(secrets.randbits(64))
        self._departures: dict[bytes, list[int]] = {}  # an evaluation's sessions share them

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

    def _departures_of(self, plan: _Plan) -> list[int]:
        last = len(plan.p) - SUBSET_MIN_JOBS
        key = hashlib.blake2b(b"".join(a.tobytes() for a in (plan.p, plan.d, plan.seq))).digest()
        found = self._departures.get(key)
        if found is None:
            found = mdd_departures(plan.p, plan.d, plan.seq, last)
            if len(self._departures) >= _DEPARTURES_KEPT:
                self._departures.clear()
            self._departures[key] = found
        return found

    def _subset(self, plan: _Plan) -> _Subset | None:
        """A decision with at least SUBSET_MIN_JOBS jobs left (the first one too: half of the
        instance is not the instance), one where the run departs from MDD half of the time,
        the run's choice there and a random half of the others."""
        n = len(plan.p)
        if n < SUBSET_MIN_JOBS:
            return None
        departures = self._departures_of(plan)
        step = (self.rng.choice(departures) if departures and self.rng.random() < 0.5
                else self.rng.randrange(n - SUBSET_MIN_JOBS + 1))
        left = np.ones(n, dtype=bool)
        left[plan.seq[:step]] = False
        chosen = int(plan.seq[step])
        others = [j for j in np.flatnonzero(left).tolist() if j != chosen]
        kept = self.rng.sample(others, len(others) // 2)
        shown = np.array(sorted([chosen, *kept]), dtype=np.int64)
        return _Subset(step, shown, len(others) - len(kept),
                       subset_state(plan.p, plan.d, plan.seq, step, shown, plan.integral_due))

    def subsets(self, instances: list[Any], solutions: list[Any], session: Any) -> list[str | None]:
        """One verdict per instance from a subset check alone, in a session of its own."""
        verdicts: list[str | None] = [None] * len(instances)
        self._subsets(self._plans(instances, solutions), verdicts, session)
        return verdicts

    def _plans(self, instances: list[Any], solutions: list[Any]) -> dict[int, _Plan]:
        return {k: plan for k, (instance, solution) in enumerate(zip(instances, solutions, strict=True))
                if solution is not None and (plan := self._plan(instance, solution)) is not None}

    def _subsets(self, plans: dict[int, _Plan], verdicts: list[str | None], session: Any) -> None:
        """A session's first call: each instance's subset check (``_Subset``)."""
        asked = [(k, plan, check) for k, plan in plans.items() if (check := self._subset(plan)) is not None]
        if not asked:
            return
        reply = session.call({"states": [check.state for _, _, check in asked]},
                             reply_limit=REPLY_NOTE_BYTES + REPLY_BYTES_PER_STATE * len(asked))
        failed = self._failed(reply, [plan for _, plan, _ in asked], "with some jobs removed")
        answers = [None] * len(asked) if failed else reply.value.tolist()
        for (k, plan, check), position in zip(asked, answers, strict=True):
            verdicts[k] = failed or check.verdict(int(plan.seq[check.step]), position)

    def _failed(self, reply: Any, plans: list[_Plan], how: str) -> str | None:
        """Why a call's reply fails as a whole: raised, over its CPU, not one choice per state."""
        allowed = CALL_S + sum(2 * self.cpu_budget_s(len(plan.p)) / len(plan.p) for plan in plans)
        if reply.error is not None:
            return f"asked again in a fresh process at some of its decisions, priority() raised {reply.error}"
        if reply.cpu_seconds > allowed:
            return (f"asked again in a fresh process at {len(plans)} decisions (one per instance, {how}), it "
                    f"took {reply.cpu_seconds:.3f} s of CPU, {allowed:.3f} s allowed: a rule's cost per decision "
                    "must not hide in earlier calls")
        if not isinstance(reply.value, np.ndarray) or reply.value.shape != (len(plans),):
            return "asked again in a fresh process, the reply was not one choice per decision asked"
        return None

    def audit(self, instances: list[Any], solutions: list[Any], session: Any) -> list[str | None]:
        """One verdict per instance: None, or why its sequence is not what the rule builds."""
        plans = self._plans(instances, solutions)
        verdicts: list[str | None] = [None] * len(instances)
        self._subsets(plans, verdicts, session)
        for round_ in range(self.states):
            asked = [(k, plan, plan.steps[round_]) for k, plan in plans.items()
                     if verdicts[k] is None and round_ < len(plan.steps)]
            if not asked:
                break
            reply = session.call({"states": [plan.state(step) for _, plan, step in asked]},
                                 reply_limit=REPLY_NOTE_BYTES + REPLY_BYTES_PER_STATE * len(asked))
            failed = self._failed(reply, [plan for _, plan, _ in asked], "in the run's order")
            answers = [None] * len(asked) if failed else reply.value.tolist()
            for (k, plan, step), position in zip(asked, answers, strict=True):
                verdicts[k] = failed or plan.verdict(step, position)
        return verdicts
