"""What the controller commits: a program with its evaluation, an attempt with its model call.

Also the two guards on what goes in: a model reply is capped in length (and made encodable),
and an engine fault while judging a child becomes that child's failure.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from evolve.archive import Attempt, Program
from evolve.edits import block_text
from evolve.evaluation import Evaluation
from evolve.executors import Executor
from evolve.llm.base import Completion
from evolve.llm.reply import without_surrogates
from evolve.population import feature_values
from evolve.problem import Problem

# A model reply longer than this is stored (and applied) truncated, with a note:
# no real edit is that long, and a runaway reply must not bloat the archive.
MAX_REPLY_CHARS = 1 << 20


class Iteration(Protocol):
    """What an attempt records of the iteration that made it."""

    iteration: int
    island: int
    parent: Program
    mode: str


def program_record(
    problem: Problem, code: str, digest: str, parent_id: int | None, island: int, iteration: int,
    generation: int, origin: str, model: str | None, evaluation: Evaluation,
) -> Program:
    features = None
    if evaluation.ok:
        features = feature_values(problem.spec.features, len(block_text(code)), evaluation.metrics)
    return Program(
        code=code, code_hash=digest, parent_id=parent_id, island=island, iteration=iteration,
        generation=generation, origin=origin, model=model, status=evaluation.status,
        score=evaluation.score if evaluation.ok else None, stage=evaluation.stage,
        metrics=evaluation.metrics, instances=[r.to_json() for r in evaluation.instances],
        feedback=evaluation.feedback, features=features, eval_seconds=evaluation.seconds,
    )


def attempt_record(task: Iteration, outcome: str, error: str | None, completion: Completion | None) -> Attempt:
    return Attempt(
        iteration=task.iteration, island=task.island, parent_id=task.parent.id, mode=task.mode,
        model=completion.model if completion else None, outcome=outcome, error=error,
        completion=completion.text if completion else None,
        prompt_tokens=completion.prompt_tokens if completion else 0,
        completion_tokens=completion.completion_tokens if completion else 0,
        cost_usd=completion.cost_usd if completion else 0.0,
        llm_seconds=completion.seconds if completion else 0.0,
    )


def safe_evaluate(
    executor: Executor, code: str, parent_quick_score: float | None, tolerance: float, cascade: bool
) -> Evaluation:
    """An engine fault while judging one child becomes that child's failure."""
    try:
        return executor.evaluate(code, parent_quick_score, tolerance, cascade)
    except Exception as err:
        return Evaluation("crash", None, {}, [], f"evaluation failed: {type(err).__name__}: {err}", "quick", 0.0)


def capped(completion: Completion) -> Completion:
    """The completion, cut to MAX_REPLY_CHARS with a note saying so if it was longer, its lone
    surrogates (not encodable as UTF-8) replaced by U+FFFD."""
    text = without_surrogates(completion.text)  # a replayed reply too (the servers' are, in extract_reply)
    if text is not completion.text:
        completion = dataclasses.replace(completion, text=text)
    if len(text) <= MAX_REPLY_CHARS:
        return completion
    note = f"\n[evolve: reply truncated from {len(text)} to {MAX_REPLY_CHARS} characters]\n"
    return dataclasses.replace(completion, text=text[:MAX_REPLY_CHARS] + note)
