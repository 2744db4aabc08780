"""The "before" of bench/serving_trace.py: the serving verifier as it was at commit 8b45062.

Run it with an interpreter whose ``evolve`` package is that commit (this file uses its API:
``policy.simulate`` in the sandbox, ``replay`` on the trusted side), on the same trace:

    git worktree add /tmp/before 8b45062 && python -m venv /tmp/venv-before
    /tmp/venv-before/bin/pip install -e /tmp/before
    python bench/azure_like.py /tmp/azure_conv_like.csv
    /tmp/venv-before/bin/python bench/serving_trace_before.py /tmp/azure_conv_like.csv

It times, in CPU seconds of one process, the three simulations that ``evolve eval serving
POLICY --trace FILE`` ran then (the FCFS reference while loading the trace, the candidate's
simulation inside the sandbox, the trusted replay of its decisions); the sandbox itself added
only the transfer of the decision record.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from evolve.evaluators.serving.policy import simulate  # the API of 8b45062
from evolve.evaluators.serving.verifier import ServingVerifier

REPO = Path(__file__).resolve().parents[1]


def load(path: Path) -> object:
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["priority"]


def main() -> None:
    trace = Path(sys.argv[1])
    verifier = ServingVerifier(REPO / "problems" / "serving", {})
    print(f"load {os.getloadavg()[0]:.1f}")
    for name in ("fcfs", "shortest_prompt", "sjf_predicted"):
        fn = load(REPO / "problems" / "serving" / "baselines" / f"{name}.py")
        c0 = time.process_time()
        (instance,) = verifier.load_instances(trace)
        c1 = time.process_time()
        solution = json.loads(json.dumps(simulate(fn, instance.data)))
        c2 = time.process_time()
        result = verifier.score(instance, solution)
        c3 = time.process_time()
        print(f"{name}: FCFS reference {c1 - c0:.2f} s, candidate simulation {c2 - c1:.2f} s, trusted replay "
              f"{c3 - c2:.2f} s, total {c3 - c0:.2f} s CPU; {solution['steps']:,} steps; feasible {result.feasible}")


if __name__ == "__main__":
    main()
