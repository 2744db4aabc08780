"""Can a concurrent candidate move another's CPU-charged moe runtime?  (`--workers 2`'s situation.)

Per round, LPT is scored on train (`evolve eval moe problems/moe/baselines/lpt.py --split train
--solutions-out ...`) three times: alone, next to a candidate spinning in pure Python, and next to
one streaming 512 MiB arrays through memory (caches and memory bandwidth), each neighbour a real
`evolve eval moe` of a hostile program run in a loop.  Printed per condition: LPT's mean charged
CPU ms per instance (``harness.charged_s``) and its ratio to the same round's run alone.

    PYTHONPATH=. python bench/moe_contention.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from evolve.evaluators.moe.harness import charged_s

NEIGHBOURS = {
    "spin": """
import time
def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        pass
    raise RuntimeError("spun")
""",
    "memory": """
import time
import numpy as np
_A = np.ones(1 << 26)
_B = np.empty_like(_A)
def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        np.copyto(_B, _A)
    raise RuntimeError("streamed")
""",
}


def charged_ms(path: Path) -> dict[str, float]:
    return {e["name"]: 1e3 * charged_s(e["solution"]["cpu_s"], len(e["solution"]["placements"]))
            for e in json.loads(path.read_text())}


def lpt(out: Path) -> dict[str, float]:
    subprocess.run(["evolve", "eval", "moe", "problems/moe/baselines/lpt.py", "--split", "train",
                    "--solutions-out", str(out)], check=True, capture_output=True)
    return charged_ms(out)


def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="moe-contention-"))
    for name, code in NEIGHBOURS.items():
        (tmp / f"{name}.py").write_text(code)
    for r in range(rounds):
        alone = lpt(tmp / "alone.json")
        print(f"round {r + 1}, {os.getloadavg()[0]:.1f} load: alone {statistics.fmean(alone.values()):.2f} ms")
        for name in NEIGHBOURS:
            loop = subprocess.Popen(["bash", "-c", f"while true; do evolve eval moe {tmp / name}.py --split train "
                                     ">/dev/null 2>&1; done"], start_new_session=True)
            time.sleep(2)
            try:
                beside = lpt(tmp / f"{name}.json")
            finally:
                os.killpg(loop.pid, 9)
                loop.wait()
            ratios = [beside[n] / alone[n] for n in alone]
            print(f"  beside {name}: {statistics.fmean(beside.values()):.2f} ms, ratio to alone per instance: "
                  f"median {statistics.median(ratios):.3f}, largest {max(ratios):.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args().rounds)
