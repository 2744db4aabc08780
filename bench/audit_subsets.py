"""What smtt_rule's subset check costs per train evaluation of a candidate rule.

    PYTHONPATH=. nice -n 10 python bench/audit_subsets.py [--rounds 3] [--split train]

The audit (evaluators/smtt/audit.py) replays each instance at 32 decisions in the run's order
and, since 2026-12-07, asks each instance once with jobs removed in each of SUBSET_SESSIONS
fresh sessions (the first in the audit's own).  This evaluates MDD and MDDC written as
candidates (the baselines with a line added, so they are audited) on the split, in interleaved
rounds, three ways: without any audit, with the replay alone (the audit before the subset
check), and with today's; it prints the median wall seconds of each and the differences.

    PYTHONPATH=. nice -n 10 python bench/audit_subsets.py --departures 4

prints instead, for the pilot method of tests/programs/, its departures from MDD on the first 4
train instances of each size and how many of them a random-half subset catches.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.evaluators.smtt import audit
from evolve.problem import load_problem


def departures(per_size: int) -> None:
    """Where a look-ahead can be caught: at every decision (>= SUBSET_MIN_JOBS jobs left) of the
    first ``per_size`` train instances of each size, whether the pilot fixture's job is MDD's,
    and where it is not, whether its choice with a random half of the other jobs removed (the
    audit's subset) is another job.  In this process, trusted side only."""
    import random

    import numpy as np

    from evolve.evaluators.smtt.dispatch import choices_at, dispatch

    source = (Path(__file__).resolve().parent.parent / "tests" / "programs" / "smtt_rule_pilot_method.txt").read_text()
    namespace: dict = {}
    exec(compile(source, "pilot", "exec"), namespace)  # noqa: S102 - the test fixture
    rule, rng = namespace["priority"], random.Random(1)
    by_size: dict[str, list] = {}
    for instance in load_problem("smtt_rule").instances("train"):
        by_size.setdefault(instance.group, []).append(instance)
    print(f"{'size':6} {'decisions':>9} {'departures':>10} {'caught':>6}")
    for group, instances in sorted(by_size.items(), key=lambda kv: int(kv[0][2:])):
        decisions = departed = caught = 0
        for instance in instances[:per_size]:
            p, d = np.asarray(instance.data["p"], np.int64), np.asarray(instance.data["d"], np.float64)
            seq = np.array(dispatch(rule, p, d))
            found = audit.mdd_departures(p, d, seq, len(p) - audit.SUBSET_MIN_JOBS)
            decisions += len(p) - audit.SUBSET_MIN_JOBS + 1
            departed += len(found)
            for step in found:
                left = np.ones(len(p), bool)
                left[seq[:step]] = False
                others = [j for j in np.flatnonzero(left).tolist() if j != seq[step]]
                shown = np.array(sorted([int(seq[step]), *rng.sample(others, len(others) // 2)]))
                state = audit.subset_state(p, d, seq, step, shown, audit.integral(d))
                caught += int(shown[choices_at(rule, [state])[0]]) != seq[step]
        print(f"{group:6} {decisions:9} {departed:10} {caught:6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--split", default="train")
    parser.add_argument("--departures", type=int, metavar="PER_SIZE",
                        help="instead: the pilot fixture's departures from MDD and how many a subset catches")
    args = parser.parse_args()
    if args.departures:
        departures(args.departures)
        return
    problem = load_problem("smtt_rule")
    instances = problem.instances(args.split)
    settings = RunSettings.model_validate(problem.spec.run).sandbox
    verifier = problem.verifier
    modes = {
        "no audit": lambda: setattr(verifier, "audit", None),
        "replay only": lambda: (setattr(verifier, "reaudits", 0), setattr(audit.Replay, "_subsets", _none)),
        "with subsets": lambda: None,
    }
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}; {len(instances)} {args.split} instances, {args.rounds} rounds")
    times: dict[tuple[str, str], list[float]] = {}
    with Evaluator(problem, settings) as evaluator:
        for _ in range(args.rounds):
            for name in ("mdd", "mddc"):
                source = problem.baselines[name].read_text() + "\n_AUDITED = True\n"
                for mode, apply in modes.items():
                    saved = (verifier.__dict__.copy(), audit.Replay._subsets)
                    apply()
                    verifier.replay._departures.clear()  # a search's programs have sequences of their own
                    started = time.perf_counter()
                    evaluation = evaluator.run_split(source, instances, "train")
                    times.setdefault((name, mode), []).append(time.perf_counter() - started)
                    verifier.__dict__.clear()
                    verifier.__dict__.update(saved[0])
                    audit.Replay._subsets = saved[1]
                    assert evaluation.ok, evaluation.feedback
    print(f"{'rule':6} {'mode':14} {'median s':>9}")
    for (name, mode), values in times.items():
        print(f"{name:6} {mode:14} {statistics.median(values):9.2f}")
    for name in ("mdd", "mddc"):
        base, replay, full = (statistics.median(times[(name, m)]) for m in modes)
        print(f"{name}: the replay costs {replay - base:.2f} s, the subset check {full - replay:.2f} s more")
    print(f"load at the end {os.getloadavg()[0]:.1f}")


def _none(*args: object) -> None:
    return None


if __name__ == "__main__":
    main()
