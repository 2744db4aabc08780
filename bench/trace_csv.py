"""Reading request traces (CSV) for ``evolve eval serving --trace``: CPU time per file size.

Azure-format traces from ``bench/azure_like.py`` (the public conversation trace's size, and
a week-long one's order of magnitude), and the same requests in Vidur's format; each file is
read 5 times, the median CPU time printed (pandas' import is paid once, before).

    python bench/trace_csv.py [--sizes 19366 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from azure_like import write_trace  # bench/azure_like.py (the script folder is on sys.path)
from machine import cpu_model

from evolve.evaluators.serving.traces import read_trace


def as_vidur(azure: Path, out: Path) -> Path:
    """The same requests in Vidur's format (arrival in seconds from the first)."""
    arrival, prompt, output, _ = read_trace(azure)
    rows = "\n".join(f"{t:.6f},{p},{o}" for t, p, o in zip(arrival.tolist(), prompt.tolist(), output.tolist(),
                                                          strict=True))
    out.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n" + rows + "\n")
    return out


def cpu_seconds(path: Path, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        read_trace(path)
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[19_366, 1_000_000])
    args = parser.parse_args()
    print(f"{platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} cpus, "
          f"numpy {np.__version__}, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{'requests':>10} {'format':>7} {'MB':>6} {'CPU s':>8} {'requests/s':>12}")
        for size in args.sizes:
            azure = write_trace(folder / f"azure{size}.csv", size, hours=max(1.0, size / 19_366))
            vidur = as_vidur(azure, folder / f"vidur{size}.csv")
            for name, path in (("azure", azure), ("vidur", vidur)):
                seconds = cpu_seconds(path)
                print(f"{size:>10} {name:>7} {path.stat().st_size / 1e6:>6.1f} {seconds:>8.3f} "
                      f"{size / seconds:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
