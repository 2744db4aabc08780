"""`--llm files:DIR`: a person (here a thread playing one) answers prompts written to files."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from evolve.archive import EDIT_ERROR, EVALUATED, Archive
from evolve.archive_records import LLM_ERROR
from evolve.config import resolve_settings
from evolve.errors import UserError
from evolve.llm import make_llm
from evolve.llm.base import ProposalRequest
from evolve.llm.ensemble import EnsembleLLM
from evolve.llm.files import FilesLLM, prompt_text
from evolve.llm.preflight import preflight
from evolve.loop import Controller
from evolve.problem import load_problem
from evolve.runner import build_llm

GOOD_EDIT = """Idea: bigger numbers first.
<<<<<<< SEARCH
    return x * 1.0
=======
    return -x
>>>>>>> REPLACE
"""


@contextmanager
def person(folder: Path, answer: Callable[[int, str], str | None], chunks: int = 1) -> Iterator[list[int]]:
    """Answers every prompt_NNN.md in ``folder`` by writing reply_NNN.md (in ``chunks`` writes)."""
    answered: list[int] = []
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            for prompt in sorted(folder.glob("prompt_*.md")):
                n = int(prompt.stem.split("_")[1])
                reply = folder / f"reply_{n:03d}.md"
                if n in answered or reply.exists():
                    continue
                text = answer(n, prompt.read_text())
                if text is None:
                    continue
                answered.append(n)
                step = max(1, len(text) // chunks)
                with reply.open("w") as handle:  # a slow writer: the backend must wait for the end
                    for i in range(0, len(text), step):
                        handle.write(text[i:i + step])
                        handle.flush()
                        time.sleep(0.1 if chunks > 1 else 0)
            time.sleep(0.05)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(timeout=5)


def files_run(toy_dir: Path, run_dir: Path, folder: Path, settle_s: float = 0.2,
              said: list[str] | None = None, **overrides: object):
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"llm": f"files:{folder}", **overrides})
    archive = Archive(run_dir / "archive.sqlite", create=True)
    llm = make_llm(settings.llm, record=Path(settings.record) if settings.record else None)
    if isinstance(llm, FilesLLM):
        llm.poll_s, llm.settle_s = 0.05, settle_s
        llm.notify = said.append if said is not None else None
    return Controller(problem, settings, archive, llm, run_dir).run(), archive


def settled_config(folder: Path) -> Path:
    """A run config whose files: replies are read 0.2 s after their last write (the person here
    writes each reply at once), not the default 1 s."""
    path = folder / "settle.toml"
    path.write_text("files_settle_s = 0.2\n")
    return path


def test_the_settle_time_comes_from_the_run_settings_and_is_checked(tmp_path: Path) -> None:
    settings = resolve_settings({}, settled_config(tmp_path), {"llm": f"files:{tmp_path}"})
    llm = build_llm(settings)
    assert isinstance(llm, FilesLLM) and llm.settle_s == 0.2
    assert make_llm(f"files:{tmp_path}").settle_s == 1.0  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="files_settle_s"):
        resolve_settings({}, None, {"files_settle_s": -1})


def test_prompts_are_written_and_replies_read_with_the_same_archive_and_zero_cost(
        toy_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "exchange"
    with person(folder, lambda n, _: GOOD_EDIT if n != 2 else "I am not sure what to do.") as answered:
        progress, archive = files_run(toy_dir, tmp_path, folder, iterations=3, islands=1,
                                      record=str(tmp_path / "record.jsonl"))
    assert answered == [1, 2, 3]
    assert progress.stop_reason == "iterations" and progress.cost_usd == 0.0
    # iteration 3 quotes the seed, but its parent is now the child of iteration 1
    assert archive.outcome_counts() == {EVALUATED: 1, EDIT_ERROR: 2}
    prompt = (folder / "prompt_001.md").read_text()
    assert prompt.startswith("<!-- evolve iteration 1: write the answer to reply_001.md")
    assert "# System\n\n" in prompt and "# User\n\n" in prompt and "return x * 1.0" in prompt
    usage = archive.usage()
    assert usage["prompt_tokens"] > 100 and usage["completion_tokens"] > 10
    # The edit failure of iteration 2 reached the prompt of iteration 3, as with any model.
    assert "holds no SEARCH/REPLACE block" in (folder / "prompt_003.md").read_text()


def test_a_reply_written_in_several_parts_is_read_only_when_complete(toy_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "exchange"
    with person(folder, lambda n, _: GOOD_EDIT, chunks=4):  # 0.1 s between parts
        _, archive = files_run(toy_dir, tmp_path, folder, settle_s=0.8, iterations=1, islands=1)
    assert archive.outcome_counts() == {EVALUATED: 1}


def test_a_recorded_files_run_replays_without_anyone_answering(toy_dir: Path, tmp_path: Path) -> None:
    folder, record = tmp_path / "exchange", tmp_path / "record.jsonl"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with person(folder, lambda n, _: GOOD_EDIT):
        _, first = files_run(toy_dir, tmp_path / "a", folder, iterations=2, islands=1, record=str(record))
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"iterations": 2, "islands": 1})
    second = Archive(tmp_path / "b" / "archive.sqlite", create=True)
    Controller(problem, settings, second, make_llm(f"replay:{record}"), tmp_path / "b").run()
    assert first.outcome_counts() == second.outcome_counts()
    assert first.best().code == second.best().code
    # A person answered, so no request went ahead (iteration 2's parent is iteration 1's child),
    # and the record says so for its replay; an older record without the key replays with it.
    assert all(json.loads(line)["lookahead"] is False for line in record.read_text().splitlines())
    assert make_llm(f"replay:{record}").lookahead is False
    older = tmp_path / "older.jsonl"
    older.write_text(record.read_text().replace(', "lookahead": false', ""))
    assert make_llm(f"replay:{older}").lookahead is True


def request(iteration: int, text: str = "improve it") -> ProposalRequest:
    return ProposalRequest(messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": text}],
                           iteration=iteration, seed=0, mode="diff", parent_code="")


def test_a_resumed_run_reuses_the_reply_to_the_same_prompt_and_sets_aside_a_stale_one(tmp_path: Path) -> None:
    llm = FilesLLM(tmp_path, poll_s=0.01, settle_s=0.05)
    (tmp_path / "prompt_004.md").write_text(prompt_text(request(4)))
    (tmp_path / "reply_004.md").write_text("the answer written before the restart")
    assert llm.complete(request(4)).text == "the answer written before the restart"

    (tmp_path / "reply_005.md").write_text("an answer to some other prompt")
    with person(tmp_path, lambda n, _: "fresh answer" if n == 5 else None):
        assert llm.complete(request(5, "a different prompt")).text == "fresh answer"
    (stale,) = tmp_path.glob("reply_005.stale-*.md")
    assert stale.read_text() == "an answer to some other prompt"


def test_preflight_checks_the_folder_and_says_where_to_answer(tmp_path: Path) -> None:
    checked = preflight(make_llm(f"files:{tmp_path / 'new'}"))
    assert (tmp_path / "new").is_dir()
    assert checked[0].note.endswith("write each answer to " + str(tmp_path / "new") + "/reply_NNN.md")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write prompts to"):
        preflight(make_llm(f"files:{blocker / 'sub'}"))


@pytest.mark.parametrize("spec, fragment", [("files:", "names no folder"),
                                            ("openai/a:1,files:", "names no folder"),
                                            ("files:x,replay:r.jsonl", "cannot be part of an ensemble")])
def test_bad_files_specs_are_one_line_errors(spec: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        make_llm(spec)


def test_files_is_a_member_of_an_ensemble_in_either_place(tmp_path: Path) -> None:
    for spec in (f"files:{tmp_path}:0.25,mutate:0.75", f"mutate:0.75,files:{tmp_path}:0.25"):
        llm = make_llm(spec)
        assert isinstance(llm, EnsembleLLM) and llm.weights in ([0.25, 0.75], [0.75, 0.25])
        assert {m.name for m in llm.members} == {"stub", f"files:{tmp_path}"}


def test_an_existing_folder_whose_name_has_a_comma_is_one_files_model(tmp_path: Path) -> None:
    """As replay: does for a file: a folder that exists is read whole, not split at its comma."""
    folder = tmp_path / "answers,v2"
    folder.mkdir()
    llm = make_llm(f"files:{folder}")
    assert isinstance(llm, FilesLLM) and llm.name == f"files:{folder}"


def test_a_files_member_of_an_ensemble_hears_what_came_of_its_own_replies(
        toy_dir: Path, tmp_path: Path) -> None:
    """The person answers the prompts the ensemble gives files:, the offline mutator the rest;
    the console lines and outcome_NNN.md are there for exactly the person's iterations."""
    folder, log = tmp_path / "exchange", tmp_path / "stdout.txt"
    with log.open("w") as out, person(folder, lambda n, _: GOOD_EDIT if n % 2 else "Idea: none\nno edit"):
        run = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--llm",
                              f"mutate:1,files:{folder}:1", "--iterations", "8", "--out", str(tmp_path / "run"),
                              "--config", str(settled_config(tmp_path))],
                             stdout=out, stderr=subprocess.PIPE, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    said = [line.removeprefix("files: ") for line in log.read_text().splitlines() if line.startswith("files: ")]
    asked = sorted(int(p.stem.split("_")[1]) for p in folder.glob("prompt_*.md"))
    assert 0 < len(asked) < 8  # the mutator answered the others
    archive = Archive(tmp_path / "run" / "archive.sqlite")
    models = {i: archive.attempt(i).model for i in range(1, 9)}
    assert sorted(i for i, model in models.items() if model == f"files:{folder}") == asked
    assert sorted(int(p.stem.split("_")[1]) for p in folder.glob("outcome_*.md")) == asked
    for n in asked:
        assert said.count(f"waiting for {folder / f'reply_{n:03d}.md'}") == 1
        (verdict,) = [line for line in said if line.startswith(f"reply_{n:03d}.md: ")]
        assert (folder / f"outcome_{n:03d}.md").read_text().splitlines()[2] == verdict.split(": ", 1)[1]
    assert len(said) == 2 * len(asked)


def test_the_cli_says_when_it_waits_and_what_came_of_each_reply_with_an_outcome_file(
        toy_dir: Path, tmp_path: Path) -> None:
    """Through a pipe (no terminal): one line per prompt waited on, one per reply's outcome;
    the person here reads outcome_001.md before answering prompt 2, as an agent would."""
    folder, log = tmp_path / "exchange", tmp_path / "stdout.txt"
    read_first: list[str] = []

    def answer(n: int, _: str) -> str | None:
        if n == 1:
            return GOOD_EDIT
        outcome = folder / "outcome_001.md"
        if not outcome.exists():
            return None  # wait for the verdict on reply 1 before writing reply 2
        read_first.append(outcome.read_text())
        return GOOD_EDIT.replace("return x * 1.0", "return x * 2.0")  # matches nothing now

    with log.open("w") as out, person(folder, answer):
        run = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--llm", f"files:{folder}",
                              "--iterations", "2", "--out", str(tmp_path / "run"),
                              "--config", str(settled_config(tmp_path))],
                             stdout=out, stderr=subprocess.PIPE, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = log.read_text().splitlines()
    said = [line.removeprefix("files: ") for line in lines if line.startswith("files: ")]
    assert said.count(f"waiting for {folder / 'reply_001.md'}") == 1
    assert said.count(f"waiting for {folder / 'reply_002.md'}") == 1
    (first,) = [line for line in said if line.startswith("reply_001.md: ")]
    assert first.startswith("reply_001.md: applied and scored ") and "as program #" in first
    (second,) = [line for line in said if line.startswith("reply_002.md: ")]
    assert second.startswith("reply_002.md: edit error: ")
    assert len(said) == 4  # nothing else, however long the person took
    assert read_first and read_first[0].splitlines()[2] == first.removeprefix("reply_001.md: ")
    assert "median gap " in read_first[0]  # what the score is made of, as a prompt's headline says it
    # and its time against the limits, as the next prompt would show it (the last reply has no next)
    assert re.search(r"^CPU ms per instance[,:] ", read_first[0], re.M), read_first[0]
    outcome = (folder / "outcome_002.md").read_text()
    assert outcome.splitlines()[2] == second.removeprefix("reply_002.md: ")
    assert "SEARCH text was not found" in outcome and outcome.count("SEARCH text was not found") == 1
    # Prompt 2 is written once reply 1's program is judged (no look-ahead when a person answers:
    # a clean-room agent found its prompts a step behind the outcome files): it shows the verdict.
    prompt = (folder / "prompt_002.md").read_text()
    assert "outcome_NNN.md" in prompt.splitlines()[0] and "not known yet" not in prompt
    program = re.search(r"as program #(\d+)", first)
    assert program and re.search(rf"(Current program|iteration 1\b.*->) #{program[1]}\b", prompt)


def test_a_reply_whose_program_fails_in_the_sandbox_is_told_so_once(toy_dir: Path, tmp_path: Path) -> None:
    folder, said = tmp_path / "exchange", []
    crash = GOOD_EDIT.replace("    return -x", "    raise RuntimeError('boom')")
    with person(folder, lambda n, _: crash):
        _, archive = files_run(toy_dir, tmp_path, folder, said=said, iterations=1, islands=1)
    assert said[0] == f"files: waiting for {folder / 'reply_001.md'}" and len(said) == 2
    assert said[1].startswith("files: reply_001.md: applied, sandbox failure: error: ") and "boom" in said[1]
    outcome = (folder / "outcome_001.md").read_text()
    assert said[1].removeprefix("files: reply_001.md: ") in outcome and "RuntimeError" in outcome


def test_a_reply_file_over_64_mib_is_that_calls_error_unread(toy_dir: Path, tmp_path: Path) -> None:
    """The person (or agent) answering is the model, and a model's reply is hostile input: a
    sparse reply file of 1 GiB was read whole (the controller at 2.1 GB; 10 GiB would have taken
    this machine's memory).  It is read to 64 MiB, as the HTTP clients read a body, and more is
    that call's error; the next reply is read as usual."""
    folder = tmp_path / "exchange"

    def answer(n: int, _: str) -> str | None:
        if n == 1:
            with (folder / "reply_001.md").open("wb") as handle:
                handle.truncate(1 << 30)  # sparse: costs no disk
            return None
        return GOOD_EDIT

    with person(folder, answer):
        _, archive = files_run(toy_dir, tmp_path, folder, iterations=2, islands=1)
    assert archive.outcome_counts() == {LLM_ERROR: 1, EVALUATED: 1}
    assert "reply_001.md is over 64 MiB" in (folder / "outcome_001.md").read_text()


def test_a_prompt_file_grown_huge_in_the_folder_is_not_read_on_resume(tmp_path: Path) -> None:
    """A resumed run compares each prompt file with the prompt it would write; whoever writes the
    folder can grow one (a sparse 1 GiB file), which was read whole: sizes are compared first.
    Decided by the process's peak memory, not by time."""
    import resource

    llm = FilesLLM(tmp_path, poll_s=0.01, settle_s=0.05)
    with (tmp_path / "prompt_006.md").open("wb") as handle:
        handle.truncate(1 << 30)
    prompt = tmp_path / "prompt_006.md"

    def answer() -> None:  # once the prompt is written afresh (never reading the grown one)
        while not prompt.exists() or prompt.stat().st_size >= 1 << 30:
            time.sleep(0.01)
        (tmp_path / "reply_006.md").write_text("fresh answer")

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    writer = threading.Thread(target=answer, daemon=True)
    writer.start()
    assert llm.complete(request(6)).text == "fresh answer"
    writer.join(5)
    assert (tmp_path / "prompt_006.md").read_text() == prompt_text(request(6))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 << 10  # KiB: under 256 MiB more


def test_links_planted_in_the_folder_reach_no_file_outside_it(toy_dir: Path, tmp_path: Path) -> None:
    """Whoever writes the folder (the model: a person or an agent, perhaps confined to it) could
    plant symbolic links where the backend writes and reads: its temporary prompt and outcome
    files and the write check were opened through them, so the run overwrote files outside the
    folder with text a model controls (the prompt quotes its programs, the outcome its programs'
    output), and a reply linked to a file outside was read into the archive and the next prompt
    (fourteenth red team). Now nothing in the folder is followed: a planted link is replaced,
    and a reply that is not a regular file of the folder is that call's error, unread."""
    folder = tmp_path / "exchange"
    folder.mkdir()
    victims = {name: tmp_path / f"victim-{k}.txt" for k, name in
               enumerate(["prompt_001.md.tmp", "outcome_001.md.tmp", "prompt_002.md.tmp", ".evolve-write-check"])}
    for name, victim in victims.items():
        victim.write_text("precious")
        (folder / name).symlink_to(victim)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-0123456789\n" + GOOD_EDIT)
    FilesLLM(folder).preflight()

    def link(n: int, _: str) -> str | None:  # the first answer is a link to a file outside the folder
        if n == 1:
            (folder / "outcome_001.md.tmp").unlink(missing_ok=True)
            (folder / "outcome_001.md.tmp").symlink_to(victims["outcome_001.md.tmp"])
            (folder / "reply_001.md").symlink_to(secret)
            return None
        return GOOD_EDIT

    with person(folder, link):
        _, archive = files_run(toy_dir, tmp_path, folder, iterations=2, islands=1)
    assert [v.read_text() for v in victims.values()] == ["precious"] * 4
    assert archive.outcome_counts() == {LLM_ERROR: 1, EVALUATED: 1}  # the control: reply 2 was read
    assert "reply_001.md is not a regular file" in (folder / "outcome_001.md").read_text()
    with sqlite3.connect(tmp_path / "archive.sqlite") as db:
        kept = " ".join(str(row) for row in db.execute("SELECT * FROM attempts"))
    assert "SECRET-0123456789" not in kept and "SECRET-0123456789" not in (folder / "prompt_002.md").read_text()
    assert not (folder / "prompt_001.md").is_symlink() and not (folder / "outcome_001.md").is_symlink()
