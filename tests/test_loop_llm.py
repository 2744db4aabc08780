"""The loop with a real model path: an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_server import FakeLLMServer, empty, http_error, malformed, ok

from evolve.archive import DUPLICATE, EDIT_ERROR, EVALUATED, LLM_ERROR, Archive
from evolve.config import resolve_settings
from evolve.llm import make_llm
from evolve.loop import Controller
from evolve.problem import load_problem
from evolve.runs import save_config
from evolve.stop import StopKind

GOOD_EDIT = """The best numbers should go first.
<<<<<<< SEARCH
    return x * 1.0
=======
    return -x
>>>>>>> REPLACE
"""
BAD_EDIT = """<<<<<<< SEARCH
    return something_else
=======
    return -x
>>>>>>> REPLACE
"""


def _run(toy_dir: Path, tmp_path: Path, llm_spec: str, api_base: str | None = None,
         retry_base_delay_s: float = 1.0, **overrides: object):
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"llm_retries": 1, **overrides})
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    llm = make_llm(llm_spec, api_base=api_base, timeout_s=2.0, max_retries=settings.llm_retries,
                   record=Path(settings.record) if settings.record else None,
                   retry_base_delay_s=retry_base_delay_s)
    progress = Controller(problem, settings, archive, llm, tmp_path).run()
    return progress, archive


def test_failed_proposals_are_recorded_and_the_run_reaches_its_target(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=ok(GOOD_EDIT)) as server:
        server.enqueue(
            malformed(),                         # iteration 1: malformed body (not retried) -> failed proposal
            ok(BAD_EDIT, prompt_tokens=100, completion_tokens=20),  # iteration 2: edit does not apply
            empty(),                             # iteration 3: empty completion
            http_error(500), ok(GOOD_EDIT),      # iteration 4: retried, then a good edit
        )
        progress, archive = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url,
                                 iterations=4, concurrency=1, islands=1)
        requests = server.chat_requests()
    assert progress.stop_reason == "iterations" and archive.attempt_count() == 4
    outcomes = archive.outcome_counts()
    assert outcomes == {LLM_ERROR: 2, EDIT_ERROR: 1, EVALUATED: 1}
    best = archive.best()
    assert best.model == "openai/toy-model" and best.score == 0.0  # -x is optimal
    assert archive.usage()["prompt_tokens"] >= 100
    # The edit failure went back into the next prompt of that island.
    assert "edit 1" in requests[2].body["messages"][1]["content"]
    assert "edit 1" not in requests[1].body["messages"][1]["content"]


def test_budget_stops_the_run_cleanly(toy_dir: Path, tmp_path: Path) -> None:
    replay = tmp_path / "costly.jsonl"
    lines = [
        f'{{"iteration": {i}, "model": "m", "text": {GOOD_EDIT!r}, "prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.4}}'
        for i in range(1, 11)
    ]
    replay.write_text("\n".join(line.replace("'", '"').replace("\n", "\\n") for line in lines) + "\n")
    progress, archive = _run(toy_dir, tmp_path, f"replay:{replay}", iterations=10, budget_usd=1.0)
    assert progress.stop_reason == "budget $1 reached"
    assert archive.attempt_count() == 3 and archive.usage()["cost_usd"] == pytest.approx(1.2)


def test_a_recorded_run_replays_to_the_same_programs(toy_dir: Path, tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    _, first = _run(toy_dir, first_dir, "stub", iterations=12, record=str(record))
    _, second = _run(toy_dir, second_dir, f"replay:{record}", iterations=12)
    codes = lambda a: [a.program(i).code for i in range(1, a.program_count() + 1)]  # noqa: E731
    assert codes(first) == codes(second)
    assert first.outcome_counts() == second.outcome_counts()


def test_a_child_already_in_the_archive_is_not_evaluated_again(toy_dir: Path, tmp_path: Path) -> None:
    same_as_seed = GOOD_EDIT.replace("return -x", "return x  *  1.0  # same program, other layout")
    with FakeLLMServer(default=ok(same_as_seed)) as server:
        _, archive = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url, iterations=3)
    assert archive.outcome_counts() == {DUPLICATE: 3} and archive.program_count() == 1


def test_a_wrong_key_stops_the_run_after_llm_fail_fast_calls(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=http_error(401, message="bad key")) as server:
        progress, archive = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url, iterations=20)
    assert progress.stop.kind == StopKind.MODEL_CONFIG and progress.stop.exit_code == 3
    assert progress.stop_reason.startswith("openai/toy-model: HTTP 401 authentication failed")
    assert archive.attempt_count() == 3 and archive.outcome_counts() == {LLM_ERROR: 3}


def test_a_permanent_failure_among_successes_does_not_stop_the_run(toy_dir: Path, tmp_path: Path) -> None:
    """Only failures *in a row* count: a success in between resets the count."""
    with FakeLLMServer(default=ok(GOOD_EDIT)) as server:
        server.enqueue(http_error(404), http_error(404), ok(BAD_EDIT), http_error(404), http_error(404))
        progress, archive = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url,
                                 iterations=8, concurrency=1)
    assert progress.stop.kind == StopKind.COMPLETED and archive.attempt_count() == 8
    assert progress.failures_by_kind["model"] == 4
    assert progress.last_failure["model"].startswith("iteration 5: openai/toy-model: HTTP 404")


def test_failures_are_counted_by_kind_with_the_last_reason(toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=ok(GOOD_EDIT)) as server:
        server.enqueue(http_error(503), http_error(503), ok(BAD_EDIT))
        progress, _ = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url, iterations=3,
                           concurrency=1, islands=1, retry_base_delay_s=0)
    assert progress.failures_by_kind == {"model": 1, "edit": 1, "evaluation": 0}
    assert "failed after 2 attempts; last error: HTTP 503" in progress.last_failure["model"]
    assert progress.last_failure["edit"].startswith("iteration 2: edit 1: its SEARCH text")
    assert progress.eta_s == 0


def test_concurrent_proposals_are_in_flight_together(toy_dir: Path, tmp_path: Path) -> None:
    """--concurrency N keeps N model calls open at once (a slow model never serialises the loop)."""
    with FakeLLMServer(default=ok(GOOD_EDIT, delay_s=1.0)) as server:
        _run(toy_dir, tmp_path, "openai/toy-model", server.base_url, iterations=4, concurrency=4)
        arrivals = sorted(r.at for r in server.chat_requests())
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] < 0.9  # all four sent before the first answer came back


def test_thinking_is_archived_but_never_sent_back(toy_dir: Path, tmp_path: Path) -> None:
    secret = "PRIVATE-REASONING-7f3a"
    thinking = f"<think>\n{secret}: maybe <<<<<<< SEARCH\n    return x * 1.0\n=======\n    return x\n"
    with FakeLLMServer(default=ok(thinking + "</think>\n" + GOOD_EDIT)) as server:
        _, archive = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url, iterations=4,
                          concurrency=1, islands=1)
        requests = server.chat_requests()
    stored = archive._db.execute("SELECT completion FROM attempts ORDER BY iteration").fetchall()
    assert all(secret in row[0] for row in stored)
    assert all(secret not in m["content"] for r in requests for m in r.body["messages"])
    assert archive.best().code.count("return -x") == 1  # the answer's edit, not the draft's


def test_a_runaway_reply_is_stored_truncated_with_a_note(toy_dir: Path, tmp_path: Path) -> None:
    huge = GOOD_EDIT + "\n" + "x" * (3 << 19)  # 1.5 MiB
    with FakeLLMServer(default=ok(huge)) as server:
        _, archive = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url, iterations=1,
                          concurrency=1)
    (stored,) = archive._db.execute("SELECT completion FROM attempts").fetchone()
    assert len(stored) < (1 << 20) + 200
    assert stored.endswith(f"[evolve: reply truncated from {len(huge)} to 1048576 characters]\n")
    assert archive.best().code.count("return -x") == 1  # the edit at its head still applies


def test_evolve_prompt_shows_exactly_the_next_request(toy_dir: Path, tmp_path: Path) -> None:
    from evolve.preview import next_prompt

    run = tmp_path / "run"
    run.mkdir()
    replies = [ok(GOOD_EDIT), ok(BAD_EDIT), ok("Idea: same again.\n" + GOOD_EDIT)]
    with FakeLLMServer(default=ok(GOOD_EDIT.replace("return -x", "return -2 * x"))) as server:
        server.enqueue(*replies)
        problem = load_problem(str(toy_dir))
        settings = resolve_settings(problem.spec.run, None, {"iterations": 5, "islands": 2,
                                                             "llm_retries": 1})
        save_config(run, problem.name, problem.dir, settings)
        archive = Archive(run / "archive.sqlite", create=True)
        llm = make_llm("openai/toy-model", api_base=server.base_url)
        Controller(problem, settings, archive, llm, run).run()
        archive.close()
        preview = next_prompt(run=run)
        settings = settings.model_copy(update={"iterations": 6})
        archive = Archive(run / "archive.sqlite")
        Controller(problem, settings, archive, llm, run).run()
        sent = server.chat_requests()[-1].body["messages"]
    assert preview.iteration == 6 and preview.messages == sent


def test_prompts_report_what_was_tried_and_give_islands_different_directions(
        toy_dir: Path, tmp_path: Path) -> None:
    with FakeLLMServer(default=ok("Idea: flip the sign.\n" + GOOD_EDIT)) as server:
        # lookahead off: each request is built after the previous child's result is in
        _, archive = _run(toy_dir, tmp_path, "openai/toy-model", server.base_url, iterations=4, islands=2,
                          concurrency=1, lookahead=False)
        first, second, third, fourth = (r.body["messages"][1]["content"] for r in server.chat_requests())
    # Both islands start from the seed, each with its own direction.
    assert "# Direction for this island" in first and "# Direction for this island" in second
    assert first.split("# Direction")[1] != second.split("# Direction")[1]
    # Island 1 starts from the seed too: the attempt island 0 made from it is reported.
    assert "# Already tried" not in first
    # ... and with the run's best far ahead of the seed, its request asks for the island's first
    # program whole (a clean-room agent read a diff request there as a rewrite in disguise); the
    # model's SEARCH/REPLACE answer is still read (the same edit as iteration 1's: a duplicate,
    # not an edit error).
    assert "so this request asks for the island's first program whole" in second.lower()
    assert "<<<<<<< SEARCH" not in second and "<<<<<<< SEARCH" in first
    assert tuple(archive._db.execute("SELECT mode, outcome FROM attempts WHERE iteration = 2").fetchone()) == \
        ("rewrite", DUPLICATE)
    tried = second.split("# Already tried on this program")[1].split("\n# ")[0]
    assert "iteration 1 (island 0): flip the sign. [changed priority] -> #2 score 0 (gap 0.00%), better by" in tried
