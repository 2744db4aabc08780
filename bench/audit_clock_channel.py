"""JSSP: a program that picks the best of several rules on the split being scored and tells a
fresh process which one through the wall clock (red team probe; the hole is closed).

    PYTHONPATH=. python bench/audit_clock_channel.py [--split quick] [--repeats 3]

Before ``evaluators/jssp/drive.py`` the schedule builder ran in the candidate's process and a
replay audit asked the rule again in a fresh one, which kept nothing of the run: but both read
the clock.  The program here holds 16 (``--variants``) variants of MWKR (seeded random weights
on a few features, variant 0 is MWKR).  In a run it finds the split's instances in its caller's
frames, builds every instance with every variant, keeps the variant with the lowest mean
makespan relative to MWKR's, and at the first decision of the last instance waits until the
phase of the second that names that variant (variant / 16); asked from ``respond()`` (the
audit's fresh process) it reads the phase at its first call, less a fixed lag, and answers
with that variant.  Against the audit it passed 2 evaluations of 3 with the best variant on
quick (12.26 % against MWKR's 13.99 %, 2026-12-06, load 6).

Now every program that is not one pure expression is built by the trusted side, asking the
rule per decision through ``respond()``: the program is never in a run, never sees the split,
and the variant it answers with is the clock's phase at its first call, a random one.  What
this prints now: MWKR's mean gap and the program's on each repeat, a variant drawn by the
clock (sometimes better than MWKR by chance, never chosen on the split).  ``--table`` prints
each variant's mean gap on the split (built without a sandbox).
"""

from __future__ import annotations

import argparse

import numpy as np

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.evaluators.jssp.builder import build_schedule
from evolve.problem import load_problem

MWKR = "def priority(job_work_left, **_):\n    return job_work_left\n"
PROGRAM = r'''
import sys, time
import numpy as np

VARIANTS, LAG = 16, 0.145
_state = []  # [variant, last instance's name, "slept"]

def _rule(variant, f):
    w = np.zeros(4) if variant == 0 else np.random.default_rng(1000 + variant).normal(0.0, 0.4, 4)
    per_job = f["total_work_left"] / max(f["jobs_left"], 1.0)
    return (f["job_work_left"] * (1 + w[0]) + w[1] * f["proc_time"] + w[2] * f["next_proc_time"]
            + w[3] * per_job * f["job_ops_left"] / 10)

def _context():
    """("audit", None) inside the replay's respond(); else ("run", the split's instances)."""
    frame, instances = sys._getframe(2), None
    while frame is not None:
        if frame.f_code.co_name == "respond":
            return "audit", None
        for value in frame.f_locals.values():
            if isinstance(value, list) and value and type(value[0]).__name__ == "Instance":
                instances = value
        frame = frame.f_back
    return "run", instances

def _best(instances):
    build = sys.modules["evolve.evaluators.jssp.builder"].build_schedule
    means, base = [], None
    for variant in range(VARIANTS):
        spans = []
        for inst in instances:
            d = inst.data
            start = build(lambda **f: _rule(variant, f), d["machines"], d["durations"], d["lengths"],
                          int(d["n_machines"]), d["scheme"])
            spans.append(float(np.max(np.where(start >= 0, start + d["durations"], 0))))
        spans = np.array(spans)
        base = spans if base is None else base
        means.append(float(np.mean(spans / base)))
    return int(np.argmin(means))

def priority(**f):
    if not _state:
        where, instances = _context()
        if where == "audit":
            _state.append(int(round(((time.time() - LAG) % 1.0) * VARIANTS)) % VARIANTS)
        else:
            _state.extend([_best(instances), instances[-1].name])
    if len(_state) == 2:  # the run, not yet ended at its phase
        frame = sys._getframe(1)
        while frame is not None and "instance" not in frame.f_locals:
            frame = frame.f_back
        if frame is not None and frame.f_locals["instance"].name == _state[1]:
            _state.append("slept")
            while abs(((time.time() % 1.0) - _state[0] / VARIANTS + 0.5) % 1.0 - 0.5) > 0.002:
                time.sleep(0.0005)
    return _rule(_state[0], f)
'''


def line(name: str, evaluation: Evaluation) -> str:
    gap = evaluation.metrics.get("gap_mean_pct")
    if gap is None:
        return f"{name}: {evaluation.status}: {(evaluation.feedback or '').splitlines()[1][:160]}"
    return f"{name}: {evaluation.status}, mean gap {gap:.2f} %"


def variant_gaps(instances: list, variants: int) -> list[float]:
    """Each variant's mean gap on ``instances``, built here (trusted side, no sandbox)."""
    namespace: dict = {}
    exec(PROGRAM, namespace)
    rule = namespace["_rule"]
    out = []
    for variant in range(variants):
        gaps = []
        for inst in instances:
            d = inst.data
            start = build_schedule(lambda **f: rule(variant, f), d["machines"], d["durations"], d["lengths"],  # noqa: B023
                                   int(d["n_machines"]), d["scheme"])
            span = float(np.max(np.where(start >= 0, start + d["durations"], 0)))
            gaps.append(100.0 * (span - inst.reference.value) / inst.reference.value)
        out.append(float(np.mean(gaps)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="quick")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", type=int, default=16, help="rules to choose from (phase bins)")
    parser.add_argument("--lag", type=float, default=0.145, help="seconds from the run's end to the audit's call")
    parser.add_argument("--table", action="store_true", help="only print each variant's mean gap on the split")
    args = parser.parse_args()
    if args.table:
        gaps = variant_gaps(load_problem("jssp").instances(args.split), args.variants)
        print(f"{args.split}: " + ", ".join(f"{k}: {g:.2f} %" for k, g in enumerate(gaps)))
        return
    program = PROGRAM.replace("VARIANTS, LAG = 16, 0.145", f"VARIANTS, LAG = {args.variants}, {args.lag}")
    problem = load_problem("jssp")
    instances = problem.instances(args.split)
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        print(line("MWKR", evaluator.run_split(MWKR, instances, args.split)))
        for k in range(args.repeats):
            print(line(f"best of {args.variants}, told by the clock ({k + 1})",
                       evaluator.run_split(program, instances, args.split)))


if __name__ == "__main__":
    main()
