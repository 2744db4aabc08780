"""What a worker's private copies of the filesystem view cost: start-up time and memory.

    PYTHONPATH=. python bench/view_copy.py [--starts 5]

Starts a sandbox (a trivial verifier) ``--starts`` times, one at a time, and reports the
median start-up wall time (interpreter, imports, view, probe candidate), the worker's RSS
and how much the machine's ``Shmem`` (tmpfs pages, /proc/meminfo) grew while it lived: the
copies (docs/sandbox.md, "Why copies").  Run it against an older checkout the same way to
compare; other processes' tmpfs use moves ``Shmem`` too, hence the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolation import VERIFIER, machine  # noqa: E402

from evolve.sandbox import Sandbox, SandboxLimits


def shmem_kib() -> int:
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) for line in meminfo if line.startswith("Shmem:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    walls, rss, shmem = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench_verifier.py").write_text(VERIFIER)
        os.chmod(tmp, 0o755)
        for _ in range(args.starts):
            before, start = shmem_kib(), time.perf_counter()
            sandbox = Sandbox("bench_verifier:Echo", SandboxLimits(timeout_s=5), slot=0, extra_sys_path=[tmp])
            walls.append(time.perf_counter() - start)
            rss.append((sandbox.worker_rss_kb or 0) / 1024)
            shmem.append((shmem_kib() - before) / 1024)
            facts = sandbox.facts
            sandbox.close()
    print("\n".join(machine()))
    print(f"filesystem: {facts['filesystem'][1]}" if "filesystem" in facts else "filesystem: ?")
    print(f"{args.starts} starts: start-up median {statistics.median(walls) * 1000:.0f} ms "
          f"(min {min(walls) * 1000:.0f}), worker RSS {statistics.median(rss):.1f} MiB, "
          f"Shmem growth {statistics.median(shmem):.1f} MiB")


if __name__ == "__main__":
    main()
