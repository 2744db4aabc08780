"""The SMTT verifier: instances with references, sandboxed solve, trusted scoring."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from evolve.errors import UserError
from evolve.evaluators.secret_seeds import load_secret
from evolve.evaluators.smtt.audit import SUBSET_SESSIONS, Replay
from evolve.evaluators.smtt.candidate_side import (
    respond_rule,
    respond_schedule,
    solve_rule,
    solve_schedule,
)
from evolve.evaluators.smtt.claims import refuted_summary, stated_reference, with_file_bound
from evolve.evaluators.smtt.generator import (
    RULE_TRAIN_REPLICATES,
    SPLIT_IDS,
    VALIDATION_SPLITS,
    split_instances,
)
from evolve.evaluators.smtt.instance_file import parse_instance_file
from evolve.evaluators.smtt.objective import array_shape_violation, content_hash, sequence_violation
from evolve.evaluators.smtt.references import Budget, attains, compute_reference, refresh_bound
from evolve.options import VerifierOptions, read_options
from evolve.references import ReferenceStore, ReferenceTask, StoredReference
from evolve.verifier import (
    CLOCK_ADVICE,
    REPLY_NOTE_BYTES,
    CandidateError,
    Direction,
    Instance,
    InstanceResult,
    allowance_text,
    feasible,
    infeasible,
    over_budget,
)

log = logging.getLogger(__name__)

# The candidate's CPU budget per instance (both tracks), stated in problem.toml's contract.
CPU_BUDGET_BASE_S = 0.1
CPU_BUDGET_PER_JOB_S = 0.002
BUDGET_TEXT = "0.1 s + 2 ms per job"
# What a reply may hold: a sequence of n job indices (8 bytes each as an array, at most ~21 as
# JSON) and a short note.  Every byte is read and parsed here: a reply padded with whitespace to
# the sandbox's 64 MiB costs ~0.24 s of the controller's CPU per instance, some 156 s on smtt_rule's
# train (docs/sandbox.md, sixth red team).
REPLY_BYTES_PER_JOB = 32


# A metric every smtt_rule evaluation made since the subset check carries: its era.  1.0 while the
# check asked only decisions with 8 or more jobs left (2026-12-07, ed70f9b to ca3a14a), 2.0 since
# it asks those with 4 or more (audit.SUBSET_MIN_JOBS: thirteenth red team, docs/sandbox.md).
INDEX_RULE_MARK = "index_rule_audit"
INDEX_RULE_ERA = 2.0


def cpu_budget_s(n: int) -> float:
    """CPU seconds a candidate may spend on an instance of n jobs (n = 500: 1.1 s)."""
    return CPU_BUDGET_BASE_S + CPU_BUDGET_PER_JOB_S * n


class SmttOptions(VerifierOptions):
    """Budget of the references computed for instances of users' files (and the default of
    ``evolve references smtt``); the shipped ones state their own."""

    reference_time_limit_s: float = Field(Budget.time_limit_s, gt=0, lt=1e6)  # CPU seconds per instance, n > 20
    reference_workers: int = Field(Budget.workers, ge=1, le=256)  # CP-SAT worker threads


class SmttVerifier:
    """Single-machine total tardiness (1||sum T_j): minimise total tardiness.

    A solution is a processing order, a list with every job index 0..n-1
    exactly once; jobs run back to back from time 0.
    """

    direction: Direction = "minimize"
    train: dict[int, int] | None = None  # the train split's grid repeats per size (None: generator's)
    validation = False  # whether the generator's validation splits ("valid", "fit") are offered
    # Every split but test draws from data/seeds.json (generator.py): smtt's too, since a program
    # carrying the public generator banked the CPU of cheap instances for the costly ones to come
    # (docs/smtt.md, "Seeds"). smtt's seeds file holds smtt_rule's entropy, so its quick and train
    # are the first replicates of smtt_rule's and share their references (a test checks).
    secret_seeded = True

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        opts = read_options(SmttOptions, options)
        self.budget = Budget(time_limit_s=opts.reference_time_limit_s, workers=opts.reference_workers)
        self.references = ReferenceStore(self.problem_dir, "smtt")

    # -- instances and their references (trusted) ----------------------------------------

    def reference_tasks(self, split: str) -> list[ReferenceTask]:
        splits = [s for s in SPLIT_IDS if s not in VALIDATION_SPLITS or self.validation]
        if split not in splits:
            raise UserError(f"unknown split {split!r} for smtt (expected one of {', '.join(splits)})")
        secret = self.secret if self.secret_seeded and split != "test" else None
        return [ReferenceTask(content_hash(g.p, g.d), g.name, {"p": g.p, "d": g.d, "group": g.group})
                for g in split_instances(split, self.train, secret)]

    @cached_property
    def secret(self) -> bytes:
        """The seed of the splits the search sees (read when they are first asked for: the test
        split and users' files need none)."""
        return load_secret(self.problem_dir, "the smtt verifiers seed their quick, train, valid and fit instances")

    @cached_property
    def _secret_keys(self) -> frozenset[str]:
        """The content keys of the secret-seeded splits' instances (none without a seeds file:
        then no instance of them can have been made either)."""
        splits = [s for s in SPLIT_IDS if s != "test" and (s not in VALIDATION_SPLITS or self.validation)]
        try:
            return frozenset(t.key for s in splits for t in self.reference_tasks(s)) if self.secret_seeded \
                else frozenset()
        except UserError:
            return frozenset()

    def shares_session(self, instances: list[Instance]) -> bool:
        """(trusted, ``Evaluator``) Whether one sandbox session may serve all of ``instances``:
        only when every one is of the secret-seeded splits. A program may carry a public set (the
        test split, a published file) and know its instances before it is asked; in one session
        a cheap instance's CPU would then work for the costly ones to come (docs/smtt.md,
        "Seeds"), so there every instance gets a session, a fresh process, of its own."""
        secret = self._secret_keys
        return all(content_hash(i.data["p"], i.data["d"]) in secret for i in instances)

    def compute_reference(self, task: ReferenceTask, time_limit_s: float | None) -> StoredReference:
        """Subset DP up to 20 jobs, else local search + CP-SAT within ``time_limit_s`` CPU
        seconds (default: option reference_time_limit_s); references.py says how."""
        budget = self.budget if time_limit_s is None else replace(self.budget, time_limit_s=time_limit_s)
        return compute_reference(task.name, task.data["p"], task.data["d"], budget)

    @staticmethod
    def refresh_reference(task: ReferenceTask, record: StoredReference) -> StoredReference:
        return replace(refresh_bound(record, task.data["p"], task.data["d"]), name=task.name)

    def instances(self, split: str) -> list[Instance]:
        out = []
        for task in self.reference_tasks(split):
            p, d = task.data["p"], task.data["d"]
            record = self.references.shipped_reference(task, split, lambda r: attains(r, p, d))  # noqa: B023
            out.append(Instance(task.name, task.data["group"], {"p": p, "d": d}, record.to_reference()))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        """Instances of a user file; a stated reference is checked, else ours is used or computed."""
        path = Path(path)
        specs = parse_instance_file(path)
        out, refuted = [], []
        keys = [content_hash(spec.p, spec.d) for spec in specs]
        knowns = [self.references.known(key, lambda r, p=spec.p, d=spec.d: attains(r, p, d))
                  for spec, key in zip(specs, keys, strict=True)]
        missing = sum(1 for spec, known in zip(specs, knowns, strict=True) if spec.claim is None and known is None)
        started = time.monotonic()
        if missing:  # seconds to minutes, before any program runs: said on stderr, piped or not
            log.warning("%s: computing the references of %d of %d instances (none stated, shipped or cached; "
                        "up to %g CPU s each for n > 20)", path, missing, len(specs), self.budget.time_limit_s)
        for spec, key, known in zip(specs, keys, knowns, strict=True):
            p, d = spec.p, spec.d
            if spec.claim is not None:
                reference, beaten = stated_reference(spec, known)
                refuted += [beaten] if beaten else []
            else:
                if known is None:  # (a same-content instance earlier in the file may have cached it)
                    known = self.references.known(key, lambda r: attains(r, p, d))  # noqa: B023 - called at once
                if known is None:
                    known = compute_reference(spec.name, p, d, self.budget)
                    self.references.remember(key, known)
                reference = with_file_bound(known.to_reference(), spec)
            out.append(Instance(spec.name, f"n={len(p)}", {"p": p, "d": d}, reference))
        if missing:
            log.warning("%s: %d references computed in %.1f s and cached (the next use of the file reads them)",
                        path, missing, time.monotonic() - started)
        if refuted:
            claimed = sum(1 for s in specs if s.claim == "optimum")
            log.warning(refuted_summary(str(path), refuted, claimed))
        return out

    # -- solve (inside the sandbox): evaluators/smtt/candidate_side.py --------------------------

    solve = staticmethod(solve_schedule)
    respond = staticmethod(respond_schedule)

    # -- interact (trusted): one session call per instance, timed by the kernel ----------

    time_budget_text = BUDGET_TEXT  # the budget's rule, as prompts state it
    # When the clock starts, against the order in which the fixed schedule() calls the evolving
    # code: improve() is entered only after the whole dispatch, so "measure from the function's
    # entry" did not say where an improve() search should measure from (an agent playing the
    # model found the answer by reading the fixed code and relied on it, undocumented).
    time_budget_note = (
        f"A search should stop on {CLOCK_ADVICE}, with a margin, never on the wall clock, so that its "
        "result does not depend on how busy the machine is. The call order "
        "per instance is a contract: the verifier calls schedule(p, d) once, just after it sends the "
        "instance; schedule() (fixed code) calls priority() once per job in dispatch order, the first "
        "time with t = 0 and jobs_left = n, then improve(sequence, p, d) once, and returns what "
        "improve() returns. So the instance's clock starts just before its first priority() call, and "
        "improve() is entered only after all n of them: a search in improve() should measure from the "
        "first priority() call (jobs_left == n; keep time.thread_time() there in a module variable), "
        "or count the dispatch's time as spent. Nothing else marks the start, and nothing is passed in.")

    @staticmethod
    def time_budget_s(instance: Instance) -> float:
        """CPU seconds the candidate may spend on ``instance`` (``interact`` enforces it;
        prompts show each program's time per group against it)."""
        return cpu_budget_s(len(instance.data["p"]))

    @staticmethod
    def interact(instance: Instance, session: Any) -> Any:
        """The candidate's answer for one instance, within its CPU budget.

        The payload is the instance's p and d only (never its reference); the
        reply's CPU time is the kernel's count for the candidate's process.
        """
        p, d = instance.data["p"], instance.data["d"]
        reply = session.call({"p": p, "d": d}, reply_limit=REPLY_NOTE_BYTES + REPLY_BYTES_PER_JOB * len(p))
        if reply.error is not None:  # the candidate raised, or answered with something unsendable
            raise CandidateError(reply.error.replace("reply is ", "solution is ", 1))
        allowed = cpu_budget_s(len(p))
        if over_budget(reply.cpu_seconds, allowed):
            raise CandidateError(f"CPU budget exceeded: {reply.cpu_seconds:.3f} s of CPU for n = {len(p)}, "
                                 f"{allowed:.3f} s allowed ({BUDGET_TEXT}; {allowance_text(allowed)})")
        # A solution is plain data (JSON for --solutions-out, lists for pictures), made only of a
        # sequence of the right length: a reply may hold 8 million numbers (max_output_mb), and
        # a list of them cost the controller ~300 MiB and a second before score() saw the length.
        value = reply.value
        if isinstance(value, np.ndarray) and array_shape_violation(value, len(p)) is None:
            return value.tolist()
        return value  # an array of the wrong shape stays one: score() names it (infeasible)

    @staticmethod
    def time_weight(instance: Instance) -> float:
        """Instance time limits (wall) an instance gets: its CPU budget, in units of n = 500's.

        The shipped sizes get one each; a 2,000-job instance of a user file gets
        four, so its 4.1 s of budget is not cut short by the wall clock.
        """
        return max(1.0, cpu_budget_s(len(instance.data["p"])) / cpu_budget_s(500))

    @staticmethod
    def gp_screen(instances: list[Instance], score: Any) -> Any:
        """The GP's in-process screen of its own priority trees (evolve/gp/screen.py)."""
        from evolve.evaluators.smtt.screen import screen

        return screen(instances)

    # -- score (trusted) ---------------------------------------------------------------

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        p = instance.data["p"]
        d = instance.data["d"]
        reason, seq = sequence_violation(solution, len(p))
        if reason is not None or seq is None:
            return infeasible(instance, reason or "invalid sequence")
        completion = np.cumsum(p[seq])
        tardiness = np.maximum(completion - d[seq], 0)
        return feasible(instance, float(tardiness.sum()), self.direction,
                        tardy_jobs=float(np.count_nonzero(tardiness)))


class SmttRuleVerifier(SmttVerifier):
    """``smtt_rule``: the candidate writes only the priority; the verifier dispatches.

    Same instances (its train adds some at n >= 100), references and trusted score as
    ``smtt``; in the sandbox
    the forward dispatcher (``dispatch.py``) asks the candidate's ``priority``
    for every decision, so its gaps compare with EDD, MDD and MDDC.
    """

    solve = staticmethod(solve_rule)
    respond = staticmethod(respond_rule)
    train = RULE_TRAIN_REPLICATES  # more instances at n >= 100 (generator.py says why)
    validation = True  # a run may choose its reported best on it (select_on, evolve/selection.py)
    time_budget_note = ("The verifier's dispatcher runs in that process and counts too: the rule is "
                        "called once per job, so the budget leaves it about 2 ms per call.")

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(problem_dir, options)
        self.replay = Replay(cpu_budget_s)

    reaudits = SUBSET_SESSIONS - 1  # more fresh sessions, one subset check per instance each
    index_rules = True  # a GP expression with np.max/min/mean of p or d is audited too

    def audit(self, instances: list[Instance], solutions: list[Any], session: Any) -> list[str | None]:
        """(trusted) A few decisions of each instance asked again in a fresh session: a rule
        that kept state or replaced the dispatcher fails here, and so does one whose choice
        changes when jobs it was not choosing are removed (``audit.py``)."""
        return self.replay.audit(instances, solutions, session)

    def reaudit(self, instances: list[Instance], solutions: list[Any], session: Any) -> list[str | None]:
        """(trusted) One more subset check per instance, in a fresh session of its own."""
        return self.replay.subsets(instances, solutions, session)

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        """As smtt's, with a mark that the audit refusing look-aheads (the subset check) was in
        force: scores archived before it lack the mark (``stale_scores``)."""
        result = super().score(instance, solution)
        if result.feasible:
            result.extra[INDEX_RULE_MARK] = INDEX_RULE_ERA
        return result

    @staticmethod
    def stale_scores(metrics: Mapping[str, float]) -> str | None:
        """Why an archived evaluation's score may not hold under today's audit (``ScoreEras``)."""
        era = metrics.get(INDEX_RULE_MARK)
        if era is None:
            return ("before the audit admitted only index rules (2026-12-07), when a look-ahead over the other "
                    "jobs or a rule reducing p or d (np.mean(p)) kept its score; such a program fails now")
        if era < INDEX_RULE_ERA:
            return ("while the audit's subset check asked only decisions with 8 or more jobs left (2026-12-07), "
                    "when a rule ordering the last seven jobs by trying every order kept its score; such a "
                    "program fails now")
        return None
