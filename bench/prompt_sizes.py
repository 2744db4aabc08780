"""How long a model's prompts are: `python bench/prompt_sizes.py [smtt|jssp|serving] [--out DIR]`.

Replays the replies of a clean-room check (a person-like agent that had never seen the
repository answered SMTT and JSSP prompts through `--llm files:DIR`; its replies are in
`bench/data/promptcheck_*.jsonl`, in `--record` format; serving's, `cleanroom_serving.jsonl`) through a real run -- the same
seed and settings as the check: 4 islands, one proposal at a time, SEARCH/REPLACE -- and
prints the size of every prompt the run builds: system and user message, the program code
the user message shows (its ``` fences: blocks, diffs), and the rest ("text"). With `--out DIR` the prompts are written there as `files:DIR`
would write them. Evaluations are real (SMTT's searches use their CPU budgets), so a replayed
edit applies only if the parent is the one it was written for; the table says so.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import tempfile
from pathlib import Path

from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.archive import Archive
from evolve.config import resolve_settings
from evolve.llm.base import Completion, ProposalRequest
from evolve.llm.files import prompt_name, prompt_text
from evolve.llm.record import ReplayLLM
from evolve.loop import Controller
from evolve.problem import load_problem

DATA = Path(__file__).resolve().parent / "data"
ITERATIONS = {"smtt": 10, "jssp": 5, "serving": 8}
REPLIES = {"smtt": "promptcheck_smtt", "jssp": "promptcheck_jssp", "serving": "cleanroom_serving"}
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


class Capturing:
    """The replayed model, keeping every request it is sent."""

    def __init__(self, path: Path) -> None:
        self.inner = ReplayLLM(path)
        self.name = self.inner.name
        self.requests: list[ProposalRequest] = []

    def complete(self, request: ProposalRequest) -> Completion:
        self.requests.append(request)
        return self.inner.complete(request)


def code_chars(text: str) -> int:
    """Characters inside ``` fences: the programs' code and diffs."""
    return sum(len(m.group(1)) for m in FENCE.finditer(text))


def replay(problem_name: str, out: Path | None) -> None:
    problem = load_problem(problem_name)
    iterations = ITERATIONS[problem_name]
    settings = resolve_settings(problem.spec.run, None, {
        "iterations": iterations, "seed": 0, "islands": 4, "concurrency": 1, "workers": 1,
        "edit_mode": "diff"})
    llm = Capturing(DATA / f"{REPLIES[problem_name]}.jsonl")
    with tempfile.TemporaryDirectory(prefix="bench-prompt-sizes-") as scratch:
        archive = Archive(Path(scratch) / "archive.sqlite", create=True)
        Controller(problem, settings, archive, llm, Path(scratch)).run()  # type: ignore[arg-type]
        archive.close()
        with sqlite3.connect(Path(scratch) / "archive.sqlite") as db:  # plain SQL: runs on older code too
            outcomes = {row[0]: row[1:] for row in db.execute(
                "SELECT iteration, parent_id, outcome FROM attempts")}
    print(f"{problem_name}: {iterations} iterations replayed")
    print(f"{'prompt':>6} {'parent':>6} {'system':>7} {'user':>7} {'total':>7} {'code':>7} {'text':>7}  edit")
    totals = []
    for request in llm.requests:
        system, user = (m["content"] for m in request.messages)
        text = prompt_text(request)
        totals.append(len(system) + len(user))
        code = code_chars(user)
        parent, outcome = outcomes.get(request.iteration, ("-", "-"))
        print(f"{request.iteration:>6} {('#' + str(parent)):>6} {len(system):>7,} {len(user):>7,} "
              f"{totals[-1]:>7,} {code:>7,} {totals[-1] - code:>7,}  {outcome}")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / prompt_name(request.iteration)).write_text(text)
    print(f"largest prompt {max(totals):,} characters, median {statistics.median(totals):,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problems", nargs="*", metavar="PROBLEM", help="smtt, jssp and/or serving (default: smtt and jssp)")
    parser.add_argument("--out", type=Path, help="write the prompts here (one folder per problem)")
    args = parser.parse_args()
    for name in args.problems:
        if name not in ITERATIONS:
            parser.error(f"unknown problem {name!r}; expected smtt, jssp or serving")
    print(f"machine: {cpu_model()}")
    for name in args.problems or ["smtt", "jssp"]:
        replay(name, args.out / name if args.out else None)


if __name__ == "__main__":
    main()
