"""The engine's own steps of an iteration, timed alone on a grown archive (no model, no sandbox).

The controller thread's work is on every iteration's chain (with concurrency 1 nothing
overlaps it), so it is timed here without the noise of the rest of the loop: a
--programs archive is grown first by ``bench/loop_overhead.py``'s loop (tiny problem,
mock model, full sandbox), then, on a copy of it:

* ``next_request``: parent and inspirations sampled, both prompt renders, history;
* ``edit + hash``: the mock model's SEARCH/REPLACE reply applied to the parent, the child
  checked and hashed (what ``_after_proposal`` does before the evaluation);
* ``commit``: a program and its attempt written in one transaction (``add_program``).

Thread CPU microseconds per step, each the median of --rounds rounds of --steps steps.

    python bench/engine_parts.py [--programs 1000] [--steps 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import loop_overhead  # noqa: E402

from evolve.archive import EVALUATED, Archive, Attempt  # noqa: E402
from evolve.config import resolve_settings  # noqa: E402
from evolve.edits import apply_edit, code_hash  # noqa: E402
from evolve.loop import Controller  # noqa: E402
from evolve.problem import load_problem  # noqa: E402

REPLY = ("Idea: try another constant.\n<<<<<<< SEARCH\n    return x * {old}\n=======\n"
         "    return x * {new:.6f}\n>>>>>>> REPLACE\n")
CONSTANT = re.compile(r"return x \* (\S+)")


def grow(programs: int, into: Path) -> None:
    """An archive of about ``programs`` programs, from the loop bench's own run."""
    original = Archive.close

    def close(archive: Archive) -> None:
        archive._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(archive.path, into)
        original(archive)

    Archive.close = close  # type: ignore[method-assign]
    try:
        loop_overhead.run_loop(programs - 1)
    finally:
        Archive.close = original  # type: ignore[method-assign]


def per_step(fn, steps: int) -> float:  # type: ignore[no-untyped-def]
    start = time.thread_time()
    for i in range(steps):
        fn(i)
    return 1e6 * (time.thread_time() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(loop_overhead.machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        grow(args.programs, folder / "grown.sqlite")
        problem = load_problem(str(REPO / "bench" / "tiny_problem"))
        settings = resolve_settings(problem.spec.run, None, {"iterations": 10 * args.programs})
        archive = Archive(folder / "grown.sqlite")
        controller = Controller(problem, settings, archive, None, folder)  # type: ignore[arg-type]
        quick, train = controller._load_instances()
        controller._restore_population()
        controller.prompts.prepare(quick, train)
        first = archive.max_iteration() + 1
        parents = [controller.next_request(first + i)[0].parent_code for i in range(args.steps)]
        parent = archive.best()
        assert parent is not None and parent.id is not None

        def edit(i: int) -> None:
            code = parents[i]
            match = CONSTANT.search(code)
            old = match.group(1) if match else "1.0"
            code_hash(apply_edit(code, REPLY.format(old=old, new=1.2345 + i * 1e-6), "diff"))

        def commit(i: int) -> None:
            child = archive.program(parent.id)  # type: ignore[arg-type]
            child.id, child.code, child.code_hash = None, child.code + f"\n# {i}", f"bench-{os.getpid()}-{i}-{time.time()}"
            archive.add_program(child, Attempt(first + 10 * args.steps + commit.n, 0, parent.id, "diff", "m",
                                               EVALUATED, completion="Idea: x"))
            commit.n += 1  # type: ignore[attr-defined]

        commit.n = 0  # type: ignore[attr-defined]
        steps = {"next_request": lambda i: controller.next_request(first + i),
                 "edit + hash": edit, "commit": commit}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for name, fn in steps.items():  # the commits last: their attempts would join the prompts' history
            for _ in range(args.rounds):
                times[name].append(per_step(fn, args.steps))
        archive.close()
    print(f"\nengine steps on a {args.programs}-program archive, thread CPU us per step "
          f"(median of {args.rounds} rounds of {args.steps}; load now {os.getloadavg()[0]:.2f}):")
    for name, values in times.items():
        print(f"  {name:<14} {statistics.median(values):8.0f}   (rounds: {', '.join(f'{v:.0f}' for v in values)})")


if __name__ == "__main__":
    main()
