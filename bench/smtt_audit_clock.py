"""smtt_rule: a program that picks MDD or MDDC per instance in the run (it is shown the whole
instance at the first decision and computes both tardinesses itself) and tells every audit session
its choices through the wall clock (sixth red team's probe; remade by the seventeenth for the audit
of 2026-12-07, whose first call in each of its 8 fresh sessions is a subset check).

    PYTHONPATH=. python bench/smtt_audit_clock.py --calibrate [--split train]  # lags, run end -> audits
    PYTHONPATH=. python bench/smtt_audit_clock.py [--window 0.8] [--bits 4] [--repeats 3]
    PYTHONPATH=. python bench/smtt_audit_clock.py --relay 0.04 --window 0.2 --bits 5 [--code 21]
    PYTHONPATH=. python bench/smtt_audit_clock.py --size              # what B bits buy (no sandbox)

The run is a session with one call per instance (``interact``), so a choice is made per instance
and committed with its sequence; only the run's end time reaches the audit, which opens a fresh
process right after the run's session ends, and then seven more, one after the other (``reaudits``),
each a subset check first.  The program knows an instance by its size and total work (``n`` and
``t + remaining_work``, the same at every decision and in the subset check's scalars); its bit is
its place among the first ``--bits`` instances in the split's order, which every audit session's
first call shows.  At the last decision of the last instance the run sleeps until the clock is at
the start of the window (of ``--window`` seconds, in a period of 2^bits windows) that numbers its
code; each audit session reads the window at its first call and answers each instance with the
rule its bit names (MDD where it has none; a wrong bit fails the instance's audit wherever the
two rules build different sequences).  ``--code K`` sends K instead of the better rule's bits
(which may all be 0, MDD's, on the instances named), and says on how many of them MDD and MDDC
differ.  The window must hold the lags of all 8 sessions: ``--calibrate`` times each session's first call from the trusted side (a wrapper of
``SandboxSession.call`` in this script), for MDD and MDDC, nothing sent.  With ``--relay HOP``
each audit session also ends at the code's window (it sleeps before its first reply and before
the last reply it can know is its last: a reaudit's first, the replay's last round, counted from
the instances' sizes), and the next session reads the window HOP seconds after it, rounded: a
window then holds one hop's spread, not all eight sessions'.

``--size`` reads nothing from a sandbox: per instance of quick and train it dispatches MDD, MDDC
and a few more rules (trusted side) and prints what a choice per instance would buy with B bits
in all (one (instance, rule) pair costs log2(instances) + log2(rules - 1) bits; online, a run
commits to each instance's rule before it sees the next, so that is an upper bound; the "online"
line is what a run choosing as it goes gets with one pair).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import load_problem
from evolve.sandbox import session as session_module

MDD = "import numpy as np\n\n\ndef priority(t, p, d):\n    return np.maximum(d, t + p), d, p\n"
MDDC = (
    "import numpy as np\n\n\ndef priority(t, p, d, p_max, p_mean):\n"
    "    u = np.maximum(1.1 * p + t, d)\n    r = np.minimum(p / (t + p_max), 1.0)\n"
    "    u = u * (1.0 + r**2 / (1.0 + r**2))\n    return u + p / (t + p_mean), d, p\n"
)
PROGRAM = r'''
import sys, time
import numpy as np

INSTANCES, BITS, WINDOW, EPS, RELAY, HOP = 6, 6, 0.25, 0.002, False, 0.0
FIXED = None  # a code to send instead of the choices (--code)
PERIOD = WINDOW * 2 ** BITS
_run = {}  # instance key -> its bit: 1 where MDDC beat MDD on it
_seen = []  # the run's instances so far
_audit = {"code": None, "keys": None, "calls": 0, "rounds": 0}

def _mdd(t, p, d, p_max, p_mean):
    return np.maximum(d, t + p), d, p

def _mddc(t, p, d, p_max, p_mean):
    u = np.maximum(1.1 * p + t, d)
    r = np.minimum(p / (t + p_max), 1.0)
    u = u * (1.0 + r**2 / (1.0 + r**2))
    return u + p / (t + p_mean), d, p

RULES = (_mdd, _mddc)  # bit 0: MDD, 1: MDDC

def _tardiness(rule, p, d):
    dispatch = sys.modules["evolve.evaluators.smtt.dispatch"].dispatch
    seq = np.array(dispatch(rule, p, d))
    return float(np.maximum(np.cumsum(p[seq]) - d[seq], 0).sum())

def _bit_order(keys):  # which bit of the code is whose: the first BITS instances, in the split's order
    return {k: i for i, k in enumerate(list(dict.fromkeys(keys))[:BITS])}

def priority(t, p, d, p_max, p_mean, n, jobs_left, remaining_work):
    key = (int(n), int(round(t + remaining_work)))  # the instance: its size and total work
    caller = sys._getframe(1)
    if caller.f_code.co_name == "choices_at":  # an audit session, a fresh process
        states, done = caller.f_locals["states"], len(caller.f_locals["out"])
        if _audit["code"] is None:  # its first call shows every instance (the subset check)
            if RELAY:  # the session before (or the run) ended at the code's window, HOP ago
                _audit["code"] = int(round(((time.time() - EPS - HOP) % PERIOD) / WINDOW)) % 2 ** BITS
            else:
                _audit["code"] = int(((time.time() - EPS) % PERIOD) // WINDOW)
            _audit["keys"] = _bit_order([(int(s["n"]), int(round(int(s["t"]) + s["scalars"]["remaining_work"])))
                                         for s in states])
            _audit["rounds"] = max(min(32, int(s["n"]) - 2) for s in states)  # the replay's, if it follows
        if done == 0:
            _audit["calls"] += 1
        bit = _audit["keys"].get(key)
        rule = RULES[0 if bit is None else (_audit["code"] >> bit) & 1]
        if RELAY and done == len(states) - 1 and _audit["calls"] in (1, 1 + _audit["rounds"]):
            _align(_audit["code"])  # this session's last reply, if it is one: the next session reads it
        return rule(t, p, d, p_max, p_mean)
    if jobs_left == n:  # the run: the first decision shows the whole instance
        _seen.append(key)  # (two of train's instances may share a key: the first one's rule serves both)
        if key not in _run:
            pp, dd = np.array(p, dtype=np.int64), np.array(d)
            if FIXED is not None:
                _run[key] = (FIXED >> len(_run)) & 1 if len(_run) < BITS else 0
            else:
                _run[key] = int(len(_run) < BITS and _tardiness(_mddc, pp, dd) < _tardiness(_mdd, pp, dd))
    rule = RULES[_run.get(key, 0)]
    if jobs_left == 1 and len(_seen) == INSTANCES:
        order = _bit_order(_run)
        code = sum(bit << order[k] for k, bit in _run.items() if k in order)
        _align(code)
    return rule(t, p, d, p_max, p_mean)

def _align(code):
    """Return at the start of the code's window (asleep, but for the last 2 ms)."""
    wait = (code * WINDOW + EPS - time.time() % PERIOD) % PERIOD
    time.sleep(max(wait - 0.002, 0.0))
    while (time.time() % PERIOD) < code * WINDOW + EPS:
        pass
'''


def line(name: str, evaluation: Evaluation) -> str:
    gap = evaluation.metrics.get("gap_group_mean_pct")
    if gap is None:
        lines = (evaluation.feedback or "").splitlines()
        return f"{name}: {evaluation.status}: {' | '.join(lines[1:3])[:300]}"
    return f"{name}: {evaluation.status}, gap {gap:.3f} % (group mean)"


def size(splits: list[str]) -> None:
    from evolve.evaluators.smtt.dispatch import dispatch

    namespace: dict = {}
    exec(PROGRAM, namespace)
    rules = {"MDD": namespace["_mdd"], "MDDC": namespace["_mddc"]}
    for k in (1.0, 2.0):
        rules[f"ATC k={k:g}"] = lambda t, p, d, p_max, p_mean, k=k: (
            -np.exp(-np.maximum(d - p - t, 0) / (k * p_mean)) / p, d, p)
    rules["max(d, t + 1.2 p)"] = lambda t, p, d, p_max, p_mean: (np.maximum(d, t + 1.2 * p), d, p)
    problem = load_problem("smtt_rule")
    for split in splits:
        instances = problem.instances(split)
        gaps = np.zeros((len(instances), len(rules)))
        for i, inst in enumerate(instances):
            p, d, ref = inst.data["p"], inst.data["d"], inst.reference.value
            for v, rule in enumerate(rules.values()):
                seq = np.array(dispatch(rule, p, d))
                tardiness = float(np.maximum(np.cumsum(p[seq]) - d[seq], 0).sum())
                gaps[i, v] = 100.0 * (tardiness - ref) / ref if ref else 0.0  # no gap: not in the score
        groups = np.array([inst.group for inst in instances])
        defined = np.array([bool(inst.reference.value) for inst in instances])
        weight = np.array([ok / (len(set(groups)) * np.sum(defined & (groups == g))) for g, ok in zip(groups, defined, strict=True)])
        print(f"{split} ({len(instances)} instances), group-mean gap per rule: "
              + ", ".join(f"{name} {float(weight @ gaps[:, v]):.3f} %" for v, name in enumerate(rules)))
        best = gaps.min(axis=1)
        print(f"  each instance's best of the {len(rules)} rules (every choice known): {float(weight @ best):.3f} %")
        per_pair = math.log2(len(instances)) + math.log2(len(rules) - 1)
        for base in (0, 1):
            gain = np.sort(weight * (gaps[:, base] - best))[::-1]
            print(f"  another rule than {list(rules)[base]} on the instances where it pays most: "
                  + ", ".join(f"{bits} bits, {int(bits // per_pair)} instances, {gain[:int(bits // per_pair)].sum():.3f} points"
                              for bits in (6, 9, 13)))
        # Online, as a run must choose: MDDC unless another rule is better on the instance where the
        # estimated gain (its weight in the score, known from the split's public layout, times the
        # relative cut in tardiness) first beats every one seen in the first N/e instances.
        tardiness = (gaps / 100.0 + 1.0) * np.array([inst.reference.value for inst in instances])[:, None]
        proxy = weight * (tardiness[:, 1] - tardiness.min(axis=1)) / np.maximum(tardiness.min(axis=1), 1.0)
        seen = int(len(instances) / math.e)
        later = [k for k in range(seen, len(instances)) if proxy[k] > proxy[:seen].max()]
        if later:
            k = later[0]
            print(f"  online (one pair, chosen as the run goes): instance {k} ({instances[k].group}), "
                  f"{float(weight[k] * (gaps[k, 1] - best[k])):.3f} points off MDDC")
        if len(instances) <= 16:
            both = np.minimum(gaps[:, 0], gaps[:, 1])
            print(f"  MDD or MDDC per instance ({len(instances)} bits): {float(weight @ both):.3f} %")


CALLS: list[tuple[float, str]] = []  # (time the reply was in, kind) of every session call
_CALL = session_module.SandboxSession.call


def _logged(self: Any, payload: Any, reply_limit: int | None = None) -> Any:
    kind = "run" if "p" in payload else ("subset" if "scalars" in payload["states"][0] else "replay")
    reply = _CALL(self, payload, reply_limit)
    CALLS.append((time.time(), kind))
    return reply


def lags() -> str:
    """Milliseconds from the run's last reply to each audit session's reply to its first call (a subset
    check): with ``--relay`` that reply waits for the code's window too."""
    end = max((t for t, k in CALLS if k == "run"), default=0.0)
    return ", ".join(f"{1000 * (t - end):.0f}" for t, k in CALLS if k == "subset" and t > end)


def _differing(instances: list) -> int:
    """How many of ``instances`` MDD and MDDC dispatch differently (trusted side)."""
    from evolve.evaluators.smtt.dispatch import dispatch

    namespace: dict = {}
    exec(PROGRAM, namespace)
    return sum(dispatch(namespace["_mdd"], i.data["p"], i.data["d"]) != dispatch(namespace["_mddc"], i.data["p"], i.data["d"])
               for i in instances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=float, default=0.8, help="seconds per code: more than the last session's lag")
    parser.add_argument("--bits", type=int, default=4, help="instances told (the first in the split's order)")
    parser.add_argument("--relay", type=float, default=None, metavar="HOP",
                        help="each session ends at the code's window too; the next reads it HOP s later")
    parser.add_argument("--code", type=int, default=None,
                        help="send this code (MDDC where its bit is 1) instead of the better rule's: a pass then shows "
                             "that the bits crossed wherever MDD and MDDC build different sequences (counted)")
    parser.add_argument("--calibrate", action="store_true", help="the lags of the audit sessions, MDD and MDDC")
    parser.add_argument("--split", default="quick", help="quick or train")
    parser.add_argument("--size", action="store_true", help="what a choice per instance buys, no sandbox")
    args = parser.parse_args()
    if args.size:
        size(["quick", "train"])
        return
    session_module.SandboxSession.call = _logged  # type: ignore[method-assign]
    problem = load_problem("smtt_rule")
    instances = problem.instances(args.split)
    program = PROGRAM.replace("FIXED = None", f"FIXED = {args.code}").replace(
        "INSTANCES, BITS, WINDOW, EPS, RELAY, HOP = 6, 6, 0.25, 0.002, False, 0.0",
                              f"INSTANCES, BITS, WINDOW, EPS, RELAY, HOP = {len(instances)}, {args.bits}, "
                              f"{args.window}, 0.002, {args.relay is not None}, {args.relay or 0.0}")
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        def show(name: str, code: str) -> None:
            CALLS.clear()
            evaluation = evaluator.run_split(code, instances, args.split)
            print(f"{line(name, evaluation)}; the audit sessions' first replies at {lags()} ms after the run's end",
                  flush=True)
        if args.code is not None:
            told = _differing(instances[:args.bits])
            print(f"code {args.code:0{args.bits}b} (first instance last): MDD and MDDC build different sequences on "
                  f"{told} of the {args.bits} instances it names")
        show("MDD", MDD)
        show("MDDC", MDDC)
        if args.calibrate:
            return
        for k in range(args.repeats):
            show(f"MDD or MDDC per instance, told by the clock ({k + 1})", program)


if __name__ == "__main__":
    main()
