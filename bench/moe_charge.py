"""What charging the judged calls' mean CPU time moves: the runtime penalty per program, old and new.

Reads `evolve eval moe PROGRAM --solutions-out FILE` files (each instance's record holds the
CPU seconds of every timed call) and prints, from the same calls, the mean runtime penalty
(log2(1 + runtime_ms / 10), the budget-free term that was the default until 2026-12-07) under the old charge (the median, floored by
the judged calls' median) and the new one (also floored by the judged calls' mean), and by how
much the new charge moves the score.  Same calls on both sides, so machine noise cancels.

    evolve eval moe problems/moe/baselines/lpt.py --split train --solutions-out /tmp/lpt.json
    python bench/moe_charge.py /tmp/lpt.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from statistics import fmean

from evolve.evaluators.moe.harness import charged_s, typical_s


def penalty(ms: float) -> float:
    return math.log2(1.0 + ms / 10.0)


def main(paths: list[str]) -> None:
    for path in paths:
        old, new, ratios = [], [], []
        for entry in json.loads(Path(path).read_text()):
            record = entry["solution"]
            judged, cpu = len(record["placements"]), record["cpu_s"]
            before, after = 1e3 * typical_s(cpu, judged), 1e3 * charged_s(cpu, judged)
            old.append(penalty(before))
            new.append(penalty(after))
            ratios.append(after / before if before > 0 else 1.0)
        print(f"{path}: penalty {fmean(old):.4f} -> {fmean(new):.4f} (score {fmean(old) - fmean(new):+.4f}); "
              f"charge new/old: largest {max(ratios):.3f}, instances moved by over 10 %: "
              f"{sum(r > 1.1 for r in ratios)} of {len(ratios)}")


if __name__ == "__main__":
    main(sys.argv[1:])
