"""The schedule builder on the trusted side, asking the candidate's rule one decision at a time.

For a program that is not provably one pure expression (every model-written one), the builder
does not run in the candidate's process: there it could read the whole instance from its
caller's frames, build the split with many rule variants and keep the best, or plan, and a
replay in a fresh process could be told which variant to answer with through the wall clock
(docs/sandbox.md, fifth red team).  Here the trusted side builds every instance of the split in
lockstep and each call of the session carries one decision of each unfinished instance: the
rule sees the features of decisions and nothing else, so what it can do is what a dispatching
rule can do.  It may keep state between calls (an online rule with memory); its schedule is
the one it built, checked and scored by the trusted side like any other.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from evolve.evaluators.jssp.builder import FEATURES, build_steps, schedule_solution
from evolve.evaluators.jssp.candidate_side import MAX_REASON
from evolve.evaluators.jssp.model import shop_from_payload
from evolve.verifier import REPLY_NOTE_BYTES, Instance

# What a reply may hold: one position or one reason (MAX_REASON characters, up to 12 bytes each
# as JSON escapes of a surrogate pair) per decision.  Every byte is read and parsed here: a rule padding its replies
# with whitespace to the sandbox's 64 MiB made the controller spend 6.1 s of CPU on jssp's
# quick split, where an honest rule costs it none to speak of (docs/sandbox.md, sixth red team).
REPLY_BYTES_PER_DECISION = 16 * MAX_REASON

Steps = Generator[dict[str, Any], int, np.ndarray]


def drive(instances: list[Instance], session: Any) -> list[tuple[Any, str | None]]:
    """(solution, None) or (None, why) per instance, every schedule built here with the
    choices the session's rule makes."""
    results: list[tuple[Any, str | None]] = [(None, None)] * len(instances)
    pending: dict[int, tuple[Steps, dict[str, Any]]] = {}
    shops = [shop_from_payload(instance.name, instance.data) for instance in instances]
    for k, (instance, shop) in enumerate(zip(instances, shops, strict=True)):
        steps = build_steps(shop.machines, shop.durations, shop.lengths, shop.n_machines,
                            instance.data["scheme"], FEATURES)
        _advance(k, steps, None, pending, results, instances, shops)
    while pending:
        asked = list(pending.items())
        reply = session.call({"decisions": [features for _, (_, features) in asked]},
                             reply_limit=REPLY_NOTE_BYTES + REPLY_BYTES_PER_DECISION * len(asked))
        answers = _answers(reply, [len(features["proc_time"]) for _, (_, features) in asked])
        for (k, (steps, features)), answer in zip(asked, answers, strict=True):
            if isinstance(answer, str):
                del pending[k]
                results[k] = (None, f"{answer} (asked at a decision at time {features['now']:g} with "
                                    f"{len(features['proc_time'])} candidates)")
            else:
                _advance(k, steps, answer, pending, results, instances, shops)
    return results


def _advance(k: int, steps: Steps, pick: int | None, pending: dict[int, tuple[Steps, dict[str, Any]]],
             results: list[tuple[Any, str | None]], instances: list[Instance], shops: list[Any]) -> None:
    try:
        pending[k] = (steps, next(steps) if pick is None else steps.send(pick))
    except StopIteration as done:
        pending.pop(k, None)
        shop = shops[k]
        results[k] = (schedule_solution(done.value, shop.durations, shop.lengths, instances[k].data["scheme"]), None)


def _answers(reply: Any, counts: list[int]) -> list[int | str]:
    """One choice (a candidate's position) or one reason per decision asked; the reply comes
    from the candidate's process, so nothing in it is taken on trust.  A reason is the rule's
    error (the engine reports it as raised) or, for a reply that is not an answer, starts with
    "solution" (reported as an invalid solution)."""
    if reply.error is not None:
        return [str(reply.error)[:MAX_REASON]] * len(counts)
    value = reply.value
    if isinstance(value, np.ndarray) and value.dtype == np.int64 and value.shape == (len(counts),):
        value = value.tolist()
    if type(value) is not list or len(value) != len(counts):
        return ["solution not built: the reply was not one answer per decision asked"] * len(counts)
    out: list[int | str] = []
    for answer, count in zip(value, counts, strict=True):
        if type(answer) is int and 0 <= answer < count:
            out.append(answer)
        elif type(answer) is str:
            out.append(answer[:MAX_REASON])
        else:
            out.append(f"solution not built: the reply named no candidate of {count} ({type(answer).__name__})")
    return out
