"""Refit finished runs' reported bests as ``refit_on`` does at a run's end: `python bench/smtt_refit.py RUN ...`.

Each run (or every seed of a study) given: the program it reports is refitted above its gate on
the ``fit`` split's gaps against the references (evolve/refit.py, the function the runner calls
after ``select_on``'s choice), archived as its child, and written to the run's ``best.py``. For a
run made before ``refit_on`` was set (docs/smtt.md, nineteenth round: the study ran while the fit
split's references were computed). The fit split is read from ``--problem`` (default smtt_rule,
the shipped folder with its references), whatever folder the run was made from; the rule, its gate
and train are the same there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evolve.archive import Archive
from evolve.files import write_atomic
from evolve.problem import load_problem
from evolve.runs import load_run
from evolve.selection import REFIT_META, refit_reported, reported_best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or studies")
    parser.add_argument("--problem", default="smtt_rule", help="the problem whose fit split refits (default smtt_rule)")
    parser.add_argument("--sweeps", type=int, default=None, help="refit_sweeps (default: the setting's default)")
    parser.add_argument("--below", choices=("fit", "fit+train", "none"), default=None,
                        help="refit_below: also fit the side below the gate on fit, or on fit and train "
                             "(default: the run's setting)")
    parser.add_argument("--again", action="store_true",
                        help="refit the program the run chose (select_on), not its earlier refit: drop the refit "
                             "the archive reports and fit from the chosen one again")
    args = parser.parse_args()
    problem = load_problem(args.problem)
    for folder in args.runs:
        for path in sorted(folder.glob("**/archive.sqlite")):
            info = load_run(path.parent)
            update: dict[str, object] = {"refit_on": "fit"}
            if args.sweeps is not None:
                update["refit_sweeps"] = args.sweeps
            if args.below is not None:
                update["refit_below"] = None if args.below == "none" else args.below
            settings = info.settings.model_copy(update=update)
            archive = Archive(path)
            try:
                if args.again:
                    archive.set_meta(REFIT_META, None)
                before = reported_best(archive)
                refitted = refit_reported(problem, settings, archive)
                if refitted is None:
                    print(f"{path.parent}: #{before.id if before else None} kept (nothing above its gate to refit, "
                          "or no better coefficient)")
                    continue
                write_atomic(path.parent / "best.py", archive.program(refitted.program_id).code)
                print(f"{path.parent}: #{before.id if before else None} -> {refitted.describe()}", flush=True)
            finally:
                archive.close()


if __name__ == "__main__":
    main()
