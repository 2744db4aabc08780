"""Lookahead (one at a time, the default): the next request is built and sent while the current
child is evaluated, in a fixed order, so the run does not depend on which finishes first.

Real loop, real sandbox, a real OpenAI-compatible server on 127.0.0.1 whose answer depends only
on the current program's constant and on how many requests came before (not on timing)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from llm_server import Behaviour, FakeLLMServer, ok

from evolve.archive import EVALUATED, Archive
from evolve.config import resolve_settings
from evolve.llm import make_llm
from evolve.llm.openai_compat import PendingCompletion
from evolve.loop import Controller
from evolve.loop_task import Arrivals
from evolve.problem import load_problem

CURRENT = re.compile(r"^#+ Current program\b.*$", re.I | re.M)
PARENT = re.compile(r"^#+ Current program #(\d+)", re.I | re.M)
CONSTANT = re.compile(r"^(\s*)return x \* (\S+)$", re.M)
PENDING = re.compile(r"iteration (\d+)\b[^\n]*being evaluated when this prompt was written")


class StepModel:
    """Moves the current program's constant by a step fixed by the request's number."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Behaviour:
        prompt = body["messages"][-1]["content"]
        heads = list(CURRENT.finditer(prompt))
        match = CONSTANT.search(prompt, heads[-1].end() if heads else 0)
        with self.lock:
            self.count += 1
            n = self.count
        if match is None:
            return ok("no idea", delay_s=self.delay_s)
        indent, old = match.groups()
        new = float(old) + ((n * 5) % 7 - 3) / 2  # 0 for the 2nd, 9th: the parent again, a duplicate
        return ok(f"Idea: step {n}.\n<<<<<<< SEARCH\n{indent}return x * {old}\n=======\n"
                  f"{indent}return x * {new:g}\n>>>>>>> REPLACE\n", delay_s=self.delay_s)


def _run(toy_dir: Path, folder: Path, model_delay_s: float, eval_delay_s: float,
         **overrides: object) -> tuple[list[Any], list[Any], list[str]]:
    folder.mkdir()
    problem = load_problem(str(toy_dir)).with_options({"delay_s": eval_delay_s})
    settings = resolve_settings(problem.spec.run, None, {"iterations": 14, "seed": 5, **overrides})
    archive = Archive(folder / "archive.sqlite", create=True)
    with FakeLLMServer(responder=StepModel(model_delay_s)) as server:
        llm = make_llm("openai/toy-model", api_base=server.base_url, timeout_s=30.0)
        Controller(problem, settings, archive, llm, folder).run()
        prompts = [r.body["messages"][-1]["content"] for r in server.chat_requests()]
    programs = [(p.iteration, p.parent_id, p.code, p.score)
                for p in map(archive.program, range(1, archive.program_count() + 1))]
    attempts = archive._db.execute("SELECT iteration, outcome, program_id FROM attempts ORDER BY iteration").fetchall()
    archive.close()
    # What the model was shown of the search (not the evaluation times the prompt also reports).
    shown = [f"{PARENT.findall(p)} {CONSTANT.findall(p)} pending {PENDING.findall(p)}" for p in prompts]
    return programs, attempts, shown


def test_a_run_looking_ahead_is_the_same_whichever_finishes_first(toy_dir: Path, tmp_path: Path) -> None:
    # Slow model, fast evaluation: each answer comes after the evaluation ahead of it.
    slow_model = _run(toy_dir, tmp_path / "slow-model", model_delay_s=0.15, eval_delay_s=0.0)
    # Instant model, slow evaluation (0.05 s per instance): each answer waits for the evaluation ahead.
    slow_eval = _run(toy_dir, tmp_path / "slow-eval", model_delay_s=0.0, eval_delay_s=0.05)
    assert slow_model == slow_eval
    programs, attempts, shown = slow_model
    assert len(attempts) == 14 and len(programs) > 5
    # Each request after an evaluated iteration was sent while that one was evaluated: it is
    # shown in flight; after an iteration that failed (a duplicate here) nothing is.
    evaluated = {iteration for iteration, outcome, _ in attempts if outcome == EVALUATED}
    assert 5 <= len(evaluated) < 14
    for iteration, line in enumerate(shown, start=1):
        assert line.endswith(f"pending {[str(iteration - 1)] if iteration - 1 in evaluated else []}"), line


def test_the_loop_sends_the_request_ahead_itself_and_reads_an_answer_there_once_the_child_is_archived(
        toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No proposal thread for a held request (OpenAICompatLLM.begin): its answer is read by the
    loop's thread if the model has begun to answer when the evaluation ahead is in, else by a
    proposal thread; either way the run is the one above."""
    readers: list[str] = []
    result = PendingCompletion.result

    def read(self: PendingCompletion) -> Any:
        readers.append(threading.current_thread().name)
        return result(self)

    monkeypatch.setattr(PendingCompletion, "result", read)
    slow_eval = _run(toy_dir, tmp_path / "slow-eval", model_delay_s=0.0, eval_delay_s=0.05)
    loop_thread = threading.current_thread().name
    assert len(readers) >= 5 and set(readers) == {loop_thread}
    readers.clear()
    slow_model = _run(toy_dir, tmp_path / "slow-model", model_delay_s=0.15, eval_delay_s=0.0)
    assert len(readers) >= 5 and all(name.startswith("propose") for name in readers)
    assert slow_eval == slow_model


def test_without_lookahead_each_request_sees_the_previous_result(toy_dir: Path, tmp_path: Path) -> None:
    programs, attempts, shown = _run(toy_dir, tmp_path / "off", model_delay_s=0.0, eval_delay_s=0.0,
                                     lookahead=False)
    assert len(attempts) == 14 and all("pending []" in line for line in shown)


def test_an_answer_that_comes_while_the_evaluation_ahead_runs_waits_without_waking_the_loop() -> None:
    """loop_task.Arrivals: a held proposal's answer is parked (the controller's thread, blocked
    on the queue, is not woken for it) until the evaluation ahead arrives; then both are handed
    over, the evaluation first, and a later answer arrives as usual."""
    arrivals = Arrivals()
    evaluation, answer, late = Future(), Future(), Future()
    evaluation.add_done_callback(arrivals.put)
    arrivals.park_until_unparked()
    answer.add_done_callback(arrivals.put_or_park)
    answer.set_result("answer")
    assert arrivals.queue.empty()  # nothing to wake the loop for
    evaluation.set_result("evaluated")
    assert arrivals.queue.get_nowait() is evaluation and arrivals.queue.empty()
    assert arrivals.unpark() == [answer]
    assert arrivals.unpark() == []
    late.add_done_callback(arrivals.put_or_park)  # after the evaluation: not parked
    late.set_result("late")
    assert arrivals.queue.get_nowait() is late
