"""What a serving policy can time: the gap from its reply to its next call (red team probe).

    PYTHONPATH=. python bench/serving_call_gaps.py [--split train]

The trusted side simulates the engine between two calls.  A decode stretch (``stretch.py``)
sizes its arrays by its horizon, the steps to the next finish (with requests waiting) or to the
last one (without), which are true output lengths, also when a preemption cuts it to zero steps
and the policy is asked at once.  A real sandboxed policy measures each gap with its own clock
and sends it back in the fractional part of its priorities (below the integer priorities of
shortest-predicted-remaining first, so its decisions are that rule's); the trusted side logs
every stretch's horizon.  Prints, for the asks that follow a stretch cut to zero steps, the
horizons seen and the gaps per horizon range.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import evolve.evaluators.serving.engine as engine_module
from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.evaluators.serving.stretch import decode_stretch
from evolve.problem import load_problem

POLICY = """
import time, numpy as np
_last = [None]
def priority(predicted_len, generated, **_):
    t0 = time.perf_counter_ns()
    gap = 0.0 if _last[0] is None else (t0 - _last[0]) / 1000.0
    p = np.floor(np.maximum(predicted_len - generated, 1.0)) + min(gap, 99999.0) * 1e-6
    _last[0] = time.perf_counter_ns()
    return p
"""
LOG: list[tuple[int, int, int]] = []  # (horizon, steps run, requests waiting) per stretch


def logged_stretch(eng: Any, next_arrival: float, max_steps: int) -> int:
    left = eng.r_output - eng.r_generated
    horizon = int(left.min() if eng.waiting.size else left.max()) if eng.running.size else 0
    steps = decode_stretch(eng, next_arrival, max_steps)
    LOG.append((horizon, steps, int(eng.waiting.size)))
    return steps


class Recording:
    """The session, keeping the stretches before each call and the gap the policy measured."""

    def __init__(self, session: Any) -> None:
        self.session, self.rows = session, []

    @property
    def source(self) -> str:
        return self.session.source

    def call(self, payload: Any, reply_limit: int | None = None) -> Any:
        before = LOG[:]
        LOG.clear()
        reply = self.session.call(payload, reply_limit)
        value = reply.value
        gap = float((value[0] - np.floor(value[0])) * 1e6) if isinstance(value, np.ndarray) and value.size else None
        self.rows.append((before, gap))
        return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    engine_module.decode_stretch = logged_stretch  # the engine's module-level name, trusted side
    problem = load_problem("serving")
    rows: list[tuple[list[tuple[int, int, int]], float | None]] = []
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        sandbox = evaluator._sandbox(0)
        for instance in problem.instances(args.split):
            with sandbox.session(POLICY, "priority", timeout_s=600) as session:
                recording = Recording(session)
                problem.verifier.interact(instance, recording)
                rows += recording.rows[1:]  # the first call has no gap
    cut = np.array([(before[-1][0], gap) for before, gap in rows
                    if gap is not None and before and before[-1][1] == 0], dtype=float)
    print(f"{len(rows)} calls; {len(cut)} follow a stretch cut to zero steps")
    if len(cut):
        print(f"their horizons: median {np.median(cut[:, 0]):.0f}, max {cut[:, 0].max():.0f} steps")
        for low, high in ((0, 20), (20, 100), (100, 400), (400, 4000)):
            mine = cut[(cut[:, 0] >= low) & (cut[:, 0] < high), 1]
            if mine.size:
                print(f"  horizon [{low}, {high}): {mine.size} gaps, median {np.median(mine):.0f} us, "
                      f"p25 {np.percentile(mine, 25):.0f}, p75 {np.percentile(mine, 75):.0f}")


if __name__ == "__main__":
    main()
