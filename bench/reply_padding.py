"""What a session reply padded with whitespace costs the controller (sixth red team probe).

    PYTHONPATH=. python bench/reply_padding.py [--split quick] [--mib 60]

JSON allows any amount of whitespace, and the controller reads, counts and parses every byte of
a reply.  The program here is MWKR for jssp, with the sandbox side's JSON encoder wrapped so
that each reply to the trusted builder is padded to ``--mib`` MiB (under ``max_output_mb``).
Printed for MWKR and for the padded program: the evaluation's status, the controller's own CPU
time (``getrusage(RUSAGE_SELF)``: this process, not the sandbox's), the wall time and the
feedback's first line.  Before the builder bounded its replies (``reply_limit``, commit e24b31e
and earlier) the padded program cost 6.13 s of controller CPU on quick and timed out on call 26;
now its session ends at the first reply, unread.
"""

from __future__ import annotations

import argparse
import resource
import time

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import load_problem

MWKR = "def priority(job_work_left, **_):\n    return job_work_left\n"
PADDED = r'''
import sys

_side = sys.modules["evolve.sandbox.session_child"]  # loaded in every candidate's process
_encode = _side.encode_json

def _padded(value):
    text = _encode(value)
    if isinstance(value, list):
        return text[:-1] + " " * (MIB << 20) + "]"
    return text

_side.encode_json = _padded

def priority(job_work_left, **_):
    return job_work_left
'''


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="quick")
    parser.add_argument("--mib", type=int, default=60, help="size of every padded reply")
    args = parser.parse_args()
    problem = load_problem("jssp")
    instances = problem.instances(args.split)
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        evaluator.run_split(MWKR, instances[:1], args.split)  # the sandbox started
        for name, code in (("MWKR", MWKR), (f"MWKR, replies padded to {args.mib} MiB",
                                            PADDED.replace("MIB", str(args.mib)))):
            cpu0, wall0 = cpu(), time.perf_counter()
            evaluation = evaluator.run_split(code, instances, args.split)
            print(f"{name}: {evaluation.status}, controller CPU {cpu() - cpu0:.2f} s, wall "
                  f"{time.perf_counter() - wall0:.2f} s | {evaluation.feedback.splitlines()[0][:120]}")


if __name__ == "__main__":
    main()
