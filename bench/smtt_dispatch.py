"""The rule track's dispatcher on the train split: `python bench/smtt_dispatch.py`.

Prints the CPU time per dispatching decision (the sandbox pays it for every program the search
evaluates: train is 500 instances, 34,750 decisions) for MDD written with the signature the seed
and every GP program have (all twelve inputs, so the dispatcher computes every aggregate) and
with only the three inputs it reads. In-process, no sandbox: the dispatcher's own cost.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.evaluators.smtt.dispatch import dispatch
from evolve.evaluators.smtt.generator import split_instances


def every_input(t, p, d, remaining_work, jobs_left, n, p_max, p_mean, p_min, d_min, d_mean, d_max):  # noqa: ANN001, ANN201
    return np.maximum(d, t + p)


def three_inputs(t, p, d):  # noqa: ANN001, ANN201
    return np.maximum(d, t + p)


def main(repeats: int = 3) -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, load {os.getloadavg()[0]:.1f}")
    train = split_instances("train")
    decisions = sum(len(g.p) for g in train)
    print("| MDD's signature | CPU per decision, median of 3 (min-max) | CPU for train |")
    print("|---|---|---|")
    for rule in (every_input, three_inputs):
        times = []
        for _ in range(repeats):
            started = time.process_time()
            for g in train:
                dispatch(rule, g.p, g.d)
            times.append(time.process_time() - started)
        per = [s / decisions * 1e6 for s in times]
        print(f"| {rule.__name__.replace('_', ' ')} | {statistics.median(per):.1f} us ({min(per):.1f}-{max(per):.1f}) "
              f"| {statistics.median(times):.2f} s |")


if __name__ == "__main__":
    main()
