"""An Azure-conversation-like request trace, generated (no third-party data in the repository).

The public Azure LLM inference trace 2023, conversation part, holds 19,366 requests over one
hour (5.4 requests/s). This generator keeps that size and shape: the request count, the hour,
bursty arrivals (gamma gaps, coefficient of variation 2.5, as the shipped bursty workloads) and
log-normal prompt and output lengths fitted to that trace's published medians and means
(``workload.LENGTHS["conversation"]``: prompts 1020 / 1155, outputs 129 / 211 tokens; Patel et
al., Splitwise, ISCA 2024). It writes the Azure CSV format (``TIMESTAMP,ContextTokens,
GeneratedTokens``), so the file goes through the same reader as the real trace.

    python bench/azure_like.py OUT.csv [--requests 19366] [--hours 1] [--seed 0]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from evolve.evaluators.serving.workload import LENGTHS

AZURE_CONV_REQUESTS = 19_366
START = datetime(2023, 11, 16, 18, 15, 46)
CV = 2.5


def write_trace(path: Path, requests: int = AZURE_CONV_REQUESTS, hours: float = 1.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    prompt, output = LENGTHS["conversation"].sample(rng, requests)
    shape = 1.0 / CV**2
    gaps = rng.gamma(shape, 1.0 / shape, requests)
    arrival = np.cumsum(gaps) - gaps[0]
    arrival *= hours * 3600.0 / arrival[-1]  # exactly the hour, as the public file
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t, p, o in zip(arrival.tolist(), prompt.tolist(), output.tolist(), strict=True):
        stamp = (START + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")
        lines.append(f"{stamp},{p},{o}")
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--requests", type=int, default=AZURE_CONV_REQUESTS)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_trace(args.out, args.requests, args.hours, args.seed)
    print(f"wrote {args.requests} requests over {args.hours:g} h to {args.out}")


if __name__ == "__main__":
    main()
