"""Throughput with a slow model: proposals in flight vs one call at a time.

A local OpenAI-compatible server answers after --latency-ms (default 200 ms);
the tiny problem's evaluation is ~0.05 ms. Prints iterations per second for
each --concurrency and the speed-up over concurrency 1.

    python bench/concurrency.py [--iterations 160] [--latency-ms 200] [--levels 1 2 4 8]
"""

from __future__ import annotations

import argparse

from loop_overhead import machine_line, run_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=160)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    print(machine_line())
    print(f"\nmodel latency {args.latency_ms:g} ms, {args.iterations} iterations, 1 evaluation worker")
    print(f"{'concurrency':>11} {'seconds':>8} {'it/s':>7} {'speed-up':>9}")
    base = None
    for level in args.levels:
        progress, seconds, _, _, _ = run_loop(args.iterations, args.latency_ms, concurrency=level, window=10**9)
        rate = progress.done / seconds
        base = base or rate
        print(f"{level:>11} {seconds:>8.1f} {rate:>7.2f} {rate / base:>8.1f}x")


if __name__ == "__main__":
    main()
