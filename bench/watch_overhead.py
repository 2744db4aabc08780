"""Does `evolve watch` slow a run? `python bench/watch_overhead.py [--pairs 2] [--iterations 200]`.

Runs `evolve run smtt` alone and with `evolve watch` serving it to a client that polls like
the page does (/version every 0.3 s, /fragment when it changed), interleaved, and prints the
run's own wall-clock and CPU time (os.wait4 of the run process: the viewer's CPU is not in
it) for each, with the load average. On 2 cores the viewer competes for CPU when it renders
(matplotlib, at most every 2 s): wall time is what that costs the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

CLI = [sys.executable, "-m", "evolve.cli"]


def poll(url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    seen = ""
    while not stop.is_set():
        try:
            version = json.loads(urllib.request.urlopen(url + "version", timeout=30).read())["version"]
            counts["polls"] += 1
            if version != seen:
                urllib.request.urlopen(url + "fragment", timeout=60).read()
                counts["fragments"] += 1
                seen = version
        except OSError:
            pass
        stop.wait(0.3)


def one_run(folder: Path, iterations: int, watched: bool) -> tuple[float, float, dict[str, int]]:
    out = folder / f"run-{time.monotonic_ns()}"
    started = time.perf_counter()
    run = subprocess.Popen([*CLI, "run", "smtt", "--iterations", str(iterations), "--out", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    counts = {"polls": 0, "fragments": 0}
    stop, viewer, client = threading.Event(), None, None
    if watched:
        while not (out / "config.json").exists() or not (out / "archive.sqlite").exists():
            time.sleep(0.05)
        viewer = subprocess.Popen([*CLI, "watch", str(out), "--port", "0"], stdout=subprocess.PIPE, text=True)
        url = re.search(r"http://127\.0\.0\.1:\d+/", viewer.stdout.readline() if viewer.stdout else "")
        if url:
            client = threading.Thread(target=poll, args=(url.group(0), stop, counts), daemon=True)
            client.start()
    _, status, usage = os.wait4(run.pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    if client:
        client.join()
    if viewer:
        viewer.terminate()
        viewer.wait()
    assert status == 0, f"run failed: {status}"
    return wall, usage.ru_utime + usage.ru_stime, counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; evolve run smtt --iterations {args.iterations}")
    print("| run | watched | wall | run CPU | /version polls / /fragment fetches | load |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for pair in range(args.pairs):
            for watched in (False, True):
                wall, cpu, counts = one_run(Path(folder), args.iterations, watched)
                fetched = f"{counts['polls']} / {counts['fragments']}" if watched else "-"
                print(f"| {pair + 1} | {'yes' if watched else 'no'} | {wall:.1f} s | {cpu:.1f} s | {fetched} "
                      f"| {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
