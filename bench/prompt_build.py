"""What building a model's request costs: `python bench/prompt_build.py [--iterations 300]`.

Runs the offline mutator on SMTT for N iterations into a temporary run folder,
then builds the next 80 requests as a model run would (parent, inspirations, what
was tried on the parent, the island's last edit error, the prompt) and prints the
controller thread's CPU time per request: median and 90th percentile.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

import evolve
from evolve.archive import Archive
from evolve.loop import Controller
from evolve.preview import _NoModel
from evolve.problem import load_problem
from evolve.runs import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prompt-") as scratch:
        run = Path(scratch) / "run"
        evolve.run("smtt", llm="mutate", iterations=args.iterations, out=run)
        info = load_run(run)
        problem = load_problem("smtt").configured(info.settings.verifier_options)
        archive = Archive(info.archive_path, readonly=True)
        controller = Controller(problem, info.settings, archive, _NoModel(), Path(scratch))
        quick, train = controller._load_instances()
        controller._restore_population()
        controller.prompts.prepare(quick, train)
        controller._policy, controller._offline = None, False
        cpu = []
        for iteration in range(args.iterations + 1, args.iterations + 81):
            start = time.thread_time()
            request, _ = controller.next_request(iteration)
            cpu.append(time.thread_time() - start)
        programs = archive.program_count()
        archive.close()
    cpu.sort()
    print(f"machine: {cpu_model()}")
    print(f"programs archived: {programs}; requests built: {len(cpu)}")
    print(f"CPU per request: median {1000 * statistics.median(cpu):.2f} ms, "
          f"p90 {1000 * cpu[int(0.9 * len(cpu))]:.2f} ms; last prompt {sum(len(m['content']) for m in request.messages)} characters")


if __name__ == "__main__":
    main()
