"""The controller: concurrent proposals and evaluations, budgets, stop rules.

Two pools: ``concurrency`` threads wait on the LLM, ``workers`` threads each
drive one sandbox.  Only this thread touches the archive and the population,
so there is no locking; a finished evaluation is committed before anything
else happens, which is what makes ``resume`` lossless.
"""

from __future__ import annotations

import queue
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from evolve.archive import DUPLICATE, EDIT_ERROR, EVALUATED, LLM_ERROR, Archive, Program
from evolve.autotune import TUNED, AutoTuner, Tuned
from evolve.config import RunSettings
from evolve.edits import EditError, apply_edit, code_hash
from evolve.errors import UserError
from evolve.evalcache import instances_digest
from evolve.evaluation import FAILURE_KINDS, Evaluation
from evolve.executors import Executor
from evolve.gp.islands import EPOCHS_META, IslandPolicy
from evolve.gp.semantics import BehaviourKeys
from evolve.llm import OFFLINE
from evolve.llm.base import LLM, Completion, LLMError, ProposalRequest
from evolve.model_health import ModelHealth
from evolve.population import Elite, Population, cell_key
from evolve.problem import Problem
from evolve.progress import EDIT, EVALUATION, MODEL, Progress, first_line
from evolve.prompt_history import InFlight
from evolve.prompting import PromptBuilder
from evolve.records import attempt_record, capped, program_record, safe_evaluate
from evolve.scoring import headline_gap
from evolve.stop import Stop, StopKind
from evolve.verifier import Instance
from evolve.workers import make_executor

INSTANCES_META = "search_instances"  # digest of the quick and train instances a run is scored on

# How often the loop wakes up while waiting, to check the outage rule and let
# the display refresh (ETA, the plain log line) even when nothing finishes.
TICK_S = 1.0


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
        self.prompts = PromptBuilder(problem, settings, archive)
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
        self._in_flight: dict[Future, _Task] = {}
        # Constant tuning of each new best every tune_every iterations (evolve/autotune.py).
        self._tuner = (AutoTuner(settings.tune_every, settings.tune_budget, settings.seed, archive)
                       if settings.tune_every else None)
        # Fail fast: permanent model failures in a row; outage: time of the last
        # model call that succeeded (or of the start) and failures since then.
        self._model_health = ModelHealth(settings.llm_fail_fast, settings.llm_outage_minutes)
        usage = archive.usage()
        counts = archive.outcome_counts()
        statuses = archive.status_counts()
        by_kind = {
            MODEL: counts.get(LLM_ERROR, 0),
            EDIT: counts.get(EDIT_ERROR, 0),
            EVALUATION: sum(statuses.get(k, 0) for k in FAILURE_KINDS),
        }
        self.progress = Progress(
            done=archive.attempt_count(),
            target=settings.iterations,
            best_score=None,
            best_gap=None,
            failures=sum(by_kind.values()),
            evaluations=0,
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            cost_usd=usage["cost_usd"],
            started=time.time(),
            failures_by_kind=by_kind,
            duplicates=counts.get(DUPLICATE, 0),
        )

    # --- set-up -------------------------------------------------------------
    def _load_instances(self) -> tuple[list[Instance], list[Instance]]:
        # The test split is never loaded here: held-out instances stay unseen.
        return self.problem.instances("quick"), self.problem.instances("train")

    def _check_instances(self, quick: list[Instance], train: list[Instance]) -> None:
        """Pin the search's instances to the run: a resumed run whose quick or train
        instances changed (new data, a new generator, new seeds) would rank programs scored
        on different instances against each other, so it is refused."""
        digest = f"{instances_digest(quick)}:{instances_digest(train)}"
        pinned = self.archive.get_meta(INSTANCES_META)
        if pinned is None:  # a new run, or one archived before runs were pinned
            self.archive.set_meta(INSTANCES_META, digest)
        elif pinned != digest:
            raise UserError(
                f"{self.run_dir}: problem '{self.problem.name}' has different quick/train instances "
                "from those this run was scored on (its data, generator or seeds changed); "
                "its scores would not compare: start a new run")

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
        program = program_record(self.problem, code, code_hash(code), None, 0, 0, 0, "seed", None, full)
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
        self._check_instances(quick, train)
        settings = self.settings
        executor = make_executor(self.problem, settings, {"quick": quick, "train": train}, [self.run_dir])
        proposers = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="propose")
        evaluators = ThreadPoolExecutor(settings.workers, thread_name_prefix="evaluate")
        in_flight: dict[Future, _Task] = {}
        self._in_flight = in_flight  # the prompts report the iterations still in flight
        done: queue.SimpleQueue[Future] = queue.SimpleQueue()  # futures as they finish

        def track(future: Future, task: _Task) -> None:
            in_flight[future] = task
            future.add_done_callback(done.put)
        # Iterations in flight (proposing or evaluating). With 1, each parent is
        # sampled after the previous child is archived: a run repeats exactly.
        in_flight_limit = max(settings.concurrency, settings.workers)
        try:
            self._restore_population()
            self._ensure_seed(executor)
            self.prompts.prepare(quick, train)
            next_iteration = self.archive.max_iteration() + 1
            self.progress.loop_started = time.time()
            self.on_progress(self.progress)
            while True:
                busy_since = time.thread_time()
                while (
                    self.progress.stop is None
                    and self.progress.done + len(in_flight) < settings.iterations
                    and len(in_flight) < in_flight_limit
                ):
                    due = self._tuner.due(next_iteration, self.archive) if self._tuner else None
                    if due is not None and self._tuner is not None:
                        future = evaluators.submit(self._tuner.tune, due, executor)
                        track(future, _Task("tune", next_iteration - 1, due.island, due, "tune"))
                        continue
                    track(*self._launch(next_iteration, proposers))
                    next_iteration += 1
                if not in_flight:
                    break
                self.progress.engine_seconds += time.thread_time() - busy_since
                finished = _finished(done, in_flight, TICK_S)
                busy_since = time.thread_time()
                if not finished:  # a tick: nothing finished, but time passed
                    self._check_model_health()
                    self._abandon_proposals_if_stopped(in_flight)
                    self.on_progress(self.progress)
                for future in finished:
                    task = in_flight.pop(future)
                    if task.kind == "propose":
                        follow = self._after_proposal(task, future, executor, evaluators, proposers)
                        if follow is not None:
                            track(*follow)
                    elif task.kind == "tune":
                        self._after_tune(task, future)
                    else:
                        self._after_evaluation(task, future)
                    self.on_progress(self.progress)
                self._abandon_proposals_if_stopped(in_flight)
                self.progress.engine_seconds += time.thread_time() - busy_since
            if self.progress.stop is None:
                self._stop(StopKind.COMPLETED, "iterations")
            self.on_progress(self.progress)
            return self.progress
        finally:
            proposers.shutdown(wait=False, cancel_futures=True)
            evaluators.shutdown(wait=False, cancel_futures=True)
            executor.close()

    def preview(self, executor: Executor | None = None) -> ProposalRequest:
        """The request a model would be sent next, without running anything.

        With ``executor`` the seed is evaluated first if the archive has none
        (a fresh run). Offline backends' own choices (the GP's island plan) are
        not consulted: this is what a model would get.
        """
        quick, train = self._load_instances()
        self._restore_population()
        if executor is not None:
            self._ensure_seed(executor)
        self.prompts.prepare(quick, train)
        self._policy, self._offline = None, False
        request, _task = self.next_request(self.archive.max_iteration() + 1)
        return request

    def _launch(self, iteration: int, pool: ThreadPoolExecutor, retry: int = 0) -> tuple[Future, _Task]:
        request, task = self.next_request(iteration, retry)
        return pool.submit(self._propose, request), task

    def next_request(self, iteration: int, retry: int = 0) -> tuple[ProposalRequest, _Task]:
        """The request of ``iteration``: parent, inspirations, mode and the prompt.

        Depends only on the archive, the settings and the population restored
        from it, so ``evolve prompt --run`` rebuilds exactly what a model gets.
        """
        s = self.settings
        rng = random.Random(f"{s.seed}:{iteration}" if not retry else f"{s.seed}:{iteration}:{retry}")
        island = (iteration - 1) % s.islands
        self._iteration = max(self._iteration, iteration)
        fresh, parent_id, choice = False, None, None
        if self._policy is not None:
            plan = self._policy.plan(island, iteration, self.archive)
            if plan.restart:
                self._restart_island(island, iteration)
            fresh, parent_id = plan.fresh, plan.parent_id
        if parent_id is None:
            choice = self.population.choose_parent(island, rng, s.exploitation, s.exploration, s.tournament)
            parent_id = choice.program_id
        if self._policy is not None:
            self._policy.launched(iteration, parent_id)
        parent = self.archive.program(parent_id)
        if self._offline:  # the GP crosses over with the island's elites
            chosen = self.population.inspirations(island, parent_id, rng, s.inspirations)
        else:  # a model reads them: the run's best first, never the seed again
            seed = self.archive.seed()
            avoid = {seed.id} if seed is not None and seed.id is not None else set()
            chosen = self.population.prompt_inspirations(island, parent_id, rng, s.inspirations, avoid)
        inspirations = [self.archive.program(i) for i in chosen]
        mode = s.edit_mode
        if mode == "mixed":
            mode = "rewrite" if rng.random() < s.rewrite_fraction else "diff"
        # Offline backends read the structured fields, never a prompt: none is rendered for them.
        messages = [] if self._offline else self.prompts.messages(
            mode, island, parent, inspirations, choice=choice, in_flight=self._pending())
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
        return request, _Task("propose", iteration, island, parent, mode, retry=retry)

    def _pending(self) -> list[InFlight]:
        """Iterations proposed or being evaluated now (none with one at a time, the default)."""
        return [InFlight(t.iteration, t.island, t.parent.id, t.completion.text if t.completion else None)
                for t in self._in_flight.values() if t.kind in ("propose", "evaluate")]

    def _stop(self, kind: StopKind, message: str) -> None:
        """Record the first stop reason; later ones do not replace it."""
        if self.progress.stop is None:
            self.progress.stop = Stop(kind, message)
            self.progress.stop_reason = message

    def _abandon_proposals_if_stopped(self, in_flight: dict[Future, _Task]) -> None:
        """After a model stop, stop waiting for model calls still in flight.

        They would only fail the same way (or hang until their timeout); their
        threads finish in the background and their results are dropped.
        Evaluations in flight are still awaited: their programs are committed.
        """
        stop = self.progress.stop
        if stop is None or stop.kind not in (StopKind.MODEL_CONFIG, StopKind.MODEL_OUTAGE):
            return
        for future in [f for f, t in in_flight.items() if t.kind == "propose"]:
            future.cancel()
            del in_flight[future]

    def _check_model_health(self) -> None:
        stop = self._model_health.stop(self.progress.last_failure.get(MODEL, ""))
        if stop is not None:
            self._stop(stop.kind, stop.message)

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
            safe_evaluate,
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

    def _after_tune(self, task: _Task, future: Future) -> None:
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

    def _after_evaluation(self, task: _Task, future: Future) -> None:
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
        self.archive.add_program(program, attempt)
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
        self._maybe_migrate()

    # --- bookkeeping --------------------------------------------------------
    def _record_failure(self, task: _Task, outcome: str, error: str, completion: Completion | None) -> None:
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
            _write_atomic(self.run_dir / "best.py", program.code)

    def _maybe_migrate(self) -> None:
        if self.progress.done % self.settings.migration_interval:
            return
        settling = self._policy.settling(self._iteration) if self._policy is not None else set()
        for island, elite in self.population.migrate(skip=settling):
            self.archive.set_elite(island, elite.cell, elite.program_id, elite.score)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _finished(done: queue.SimpleQueue[Future], in_flight: dict[Future, _Task], timeout: float) -> list[Future]:
    """The futures in flight that have finished, in the order they did: waits up to
    ``timeout`` for the first, then takes all that finished meanwhile. Abandoned ones
    (no longer in flight) are dropped.

    A queue fed by each future's done-callback, rather than ``concurrent.futures.wait``,
    whose waiters (installed on every future in flight and removed again, each call)
    cost the controller's thread about as much CPU again as the hand-off itself.
    """
    try:
        finished = [done.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            finished.append(done.get_nowait())
        except queue.Empty:
            return [future for future in finished if future in in_flight]
