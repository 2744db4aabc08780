"""Trusted replay of a priority rule's decisions: is the schedule what the rule builds?

The schedule builder runs in the candidate's process, so a program can replace it (a few
hundred randomised restarts of MWKR, keeping the best) or keep state, and what comes back is
still a valid schedule of the scheme's class: ``check_schedule`` cannot tell, and the gap
would be read as a dispatching rule's.  Every non-delay or active schedule is built by the
scheme with *some* sequence of choices: the one that starts first in that schedule, among the
candidates of each decision.  So the trusted side rebuilds the validated schedule with that
oracle, recording every decision's features and choice, and the engine's audit asks the
candidate's rule again, in a *fresh* session (a new process: nothing kept from the run), at
every decision of each instance (or at a sample, chosen at random with a seed the candidate
never sees); each call asks one decision of each instance, in the run's order, so no call shows
what came after a decision it asks about.  A rule that is a function of its features picks the same
candidate; anything else fails the instance.  A decision's features never show the instance.
"""

from __future__ import annotations

import random
import secrets
from typing import Any

import numpy as np

from evolve.evaluators.jssp.builder import build_schedule
from evolve.evaluators.jssp.check import check_schedule
from evolve.evaluators.jssp.model import shop_from_payload

# Every decision is asked again (None).  A sample of 8 was a lottery a search wins: MWKR that
# departed at one decision (of the first 40) on each instance with 150 decisions or more, found by
# rebuilding the instance from the caller's frame, escaped a sample with probability ~0.74 and
# scored 11.23 % on train against MWKR's 12.06 %; at one departure per instance wherever it pays,
# half the evaluations escaping gained 1.4 points of mean gap (tests/test_jssp_attacks.py).
DECISIONS_PER_INSTANCE: int | None = None


def decisions(shop: Any, start: np.ndarray, scheme: str) -> list[tuple[dict[str, Any], int]] | None:
    """(features, the position of the candidate ``start`` runs first) at every decision that
    the scheme builds ``start`` with, or None if the scheme does not build it."""
    asked: list[np.ndarray] = []
    out: list[tuple[dict[str, Any], int]] = []

    def first_in_schedule(**features: Any) -> np.ndarray:
        starts = start[asked[-1], features["op_index"].astype(np.int64)].astype(np.float64)
        out.append((features, int(starts.argmin())))
        return -starts  # the highest is dispatched: the earliest start

    rebuilt = build_schedule(first_in_schedule, shop.machines, shop.durations, shop.lengths,
                             shop.n_machines, scheme, observe=asked.append)
    valid = rebuilt >= 0
    if not np.array_equal(valid, start >= 0) or not np.array_equal(rebuilt[valid], start[valid]):
        return None
    return out


class Replay:
    """Picks the decisions to replay (a secret seed per process) and compares the answers."""

    def __init__(self, decisions: int | None = DECISIONS_PER_INSTANCE) -> None:
        self.decisions = decisions
        self.rng = random.Random(secrets.randbits(64))

    def audit(self, instances: list[Any], solutions: list[Any], session: Any) -> list[str | None]:
        """One verdict per instance: None, or why its schedule is not what the rule builds."""
        verdicts: list[str | None] = [None] * len(instances)
        plans: dict[int, list[tuple[int, dict[str, Any], int]]] = {}
        for k, (instance, solution) in enumerate(zip(instances, solutions, strict=True)):
            shop, scheme = shop_from_payload(instance.name, instance.data), instance.data["scheme"]
            reason, checked = check_schedule(shop, solution, scheme)
            if solution is None or reason is not None or checked is None:
                continue  # score() names what is wrong with it
            made = decisions(shop, checked.start, scheme)
            if made is None:  # a schedule of the class is always rebuilt; say so if not
                verdicts[k] = f"the {scheme} builder does not rebuild this schedule"
                continue
            picks = (range(len(made)) if self.decisions is None
                     else sorted(self.rng.sample(range(len(made)), min(self.decisions, len(made)))))
            plans[k] = [(index, *made[index]) for index in picks]
        for round_ in range(max((len(plan) for plan in plans.values()), default=0)):
            asked = [(k, *plan[round_]) for k, plan in plans.items() if verdicts[k] is None and round_ < len(plan)]
            if not asked:
                break
            reply = session.call({"decisions": [features for _, _, features, _ in asked]})
            failed = None
            if reply.error is not None:
                failed = f"asked again in a fresh process at some of its decisions, priority() raised {reply.error}"
            elif not isinstance(reply.value, np.ndarray) or reply.value.shape != (len(asked),):
                failed = "asked again in a fresh process, the reply was not one choice per decision asked"
            answers = [None] * len(asked) if failed else reply.value.tolist()
            for (k, index, features, chosen), picked in zip(asked, answers, strict=True):
                if failed or picked != chosen:
                    verdicts[k] = failed or (
                        f"asked again in a fresh process at decision {index + 1} (time {features['now']:g}, "
                        f"{len(features['proc_time'])} candidates), priority() picks candidate {picked}, but the "
                        f"schedule runs candidate {chosen} first: a rule must be a function of its features (no "
                        "state kept between calls, no schedule builder of its own)")
        return verdicts
