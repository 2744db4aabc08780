"""Executor throughput with a simulated 200 ms evaluation: local vs Ray, by workers.

Each candidate's evaluation sleeps --eval-ms inside the sandbox (the tiny
problem's delay_s option); the model answers instantly. Prints iterations per
second per executor and worker count. Ray starts locally with as many logical
CPUs as the largest worker count (sleeping evaluations need no real core).

    python bench/ray_throughput.py [--iterations 100] [--eval-ms 200] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse

from loop_overhead import machine_line, run_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--eval-ms", type=float, default=200.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(machine_line())
    import ray

    ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"ray {ray.__version__}; evaluation {args.eval_ms:g} ms; {args.iterations} iterations")
    print(f"{'executor':>9} {'workers':>8} {'seconds':>8} {'it/s':>7}")
    for executor in ("local", "ray"):
        for workers in args.workers:
            progress, seconds, _, _, _ = run_loop(
                args.iterations, concurrency=2 * workers, workers=workers, window=10**9,
                extra={"executor": executor}, options={"delay_s": args.eval_ms / 1000},
            )
            print(f"{executor:>9} {workers:>8} {seconds:>8.1f} {progress.done / seconds:>7.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
