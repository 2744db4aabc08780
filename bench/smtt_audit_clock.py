"""smtt_rule: a program that picks MDD or MDDC per instance in the run (it is shown the whole
instance at the first decision and computes both tardinesses itself) and tells the replay's fresh
process its choices through the wall clock (sixth red team probe).

    PYTHONPATH=. python bench/smtt_audit_clock.py --calibrate [--split train]  # lag, run end -> audit
    PYTHONPATH=. python bench/smtt_audit_clock.py --lag L [--repeats 5] [--slot 0.1]
    PYTHONPATH=. python bench/smtt_audit_clock.py --size              # what B bits buy (no sandbox)

The run is a session with one call per instance (``interact``), so a choice is made per instance
and committed with its sequence; only the run's end time reaches the audit, which opens a fresh
process right after the run's session ends.  With the quick split's 6 instances and one bit each
(MDD or MDDC), the program waits at the last decision of the last instance until the clock's
phase in a period of 2^6 slots is its code; the audit's process reads the phase at its first call,
less the lag, and answers each instance with the rule the code names.  ``--calibrate`` ends the run
at phase 0 and has the audit raise with the phase it reads (the lag, in the feedback).

``--size`` reads nothing from a sandbox: per instance of quick and train it dispatches MDD, MDDC
and a few more rules (trusted side) and prints what a choice per instance would buy with B bits
in all (one (instance, rule) pair costs log2(instances) + log2(rules - 1) bits; online, a run
commits to each instance's rule before it sees the next, so that is an upper bound; the "online"
line is what a run choosing as it goes gets with one pair).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import load_problem

MDD = "import numpy as np\n\n\ndef priority(t, p, d):\n    return np.maximum(d, t + p), d, p\n"
MDDC = (
    "import numpy as np\n\n\ndef priority(t, p, d, p_max, p_mean):\n"
    "    u = np.maximum(1.1 * p + t, d)\n    r = np.minimum(p / (t + p_max), 1.0)\n"
    "    u = u * (1.0 + r**2 / (1.0 + r**2))\n    return u + p / (t + p_mean), d, p\n"
)
PROGRAM = r'''
import sys, time
import numpy as np

INSTANCES, SLOT, LAG, CALIBRATE = 6, 0.1, 0.0, False
PERIOD = 1.0 if CALIBRATE else SLOT * 2 ** INSTANCES
_run = {"codes": [], "slept": False}
_audit = {"code": None, "calls": 0, "ns": None, "state_ids": None}

def _mdd(t, p, d, p_max, p_mean):
    return np.maximum(d, t + p), d, p

def _mddc(t, p, d, p_max, p_mean):
    u = np.maximum(1.1 * p + t, d)
    r = np.minimum(p / (t + p_max), 1.0)
    u = u * (1.0 + r**2 / (1.0 + r**2))
    return u + p / (t + p_mean), d, p

RULES = (_mdd, _mddc)

def _tardiness(rule, p, d):
    dispatch = sys.modules["evolve.evaluators.smtt.dispatch"].dispatch
    seq = np.array(dispatch(rule, p, d))
    return float(np.maximum(np.cumsum(p[seq]) - d[seq], 0).sum())

def _phase():
    return time.time() % PERIOD

def priority(t, p, d, p_max, p_mean, n, jobs_left):
    caller = sys._getframe(1)
    if caller.f_code.co_name == "choices_at":  # the replay, in a fresh process
        if _audit["code"] is None:
            phase = (_phase() - LAG) % PERIOD
            if CALIBRATE:
                raise ValueError(f"lag {(_phase()) % PERIOD:.4f} s after phase 0")
            _audit["code"] = int(round(phase / SLOT)) % 2 ** INSTANCES
        states = caller.f_locals["states"]
        if _audit["state_ids"] != id(states):  # a new call: one state per instance still asked
            _audit["state_ids"] = id(states)
            _audit["calls"] += 1
            if _audit["ns"] is None:
                _audit["ns"] = [int(s["n"]) for s in states]
        state = caller.f_locals["state"]
        place = next(k for k, s in enumerate(states) if s is state)
        asked = [k for k, m in enumerate(_audit["ns"]) if m - 2 > _audit["calls"] - 1]
        instance = asked[place]
        return RULES[(_audit["code"] >> instance) & 1](t, p, d, p_max, p_mean)
    # the run: dispatch() in the session's call for one instance
    if jobs_left == n:  # the first decision shows the whole instance
        pp, dd = np.array(p, dtype=np.int64), np.array(d)
        best = 0 if CALIBRATE else int(_tardiness(RULES[1], pp, dd) < _tardiness(RULES[0], pp, dd))
        _run["codes"].append(best)
    rule = RULES[_run["codes"][-1]]
    if jobs_left == 1 and len(_run["codes"]) == INSTANCES and not _run["slept"]:
        _run["slept"] = True
        code = sum(bit << k for k, bit in enumerate(_run["codes"]))
        while abs((_phase() - code * SLOT + PERIOD / 2) % PERIOD - PERIOD / 2) > 0.001:
            time.sleep(0.0005)
    return rule(t, p, d, p_max, p_mean)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slot", type=float, default=0.1, help="seconds per code (the phase's resolution)")
    parser.add_argument("--lag", type=float, default=0.0, help="seconds from the run's end to the audit's first call")
    parser.add_argument("--calibrate", action="store_true", help="print the lag the audit reads, per repeat")
    parser.add_argument("--split", default="quick", help="with --calibrate: the split (quick or train)")
    parser.add_argument("--size", action="store_true", help="what a choice per instance buys, no sandbox")
    args = parser.parse_args()
    if args.size:
        size(["quick", "train"])
        return
    problem = load_problem("smtt_rule")
    split = args.split if args.calibrate else "quick"
    instances = problem.instances(split)
    program = PROGRAM.replace("INSTANCES, SLOT, LAG, CALIBRATE = 6, 0.1, 0.0, False",
                              f"INSTANCES, SLOT, LAG, CALIBRATE = {len(instances)}, {args.slot}, {args.lag}, "
                              f"{args.calibrate}")
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        if args.calibrate:
            for k in range(args.repeats):
                print(line(f"calibration on {split} ({k + 1})", evaluator.run_split(program, instances, split)))
            return
        print(line("MDD", evaluator.run_split(MDD, instances, "quick")))
        print(line("MDDC", evaluator.run_split(MDDC, instances, "quick")))
        for k in range(args.repeats):
            print(line(f"MDD or MDDC per instance, told by the clock ({k + 1})",
                       evaluator.run_split(program, instances, "quick")))


if __name__ == "__main__":
    main()
