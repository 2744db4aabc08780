"""Issue 14's figures for two trees, in interleaved rounds: the A/B the speed sessions take.

Each round runs the same bench on tree B (the base) then tree A, each with its own Python
(a venv that has its dependencies), so that a change is compared with the code before it
under the same load; it prints every run's figures with the load before it, then medians.

* ``loop``: ``bench/loop_overhead.py --iterations 1000 --skip-openevolve`` (wall ms per
  iteration, median window; CPU ms per iteration: evolve in all, controller process, sandbox;
  the controller process's voluntary context switches per iteration, where the tree prints them);
* ``openevolve``: ``bench/loop_overhead.py --iterations 400`` run with ``--openevolve-python``
  (a venv with openevolve==0.4.0 and evolve installed editable from tree A), A only: OpenEvolve's
  best window over evolve's median window;
* ``workers``: ``bench/workers.py --workers 1 2 1 2 1 2 --iterations 80`` (each two-worker
  pass's speed-up against the run's first one-worker pass; the controller process's CPU per
  iteration at two workers, which competes with the two slots for the cores and which the load
  moves much less than the speed-ups; the machine's ceiling for plain processes; where the tree's
  bench has it, the executors' ceiling: the first run's evaluations replayed without the engine).

    python bench/ab_rounds.py loop|openevolve|workers --a TREE[:PYTHON] [--b TREE[:PYTHON]]
                              [--rounds 3] [--openevolve-python PATH] [--nice 10]

PYTHON defaults to TREE's ``.venv/bin/python`` if it exists, else this one. Quiet figures need
an otherwise idle machine: the load before each run is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

LOOP = ("bench/loop_overhead.py", "--iterations", "1000", "--skip-openevolve")
OPENEVOLVE = ("bench/loop_overhead.py", "--iterations", "400")
WORKERS = ("bench/workers.py", "--workers", "1", "2", "1", "2", "1", "2", "--iterations", "80")
# (figure, pattern of the line that gives it) per bench
FIGURES = {
    "loop": (("wall ms", r"evolve's median window ([\d.]+) ms"),
             ("CPU ms", r"^\s*([\d.]+)\s+evolve in all"),
             ("controller ms", r"^\s*([\d.]+)\s+controller process in all"),
             ("sandbox ms", r"^\s*([\d.]+)\s+sandbox: zygote"),
             ("switches", r"^voluntary context switches per iteration.*; in all ([\d.]+)$")),
    "openevolve": (("OpenEvolve ms", r"OpenEvolve's best window .*?: ([\d.]+) ms;"),
                   ("evolve ms", r"evolve's median window: ([\d.]+) ms:"),
                   ("ratio", r"evolve's median window: [\d.]+ ms: ([\d.]+)x")),
    "workers": (("ceiling", r"^median: ([\d.]+)x of the ideal"),
                ("executors", r"^executors' median: ([\d.]+)x of the ideal")),
}


def tree_and_python(text: str) -> tuple[Path, str]:
    tree, _, python = text.partition(":")
    root = Path(tree).resolve()
    if not python:
        venv = root / ".venv" / "bin" / "python"
        python = str(venv) if venv.exists() else sys.executable
    return root, python


def run(tree: Path, python: str, args: tuple[str, ...], nice: int) -> str:
    command = ["nice", "-n", str(nice), python, *args]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} in {tree} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def figures(bench: str, output: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for name, pattern in FIGURES[bench]:
        found[name] = [float(m) for m in re.findall(pattern, output, re.M)]
    if bench == "workers":  # the rows of the speed-up table: "      2    19.6    17.1   4.68     1.36x"
        rows = re.findall(r"^\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)x$", output, re.M)
        found["speed-ups at 2"] = [float(x) for w, x in rows if w == "2"]
        # the controller's CPU per iteration at 2 workers (the engine, the model calls, the hand-offs):
        # what competes with the two slots for the two cores; the load moves it much less than a wall
        heads = re.search(r"^\s+((?:\s+w=\d+)+)$", output, re.M)
        line = re.search(r"^controller process in all((?:\s+[\d.]+)+)$", output, re.M)
        if heads and line:
            columns = zip(heads.group(1).split(), line.group(1).split(), strict=False)
            found["controller ms at 2"] = [float(v) for w, v in columns if w == "w=2"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=("loop", "openevolve", "workers"))
    parser.add_argument("--a", required=True, help="the tree under test, TREE[:PYTHON]")
    parser.add_argument("--b", help="the base tree, TREE[:PYTHON] (not for openevolve)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--openevolve-python", help="a venv's python with openevolve 0.4.0 and tree A editable")
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args()
    trees = [("A", *tree_and_python(args.a))]
    if args.b and args.bench != "openevolve":
        trees.insert(0, ("B", *tree_and_python(args.b)))  # the base first in every round
    if args.bench == "openevolve":
        if not args.openevolve_python:
            raise SystemExit("openevolve needs --openevolve-python")
        trees = [("A", trees[0][1], args.openevolve_python)]
    bench_args = {"loop": LOOP, "openevolve": OPENEVOLVE, "workers": WORKERS}[args.bench]
    for label, tree, python in trees:
        commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
        print(f"{label}: {tree} at {commit or '?'}, {python}")
    print(f"bench: {' '.join(bench_args)}, nice {args.nice}, {args.rounds} rounds\n")
    collected: dict[str, dict[str, list[float]]] = {label: {} for label, *_ in trees}
    for k in range(1, args.rounds + 1):
        for label, tree, python in trees:
            load = os.getloadavg()[0]
            got = figures(args.bench, run(tree, python, bench_args, args.nice))
            shown = "; ".join(f"{name} {', '.join(f'{v:g}' for v in values)}" for name, values in got.items())
            print(f"round {k} {label} (load {load:.2f}): {shown}", flush=True)
            for name, values in got.items():
                collected[label].setdefault(name, []).extend(values)
    print(f"\nmedians (load now {os.getloadavg()[0]:.2f}):")
    for label, by_name in collected.items():
        shown = "; ".join(f"{name} {statistics.median(values):.2f}" for name, values in by_name.items() if values)
        print(f"  {label}: {shown}")


if __name__ == "__main__":
    main()
