"""The controller: concurrent proposals and evaluations, budgets, stop rules.

Two pools: ``concurrency`` threads wait on the LLM, ``workers`` threads each
drive one sandbox.  Only this thread touches the archive and the population,
so there is no locking; a finished evaluation is committed before anything
else happens, which is what makes ``resume`` lossless.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from evolve.archive import DUPLICATE, EDIT_ERROR, EVALUATED, LLM_ERROR, Archive, Attempt, Program
from evolve.config import RunSettings
from evolve.edits import EditError, apply_edit, block_text, code_hash
from evolve.errors import UserError
from evolve.evaluation import FAILURE_KINDS, Evaluation
from evolve.executors import Executor, make_executor
from evolve.gp.islands import EPOCHS_META, IslandPolicy
from evolve.gp.semantics import BehaviourKeys
from evolve.llm import OFFLINE
from evolve.llm.base import LLM, Completion, LLMError, ProposalRequest
from evolve.llm.retry import LLMConfigError
from evolve.population import Elite, Population, cell_key, feature_values
from evolve.problem import Problem
from evolve.prompting import PromptProgram, render_messages
from evolve.scoring import headline_gap
from evolve.verifier import Instance


@dataclass
class Progress:
    done: int
    target: int
    best_score: float | None
    best_gap: float | None
    failures: int
    evaluations: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    started: float
    stop_reason: str | None = None
    # CPU time of the controller thread's own work (sampling, prompts, edits,
    # archive writes): thread time, so a loaded machine does not inflate it.
    engine_seconds: float = 0.0
    # Duplicates an offline backend proposed and was asked again for (no iteration spent).
    duplicates_skipped: int = 0

    @property
    def evals_per_s(self) -> float:
        elapsed = time.time() - self.started
        return self.evaluations / elapsed if elapsed > 0 else 0.0


@dataclass
class _Task:
    kind: str  # "propose" or "evaluate"
    iteration: int
    island: int
    parent: Program
    mode: str
    completion: Completion | None = None
    child: str = ""
    child_hash: str = ""
    child_key: str | None = None  # behaviour key (evolve.gp.semantics), when the problem has rules
    retry: int = 0
    started: float = field(default_factory=time.perf_counter)


class Controller:
    def __init__(
        self,
        problem: Problem,
        settings: RunSettings,
        archive: Archive,
        llm: LLM,
        run_dir: Path,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.problem = problem
        self.settings = settings
        self.archive = archive
        self.llm = llm
        self.run_dir = run_dir
        self.on_progress = on_progress or (lambda _p: None)
        self.population = Population(settings.islands)
        self._edit_errors: dict[int, str] = {}
        self._in_flight_hashes: set[str] = set()
        backend = getattr(llm, "name", "")
        # Offline proposals cost nothing: a duplicate is asked for again instead of spending
        # the iteration. The GP also plans its islands (random start, broods, restarts).
        self._offline = backend in OFFLINE
        self._policy = IslandPolicy(settings.gp, settings.islands) if backend == "gp" else None
        # Programs that order every candidate alike are duplicates (problems with [rule]).
        self._keys = BehaviourKeys(problem.spec.rule) if problem.spec.rule else None
        self._seen_keys: dict[str, int | None] = {}
        self._iteration = 0
        usage = archive.usage()
        counts = archive.outcome_counts()
        statuses = archive.status_counts()
        self.progress = Progress(
            done=archive.attempt_count(),
            target=settings.iterations,
            best_score=None,
            best_gap=None,
            failures=counts.get(EDIT_ERROR, 0) + counts.get(LLM_ERROR, 0)
            + sum(statuses.get(k, 0) for k in FAILURE_KINDS),
            evaluations=0,
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            cost_usd=usage["cost_usd"],
            started=time.time(),
        )

    # --- set-up -------------------------------------------------------------
    def _load_instances(self) -> tuple[list[Instance], list[Instance]]:
        # The test split is never loaded here: held-out instances stay unseen.
        return self.problem.instances("quick"), self.problem.instances("train")

    def _ensure_seed(self, executor: Executor) -> None:
        if self.archive.seed() is not None:
            return
        code = self.problem.seed_code
        first = executor.run_split(code, "quick")
        full = executor.run_split(code, "train") if first.ok else first
        if not full.ok:
            raise UserError(
                f"{self.problem.dir / self.problem.spec.seed}: the seed program fails on the "
                f"{full.stage} split ({full.status}): {full.feedback.splitlines()[0] if full.feedback else ''}"
            )
        full.metrics["quick_score"] = first.score if first.score is not None else 0.0
        program = self._program(code, code_hash(code), None, 0, 0, 0, "seed", None, full)
        self.archive.add_program(program)
        assert program.id is not None
        for island in range(self.settings.islands):
            self._offer(island, program)
        self._remember_key(code, program.id)

    def _restore_population(self) -> None:
        for island, cell, program_id, score in self.archive.elites():
            if island < len(self.population.islands):
                self.population.offer(island, Elite(program_id, score, cell))
        best = self.archive.best()
        if best is not None:
            self._note_best(best)
        if self._policy is not None:
            self._policy.restore(self.archive)
        for program_id, code in self.archive.codes():
            self._remember_key(code, program_id)

    def _remember_key(self, code: str, program_id: int | None) -> None:
        if self._keys is not None:
            key = self._keys.key(code)
            if key is not None:
                self._seen_keys.setdefault(key, program_id)

    # --- the loop -----------------------------------------------------------
    def run(self) -> Progress:
        quick, train = self._load_instances()
        settings = self.settings
        executor = make_executor(self.problem, settings, {"quick": quick, "train": train}, [self.run_dir])
        proposers = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="propose")
        evaluators = ThreadPoolExecutor(settings.workers, thread_name_prefix="evaluate")
        in_flight: dict[Future, _Task] = {}
        # Iterations in flight (proposing or evaluating). With 1, each parent is
        # sampled after the previous child is archived: a run repeats exactly.
        in_flight_limit = max(settings.concurrency, settings.workers)
        try:
            self._restore_population()
            self._ensure_seed(executor)
            next_iteration = self.archive.max_iteration() + 1
            self.on_progress(self.progress)
            while True:
                busy_since = time.thread_time()
                while (
                    self.progress.stop_reason is None
                    and self.progress.done + len(in_flight) < settings.iterations
                    and len(in_flight) < in_flight_limit
                ):
                    task = self._launch(next_iteration, proposers)
                    in_flight[task[0]] = task[1]
                    next_iteration += 1
                if not in_flight:
                    break
                self.progress.engine_seconds += time.thread_time() - busy_since
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                busy_since = time.thread_time()
                for future in finished:
                    task = in_flight.pop(future)
                    if task.kind == "propose":
                        follow = self._after_proposal(task, future, executor, evaluators, proposers)
                        if follow is not None:
                            in_flight[follow[0]] = follow[1]
                    else:
                        self._after_evaluation(task, future)
                    self.on_progress(self.progress)
                self.progress.engine_seconds += time.thread_time() - busy_since
            if self.progress.stop_reason is None:
                self.progress.stop_reason = "iterations"
            self.on_progress(self.progress)
            return self.progress
        finally:
            proposers.shutdown(wait=False, cancel_futures=True)
            evaluators.shutdown(wait=False, cancel_futures=True)
            executor.close()

    def _launch(self, iteration: int, pool: ThreadPoolExecutor, retry: int = 0) -> tuple[Future, _Task]:
        s = self.settings
        rng = random.Random(f"{s.seed}:{iteration}" if not retry else f"{s.seed}:{iteration}:{retry}")
        island = (iteration - 1) % s.islands
        self._iteration = max(self._iteration, iteration)
        fresh, parent_id = False, None
        if self._policy is not None:
            plan = self._policy.plan(island, iteration, self.archive)
            if plan.restart:
                self._restart_island(island, iteration)
            fresh, parent_id = plan.fresh, plan.parent_id
        if parent_id is None:
            parent_id = self.population.sample_parent(island, rng, s.exploitation, s.exploration, s.tournament)
        if self._policy is not None:
            self._policy.launched(iteration, parent_id)
        parent = self.archive.program(parent_id)
        inspirations = [
            self.archive.program(i)
            for i in self.population.inspirations(island, parent_id, rng, s.inspirations)
        ]
        mode = s.edit_mode
        if mode == "mixed":
            mode = "rewrite" if rng.random() < s.rewrite_fraction else "diff"
        messages = render_messages(
            self.problem,
            mode,
            _prompt_program(parent),
            [_prompt_program(p) for p in inspirations],
            self._edit_errors.pop(island, None),
        )
        request = ProposalRequest(
            messages=messages,
            iteration=iteration,
            seed=s.seed,
            mode=mode,  # type: ignore[arg-type]
            parent_code=parent.code,
            inspiration_codes=[p.code for p in inspirations],
            retry=retry,
            fresh=fresh,
        )
        task = _Task("propose", iteration, island, parent, mode, retry=retry)
        return pool.submit(self._propose, request), task

    def _propose(self, request: ProposalRequest) -> Completion | LLMError:
        try:
            return self.llm.complete(request)
        except LLMError as err:
            return err
        except Exception as err:  # a backend bug costs one proposal, not the run
            return LLMError(f"{type(err).__name__}: {err}")

    def _after_proposal(
        self,
        task: _Task,
        future: Future,
        executor: Executor,
        pool: ThreadPoolExecutor,
        proposers: ThreadPoolExecutor,
    ) -> tuple[Future, _Task] | None:
        result = future.result()
        if isinstance(result, LLMError):
            self._record_failure(task, LLM_ERROR, str(result), None)
            if isinstance(result, LLMConfigError) and self.progress.stop_reason is None:
                # A wrong key or model fails every later call the same way.
                self.progress.stop_reason = f"LLM configuration error: {result}"
            return None
        task.completion = result
        self._count_usage(result)
        try:
            task.child = apply_edit(task.parent.code, result.text, task.mode)  # type: ignore[arg-type]
        except EditError as err:
            self._edit_errors[task.island] = str(err)
            self._record_failure(task, EDIT_ERROR, str(err), result)
            return None
        task.child_hash = code_hash(task.child)
        task.child_key = self._keys.key(task.child) if self._keys is not None else None
        duplicate = self._duplicate_reason(task)
        if duplicate is not None:
            if self._offline and task.retry < self.settings.duplicate_retries:
                self.progress.duplicates_skipped += 1
                return self._launch(task.iteration, proposers, task.retry + 1)
            self._record_failure(task, DUPLICATE, duplicate, result)
            return None
        self._in_flight_hashes.add(task.child_hash)
        if task.child_key is not None:
            self._seen_keys.setdefault(task.child_key, None)
        task.kind = "evaluate"
        cascade = self.settings.cascade
        future = pool.submit(
            _safe_evaluate,
            executor,
            task.child,
            task.parent.metrics.get("quick_score"),
            cascade.tolerance,
            cascade.enabled,
        )
        return future, task

    def _duplicate_reason(self, task: _Task) -> str | None:
        if task.child_hash in self._in_flight_hashes or self.archive.id_for_hash(task.child_hash) is not None:
            return "same program as one already in the archive"
        if task.child_key is not None and task.child_key in self._seen_keys:
            twin = self._seen_keys[task.child_key]
            where = f"program #{twin}" if twin is not None else "a program being evaluated"
            return f"its rule orders every candidate exactly as {where} does (same behaviour)"
        return None

    def _restart_island(self, island: int, iteration: int) -> None:
        """A stalled island starts a new epoch from the seed alone (the GP then starts afresh)."""
        assert self._policy is not None
        epochs = self._policy.restarted(island, iteration)
        self.population.reset(island)
        keep = []
        seed = self.archive.seed()
        if seed is not None and seed.id is not None and seed.score is not None and seed.features is not None:
            cell = cell_key(self.problem.spec.features, seed.features)
            self.population.offer(island, Elite(seed.id, seed.score, cell))
            keep.append((cell, seed.id, seed.score))
        self.archive.reset_island(island, keep, {EPOCHS_META: epochs})

    def _after_evaluation(self, task: _Task, future: Future) -> None:
        evaluation: Evaluation = future.result()
        self._in_flight_hashes.discard(task.child_hash)
        completion = task.completion
        assert completion is not None
        program = self._program(
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
        attempt = self._attempt(task, EVALUATED, None, completion)
        self.archive.add_program(program, attempt)
        if task.child_key is not None:
            self._seen_keys[task.child_key] = program.id
        if self._policy is not None:
            self._policy.note(program)
        self.progress.done += 1
        self.progress.evaluations += 1
        if program.score is None:
            self.progress.failures += int(evaluation.status in FAILURE_KINDS)
        else:
            self._offer(task.island, program)
        self._maybe_migrate()

    # --- bookkeeping --------------------------------------------------------
    def _program(
        self, code: str, digest: str, parent_id: int | None, island: int, iteration: int,
        generation: int, origin: str, model: str | None, evaluation: Evaluation,
    ) -> Program:
        features = None
        if evaluation.ok:
            features = feature_values(self.problem.spec.features, len(block_text(code)), evaluation.metrics)
        return Program(
            code=code, code_hash=digest, parent_id=parent_id, island=island, iteration=iteration,
            generation=generation, origin=origin, model=model, status=evaluation.status,
            score=evaluation.score if evaluation.ok else None, stage=evaluation.stage,
            metrics=evaluation.metrics, instances=[r.to_json() for r in evaluation.instances],
            feedback=evaluation.feedback, features=features, eval_seconds=evaluation.seconds,
        )

    def _attempt(self, task: _Task, outcome: str, error: str | None, completion: Completion | None) -> Attempt:
        return Attempt(
            iteration=task.iteration, island=task.island, parent_id=task.parent.id, mode=task.mode,
            model=completion.model if completion else None, outcome=outcome, error=error,
            completion=completion.text if completion else None,
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            cost_usd=completion.cost_usd if completion else 0.0,
            llm_seconds=completion.seconds if completion else 0.0,
        )

    def _record_failure(self, task: _Task, outcome: str, error: str, completion: Completion | None) -> None:
        self.archive.add_attempt(self._attempt(task, outcome, error, completion))
        self.progress.done += 1
        if outcome != DUPLICATE:
            self.progress.failures += 1
        self._maybe_migrate()

    def _count_usage(self, completion: Completion) -> None:
        p = self.progress
        p.prompt_tokens += completion.prompt_tokens
        p.completion_tokens += completion.completion_tokens
        p.cost_usd += completion.cost_usd
        budget = self.settings.budget_usd
        if budget is not None and p.cost_usd >= budget and p.stop_reason is None:
            p.stop_reason = f"budget ${budget:g} reached"

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
            _write_atomic(self.run_dir / "best.py", program.code)

    def _maybe_migrate(self) -> None:
        if self.progress.done % self.settings.migration_interval:
            return
        settling = self._policy.settling(self._iteration) if self._policy is not None else set()
        for island, elite in self.population.migrate(skip=settling):
            self.archive.set_elite(island, elite.cell, elite.program_id, elite.score)


def _safe_evaluate(
    executor: Executor, code: str, parent_quick_score: float | None, tolerance: float, cascade: bool
) -> Evaluation:
    """An engine fault while judging one child becomes that child's failure."""
    try:
        return executor.evaluate(code, parent_quick_score, tolerance, cascade)
    except Exception as err:
        return Evaluation("crash", None, {}, [], f"evaluation failed: {type(err).__name__}: {err}", "quick", 0.0)


def _prompt_program(program: Program) -> PromptProgram:
    assert program.id is not None
    return PromptProgram(
        id=program.id, code=program.code, block=block_text(program.code), score=program.score,
        feedback=program.feedback, metrics=program.metrics,
    )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
