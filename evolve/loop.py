"""The controller: concurrent proposals and evaluations, budgets, stop rules.

Two pools: ``concurrency`` threads wait on the LLM, ``workers`` threads each
drive one sandbox.  Only this thread touches the archive and the population,
so there is no locking; a finished evaluation is committed before anything
else happens, which is what makes ``resume`` lossless.

This module launches the work and waits for it; ``loop_setup.py`` does what comes
before the first iteration (instances pinned, seed, population restored) and
``loop_outcomes.py`` what becomes of each finished proposal, evaluation or tuning.
"""

from __future__ import annotations

import gc
import queue
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from evolve.archive import Archive
from evolve.autotune import AutoTuner
from evolve.config import RunSettings
from evolve.executors import Executor
from evolve.gp.islands import EPOCHS_META, IslandPolicy
from evolve.gp.semantics import BehaviourKeys
from evolve.llm import OFFLINE
from evolve.llm.base import LLM, Completion, LLMError, ProposalRequest
from evolve.llm.preflight import members
from evolve.llm.record import RecordingLLM
from evolve.loop_outcomes import LoopOutcomes
from evolve.loop_setup import INSTANCES_META, RunSetup, resumed_progress
from evolve.loop_task import Arrivals, Task
from evolve.model_health import ModelHealth
from evolve.population import Elite, Population, cell_key
from evolve.problem import Problem
from evolve.progress import MODEL, Progress
from evolve.prompt_history import InFlight, seed_far_behind
from evolve.prompting import PromptBuilder
from evolve.stop import Stop, StopKind
from evolve.workers import make_executor

__all__ = ["INSTANCES_META", "TICK_S", "Controller", "Progress"]

# How often the loop wakes up while waiting, to check the outage rule and let
# the display refresh (ETA, the plain log line) even when nothing finishes.
TICK_S = 1.0


class Controller(LoopOutcomes, RunSetup):
    """One run's search: launches proposals and evaluations and waits for them; set-up is
    ``RunSetup`` (loop_setup.py), what becomes of finished work ``LoopOutcomes`` (loop_outcomes.py)."""

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
        # files:DIR wants to know what came of each reply (alone, in an ensemble, behind --record).
        self._model_outcome = _outcome_listener(llm)
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
        self._in_flight: dict[Future, Task] = {}
        # With one iteration at a time, a backend that can (``begin``: the plain OpenAI-compatible
        # client) gets the request that looks ahead from this thread, which reads the answer once
        # the evaluation ahead is archived: no proposal thread to wake and to wait for.
        self._begin: Callable[[ProposalRequest], Any] | None = getattr(llm, "begin", None)
        self._deferred: dict[Future, Any] = {}  # such requests, by the future of their answer
        # Constant tuning of each new best every tune_every iterations (evolve/autotune.py).
        self._tuner = (AutoTuner(settings.tune_every, settings.tune_budget, settings.seed, archive)
                       if settings.tune_every else None)
        # Fail fast: permanent model failures in a row; outage: time of the last
        # model call that succeeded (or of the start) and failures since then.
        self._model_health = ModelHealth(settings.llm_fail_fast, settings.llm_outage_minutes)
        self.progress = resumed_progress(archive, settings)

    def run(self) -> Progress:
        quick, train = self._load_instances()
        self._check_instances(quick, train)
        settings = self.settings
        executor = make_executor(self.problem, settings, {"quick": quick, "train": train}, [self.run_dir])
        proposers = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="propose")
        evaluators = ThreadPoolExecutor(settings.workers, thread_name_prefix="evaluate")
        in_flight: dict[Future, Task] = {}
        self._in_flight = in_flight  # the prompts report the iterations still in flight
        arrivals = Arrivals()  # futures as they finish

        def track(future: Future, task: Task, park: bool = False) -> None:
            in_flight[future] = task
            if park:  # a held proposal: its answer waits for the evaluation ahead (loop_task.py)
                arrivals.park_until_unparked()
            future.add_done_callback(arrivals.put_or_park if park else arrivals.put)
        # Iterations in flight (proposing or evaluating), and with lookahead one more proposal
        # while all of them are evaluations. With 1, each request is built after the previous
        # child is archived, or (lookahead) while it is evaluated, its answer then held until
        # that child is archived: either way in a fixed order, so a run repeats exactly.
        in_flight_limit = max(settings.concurrency, settings.workers)
        lookahead = self._lookahead()
        if isinstance(self.llm, RecordingLLM):  # so that its replay runs the same schedule
            self.llm.lookahead = lookahead
        hold = lookahead and in_flight_limit == 1
        held: list[tuple[Future, Task]] = []  # proposals that finished before the evaluation ahead
        frozen = False
        try:
            self._restore_population()
            self._ensure_seed(executor)
            self.prompts.prepare(quick, train)
            frozen = _freeze_start_up()
            next_iteration = self.archive.max_iteration() + 1
            self.progress.loop_started = time.time()
            self.on_progress(self.progress)
            while True:
                busy_since = time.thread_time()
                while (
                    self.progress.stop is None
                    and self.progress.done + len(in_flight) + len(held) < settings.iterations
                    and (len(in_flight) < in_flight_limit or (lookahead and _may_look_ahead(in_flight, held, in_flight_limit)))
                ):
                    due = self._tuner.due(next_iteration, self.archive) if self._tuner else None
                    if due is not None and self._tuner is not None:
                        future = evaluators.submit(self._tuner.tune, due, executor)
                        track(future, Task("tune", next_iteration - 1, due.island, due, "tune"))
                        continue
                    if hold and in_flight:  # the look-ahead: the child's run gets going first
                        _wait_dispatched(in_flight)
                    park = hold and _evaluating(in_flight)
                    track(*self._launch(next_iteration, proposers, defer=park), park=park)
                    next_iteration += 1
                if not in_flight and not held:
                    break
                self.progress.engine_seconds += time.thread_time() - busy_since
                finished = _finished(arrivals.queue, in_flight, TICK_S)
                busy_since = time.thread_time()
                if not finished:  # a tick: nothing finished, but time passed
                    self._check_model_health()
                    self._abandon_proposals_if_stopped(in_flight, held)
                    self.on_progress(self.progress)
                for future in finished:
                    task = in_flight.pop(future)
                    if task.kind == "propose" and hold and _evaluating(in_flight):
                        held.append((future, task))  # its edit comes after the evaluation ahead is archived
                        continue
                    if task.kind == "evaluate":  # answers parked meanwhile are held ones
                        self._settle_deferred(proposers)  # an answer read here is parked too
                        held += [(f, in_flight.pop(f)) for f in arrivals.unpark() if f in in_flight]
                    ready = [(future, task)] + (held if task.kind == "evaluate" else [])
                    if task.kind == "evaluate":
                        held = []
                    for future, task in ready:
                        if task.kind == "propose":
                            follow = self._after_proposal(task, future, executor, evaluators, proposers)
                            if follow is not None:
                                track(*follow)
                        elif task.kind == "tune":
                            self._after_tune(task, future)
                        else:
                            self._after_evaluation(task, future)
                        self.on_progress(self.progress)
                self._abandon_proposals_if_stopped(in_flight, held)
                self.progress.engine_seconds += time.thread_time() - busy_since
            if self.progress.stop is None:
                self._stop(StopKind.COMPLETED, "iterations")
            self.on_progress(self.progress)
            return self.progress
        finally:
            for pending in self._deferred.values():
                pending.discard()
            self._deferred.clear()
            proposers.shutdown(wait=False, cancel_futures=True)
            evaluators.shutdown(wait=False, cancel_futures=True)
            executor.close()
            if frozen:
                gc.unfreeze()

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

    def _launch(self, iteration: int, pool: ThreadPoolExecutor, retry: int = 0,
                defer: bool = False) -> tuple[Future, Task]:
        """Build the request and send it: by a proposal thread, or (``defer``, a held proposal)
        from this thread, its answer read by ``_settle_deferred``."""
        request, task = self.next_request(iteration, retry)
        if defer and self._begin is not None:
            try:
                pending = self._begin(request)
            except Exception:  # a backend bug: the proposal thread's call reports it
                pending = None
            if pending is not None:
                future: Future = Future()
                self._deferred[future] = pending
                return future, task
        return pool.submit(self._propose, request), task

    def _settle_deferred(self, pool: ThreadPoolExecutor) -> None:
        """The evaluation ahead is in: each request sent from this thread gets its answer, read
        here if the model has begun to answer (the future's callback parks it with the held
        ones), else by a proposal thread, from which it arrives as any answer does."""
        deferred, self._deferred = self._deferred, {}
        for future, pending in deferred.items():
            if not future.set_running_or_notify_cancel():  # abandoned after a model stop
                pending.discard()
            elif pending.answered():
                future.set_result(self._finish(pending))
            else:
                pool.submit(self._finish, pending).add_done_callback(
                    lambda done, answer=future: answer.set_result(done.result()))

    def _finish(self, pending: Any) -> Completion | LLMError:
        """``_propose`` for a request sent by ``begin``."""
        try:
            return pending.result()  # type: ignore[no-any-return]
        except LLMError as err:
            return err
        except Exception as err:  # a backend bug costs one proposal, not the run
            return LLMError(f"{type(err).__name__}: {err}")

    def next_request(self, iteration: int, retry: int = 0) -> tuple[ProposalRequest, Task]:
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
        if not self._offline and seed_far_behind(parent, self.archive.best(), self.problem):
            mode = "rewrite"  # a new island's first program, whole (docs/llm.md, item 7)
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
        return request, Task("propose", iteration, island, parent, mode, retry=retry)

    def _pending(self) -> list[InFlight]:
        """Iterations proposed or being evaluated now (none with one at a time, the default)."""
        return [InFlight(t.iteration, t.island, t.parent.id, t.completion.text if t.completion else None)
                for t in self._in_flight.values() if t.kind in ("propose", "evaluate")]

    def _stop(self, kind: StopKind, message: str) -> None:
        """Record the first stop reason; later ones do not replace it."""
        if self.progress.stop is None:
            self.progress.stop = Stop(kind, message)
            self.progress.stop_reason = message

    def _abandon_proposals_if_stopped(self, in_flight: dict[Future, Task], held: list[tuple[Future, Task]]) -> None:
        """After a model stop, stop waiting for model calls still in flight.

        They would only fail the same way (or hang until their timeout); their
        threads finish in the background and their results are dropped, as are
        answers held for an evaluation ahead (``held``).
        Evaluations in flight are still awaited: their programs are committed.
        """
        stop = self.progress.stop
        if stop is None or stop.kind not in (StopKind.MODEL_CONFIG, StopKind.MODEL_OUTAGE):
            return
        held.clear()
        for future in [f for f, t in in_flight.items() if t.kind == "propose"]:
            future.cancel()
            del in_flight[future]

    def _lookahead(self) -> bool:
        """Build and send the next request while every slot evaluates (the GP plans its
        islands and the tuner its tunings without it). Not with a backend that says
        ``lookahead = False``: ``files:``, where a person or an agent answers in minutes, so the
        look-ahead would save the seconds of one evaluation and show it as not known yet in a
        prompt read long after it was judged; and the replay of a run recorded without it."""
        return (self.settings.lookahead and self._policy is None and self._tuner is None
                and all(getattr(backend, "lookahead", True) for backend in members(self.llm)))

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


def _evaluating(in_flight: dict[Future, Task]) -> bool:
    return any(task.kind == "evaluate" for task in in_flight.values())


def _freeze_start_up() -> bool:
    """Move what exists before the first iteration (the modules, the instances, the archive's
    and the prompts' state: ~45,000 objects on the tiny problem) out of the cyclic collector's
    reach while the loop runs, after one full collection. The loop's collections then walk only
    what the loop made: in 1,000 iterations of the tiny problem (load ~10) they took 15 us per
    iteration against 138, most of it one full collection of ~0.1 s of wall at once. What
    the collector finds decides nothing of a run. Undone when the loop ends (``gc.unfreeze``);
    False, and nothing done, where the collector is off or this process froze objects already."""
    if not gc.isenabled() or gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def _may_look_ahead(in_flight: dict[Future, Task], held: list[tuple[Future, Task]], limit: int) -> bool:
    """One request ahead: only while all ``limit`` iterations in flight are evaluations and
    no answer is already waiting for one of them."""
    return not held and len(in_flight) == limit and all(task.kind == "evaluate" for task in in_flight.values())


def _wait_dispatched(in_flight: dict[Future, Task]) -> None:
    """Let the evaluation thread take its child up (and send it to the sandbox, which it does
    holding the GIL) before this thread builds the next prompt under the GIL; waited for at
    most a tick, never for the evaluation itself. Nothing is archived meanwhile, so the prompt
    is the same whenever it starts."""
    for task in in_flight.values():
        task.dispatched.wait(TICK_S)


def _finished(done: queue.SimpleQueue[Future], in_flight: dict[Future, Task], timeout: float) -> list[Future]:
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


def _outcome_listener(llm: LLM) -> Callable[[int, str, str], None] | None:
    """Tell every backend that wants it what came of a reply (each ignores iterations it did not
    answer, so a ``files:`` member of an ensemble hears only of its own)."""
    listeners = [hook for backend in members(llm)
                 if callable(hook := getattr(backend, "outcome", None))]
    if not listeners:
        return None

    def tell(iteration: int, summary: str, details: str = "") -> None:
        for listener in listeners:
            listener(iteration, summary, details)
    return tell
