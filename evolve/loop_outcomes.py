"""What becomes of each finished iteration: a proposal turned into a child (or an edit error,
a model error, a duplicate), an evaluation or a tuning committed to the archive, counted in the
run's progress and offered to the population.  ``LoopOutcomes`` is mixed into ``Controller``
(``loop.py``), which launches the work and calls these when it finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from evolve.archive import DUPLICATE, EDIT_ERROR, EVALUATED, LLM_ERROR, Archive, Program
from evolve.autotune import TUNED, AutoTuner, Tuned
from evolve.config import RunSettings
from evolve.edits import EditError, apply_edit, code_hash
from evolve.evaluation import FAILURE_KINDS, Evaluation
from evolve.executors import Executor
from evolve.files import write_atomic
from evolve.formats import fmt, pct
from evolve.gp.islands import IslandPolicy
from evolve.gp.semantics import BehaviourKeys
from evolve.history import first_reason
from evolve.llm.base import Completion, LLMError
from evolve.loop_task import Task
from evolve.model_health import ModelHealth
from evolve.population import Elite, Population, cell_key
from evolve.problem import Problem
from evolve.progress import EDIT, EVALUATION, MODEL, Progress, first_line
from evolve.prompt_programs import key_metrics
from evolve.prompting import PromptBuilder
from evolve.records import attempt_record, capped, program_record, safe_evaluate
from evolve.scoring import headline_gap
from evolve.stop import StopKind


class LoopOutcomes:
    """The controller's handling of finished work (mixed into ``Controller``, which sets the
    state it reads)."""

    # Set by Controller.__init__:
    problem: Problem
    settings: RunSettings
    archive: Archive
    prompts: PromptBuilder
    run_dir: Path
    population: Population
    progress: Progress
    _offline: bool
    _policy: IslandPolicy | None
    _keys: BehaviourKeys | None
    _seen_keys: dict[str, int | None]
    _in_flight_hashes: set[str]
    _tuner: AutoTuner | None
    _model_health: ModelHealth
    _iteration: int
    # The backend's ``outcome(iteration, summary, details)`` (files:DIR tells the person answering).
    _model_outcome: Callable[[int, str, str], None] | None
    # Defined by Controller:
    _launch: Callable[..., tuple[Future, Task]]
    _stop: Callable[[StopKind, str], None]
    _check_model_health: Callable[[], None]

    def _after_proposal(
        self,
        task: Task,
        future: Future,
        executor: Executor,
        pool: ThreadPoolExecutor,
        proposers: ThreadPoolExecutor,
    ) -> tuple[Future, Task] | None:
        result = future.result()
        if isinstance(result, LLMError):
            self._record_failure(task, LLM_ERROR, str(result), None)
            self._tell(task, f"model error: {first_line(str(result))}", str(result))
            self._model_health.failed(result)
            self._check_model_health()
            return None
        self._model_health.answered()
        result = capped(result)
        task.completion = result
        self._count_usage(result)
        try:
            task.child = apply_edit(task.parent.code, result.text, task.mode)  # type: ignore[arg-type]
        except EditError as err:
            self._record_failure(task, EDIT_ERROR, str(err), result)
            self._tell(task, f"edit error: {first_line(str(err))}", str(err))
            return None
        task.child_hash = code_hash(task.child)
        task.child_key = self._keys.key(task.child) if self._keys is not None else None
        duplicate = self._duplicate_reason(task)
        if duplicate is not None:
            if self._offline and task.retry < self.settings.duplicate_retries:
                self.progress.duplicates_skipped += 1
                return self._launch(task.iteration, proposers, task.retry + 1)
            self._record_failure(task, DUPLICATE, duplicate, result)
            self._tell(task, f"not evaluated, a duplicate: {duplicate}")
            return None
        self._in_flight_hashes.add(task.child_hash)
        if task.child_key is not None:
            self._seen_keys.setdefault(task.child_key, None)
        task.kind = "evaluate"
        cascade = self.settings.cascade
        future = pool.submit(
            _dispatched,
            task.dispatched,
            executor,
            task.child,
            task.parent.metrics.get("quick_score"),
            cascade.tolerance,
            cascade.enabled,
        )
        return future, task

    def _duplicate_reason(self, task: Task) -> str | None:
        if task.child_hash in self._in_flight_hashes or self.archive.id_for_hash(task.child_hash) is not None:
            return "same program as one already in the archive"
        if task.child_key is not None and task.child_key in self._seen_keys:
            twin = self._seen_keys[task.child_key]
            where = f"program #{twin}" if twin is not None else "a program being evaluated"
            return f"its rule orders every candidate exactly as {where} does (same behaviour)"
        return None


    def _remember_key(self, code: str, program_id: int | None) -> None:
        if self._keys is not None:
            key = self._keys.key(code)
            if key is not None:
                self._seen_keys.setdefault(key, program_id)

    def _after_tune(self, task: Task, future: Future) -> None:
        """Archive a tuned program that beat its parent, as the parent's child (origin 'tuned')."""
        parent = task.parent
        assert parent.id is not None and self._tuner is not None
        try:
            tuned: Tuned = future.result()
        except Exception as err:  # an engine fault while tuning costs the tuning, not the run
            self._count_failure(EVALUATION, task.iteration, f"tuning #{parent.id} failed: {type(err).__name__}: {err}")
            tuned = Tuned(parent, None, None, 0, [])
        if tuned.code is not None and tuned.evaluation is not None:
            digest = code_hash(tuned.code)
            if self.archive.id_for_hash(digest) is None:
                program = program_record(self.problem, tuned.code, digest, parent.id, parent.island, task.iteration,
                                        parent.generation + 1, TUNED, "cmaes", tuned.evaluation)
                changed = ", ".join(f"{a:g} -> {b:g}" for a, b in tuned.changes)
                program.feedback = f"constants tuned ({tuned.trials} trials): {changed}\n{program.feedback}"
                self.archive.add_program(program)
                self._remember_key(program.code, program.id)
                if program.score is not None:
                    self._offer(parent.island, program)
        self._tuner.finished(parent.id, self.archive)

    def _after_evaluation(self, task: Task, future: Future) -> None:
        evaluation: Evaluation = future.result()
        self._in_flight_hashes.discard(task.child_hash)
        completion = task.completion
        assert completion is not None
        program = program_record(
            self.problem,
            task.child,
            task.child_hash,
            task.parent.id,
            task.island,
            task.iteration,
            task.parent.generation + 1,
            "llm",
            completion.model,
            evaluation,
        )
        attempt = attempt_record(task, EVALUATED, None, completion)
        self.archive.add_program(program, attempt, evaluation.instances_json)
        if task.child_key is not None:
            self._seen_keys[task.child_key] = program.id
        if self._policy is not None:
            self._policy.note(program)
        self.progress.done += 1
        self.progress.evaluations += 1
        self.progress.session_done += 1
        if program.score is None:
            if evaluation.status in FAILURE_KINDS:
                self._count_failure(EVALUATION, task.iteration,
                                    f"{evaluation.status}: {first_line(evaluation.feedback)}")
        else:
            self._offer(task.island, program)
        if self._model_outcome is not None:  # only a files: model hears what came of its reply
            metrics = key_metrics(program.metrics, self.problem) if program.score is not None else ""
            # with the time against the limits, which a program that fails its budget fails on (a
            # clean-room agent saw it only in the next prompt, never for its last reply)
            timing = self.prompts.time_line(program) if program.score is not None else ""
            self._tell(task, _judged(program, evaluation, self.problem.spec.objective.score, self.progress),
                       "\n".join(part for part in (metrics, program.feedback, timing) if part))
        self._maybe_migrate()

    def _tell(self, task: Task, summary: str, details: str = "") -> None:
        if self._model_outcome is not None:
            self._model_outcome(task.iteration, summary, details)

    # --- bookkeeping --------------------------------------------------------
    def _record_failure(self, task: Task, outcome: str, error: str, completion: Completion | None) -> None:
        self.archive.add_attempt(attempt_record(task, outcome, error, completion))
        self.progress.done += 1
        self.progress.session_done += 1
        if outcome == DUPLICATE:
            self.progress.duplicates += 1
        else:
            self._count_failure(MODEL if outcome == LLM_ERROR else EDIT, task.iteration, error)
        self._maybe_migrate()

    def _count_failure(self, kind: str, iteration: int, reason: str) -> None:
        p = self.progress
        p.failures += 1
        p.failures_by_kind[kind] = p.failures_by_kind.get(kind, 0) + 1
        p.last_failure[kind] = f"iteration {iteration}: {first_line(reason)}"

    def _count_usage(self, completion: Completion) -> None:
        p = self.progress
        p.prompt_tokens += completion.prompt_tokens
        p.completion_tokens += completion.completion_tokens
        p.cost_usd += completion.cost_usd
        budget = self.settings.budget_usd
        if budget is not None and p.cost_usd >= budget:
            self._stop(StopKind.BUDGET, f"budget ${budget:g} reached")

    def _offer(self, island: int, program: Program) -> None:
        assert program.id is not None and program.score is not None and program.features is not None
        cell = cell_key(self.problem.spec.features, program.features)
        elite = Elite(program.id, program.score, cell)
        if self.population.offer(island, elite):
            self.archive.set_elite(island, cell, program.id, program.score)
        self._note_best(program)

    def _note_best(self, program: Program) -> None:
        if program.score is None:
            return
        if self.progress.best_score is None or program.score > self.progress.best_score:
            self.progress.best_score = program.score
            self.progress.best_gap = headline_gap(program.metrics, self.problem.spec.objective.score)
            write_atomic(self.run_dir / "best.py", program.code)

    def _maybe_migrate(self) -> None:
        if self.progress.done % self.settings.migration_interval:
            return
        settling = self._policy.settling(self._iteration) if self._policy is not None else set()
        for island, elite in self.population.migrate(skip=settling):
            self.archive.set_elite(island, elite.cell, elite.program_id, elite.score)


def _judged(program: Program, evaluation: Evaluation, score_kind: str, progress: Progress) -> str:
    """One line on an evaluated child: its score, or why it has none."""
    if program.score is None:
        what = "sandbox failure" if evaluation.status in FAILURE_KINDS else "not scored"
        head, reason = first_line(evaluation.feedback), first_reason(evaluation.feedback, 300)
        return f"applied, {what}: {evaluation.status}: {head}" + (f" {reason}" if reason != head else "")
    gap = headline_gap(program.metrics, score_kind)
    best = progress.best_score
    return (f"applied and scored {fmt(program.score)}" + (f" (gap {pct(gap)})" if gap is not None else "")
            + f" as program #{program.id}" + (f"; best so far {fmt(best)}" if best is not None else ""))


def _dispatched(dispatched: threading.Event, executor: Executor, code: str, parent_quick: float | None,
                tolerance: float, cascade: bool) -> Evaluation:
    """``safe_evaluate`` in the evaluation thread, saying first that it has taken the child up."""
    dispatched.set()
    return safe_evaluate(executor, code, parent_quick, tolerance, cascade)
