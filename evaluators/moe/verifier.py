"""The MoE expert-placement verifier: predictive balance on the next window, and runtime."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.moe.candidate_side import respond
from evolve.evaluators.moe.configs import EpConfig
from evolve.evaluators.moe.feedback import feedback_lines, train_facts
from evolve.evaluators.moe.generator import SPLIT_IDS, Workload, split_workloads
from evolve.evaluators.moe.guard import lpt_balancedness
from evolve.evaluators.moe.harness import (
    Call,
    CallFailed,
    judged_calls_s,
    read_timing,
    run_workload,
    session_call,
)
from evolve.evaluators.moe.options import MoeOptions
from evolve.evaluators.moe.placement import check_placement, loads, parse_placement, shape
from evolve.evaluators.moe.references import (
    compute_reference,
    content_hash,
    ilp_tractable,
    trivial_reference,
)
from evolve.evaluators.moe.scoring import call_penalty, combine, runtime_budget_ms
from evolve.evaluators.moe.traces import load_trace_file
from evolve.evaluators.secret_seeds import load_secret
from evolve.options import read_options
from evolve.references import ReferenceStore, ReferenceTask, StoredReference
from evolve.verifier import Direction, Instance, InstanceResult, Reference, feasible, infeasible


def config_of(instance: Instance) -> EpConfig:
    d = instance.data
    return EpConfig(instance.group, d["experts"], d["replicas"], d["groups"], d["nodes"], d["gpus"])


class MoeVerifier:
    """Expert-parallel load balancing (EPLB): ``rebalance_experts`` places replicas on GPUs.

    Each placement computed from window k is judged on window k+1:
    balancedness = sum over layers of mean GPU load / sum over layers of max
    GPU load (1.0 is perfect).  The trusted harness also times every call from
    outside the candidate's process (``harness.py``).
    """

    # Shown next to the score in eval/baselines tables.
    headline_metrics = ("balancedness", "runtime_ms")
    direction: Direction = "maximize"
    charges_cpu = True  # the runtime term is the candidate process's CPU time (max_processes = 1)

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.options = read_options(MoeOptions, options)
        self.references = ReferenceStore(self.problem_dir, "moe")
        self.secret = load_secret(self.problem_dir, "the moe verifier seeds its built-in workloads")
        self._lpt: dict[str, float] = {}  # LPT's balancedness per workload content, for the guard

    # -- instances (trusted) ---------------------------------------------------------

    def _instance(self, workload: Workload, reference: Reference) -> Instance:
        c = workload.config
        data = {
            "windows": workload.windows, "experts": c.experts, "replicas": c.replicas, "groups": c.groups,
            "nodes": c.nodes, "gpus": c.gpus,
            "warmup": self.options.warmup_calls, "repeats": self.options.timing_repeats,
        }
        return Instance(workload.name, c.name, data, reference)

    def _workloads(self, split: str) -> list[Workload]:
        if split not in SPLIT_IDS:
            raise UserError(f"unknown split {split!r} for moe (expected one of {', '.join(SPLIT_IDS)})")
        return split_workloads(split, self.secret)

    @staticmethod
    def _task(workload: Workload) -> ReferenceTask:
        return ReferenceTask(content_hash(workload.config, workload.windows), workload.name, workload)

    def reference_tasks(self, split: str) -> list[ReferenceTask]:
        """The small deployments (CP-SAT tractable); large ones get the trivial bound."""
        return [self._task(w) for w in self._workloads(split) if ilp_tractable(w.config)]

    def compute_reference(self, task: ReferenceTask, time_limit_s: float | None) -> StoredReference:
        """The CP-SAT oracle, ``time_limit_s`` per (window, layer) (default: option ilp_time_limit_s)."""
        workload: Workload = task.data
        limit = self.options.ilp_time_limit_s if time_limit_s is None else time_limit_s
        return compute_reference(workload.name, workload.config, workload.windows, limit)

    def instances(self, split: str) -> list[Instance]:
        out = []
        for workload in self._workloads(split):
            if ilp_tractable(workload.config):  # never computed silently: minutes of CP-SAT
                reference = self.references.shipped_reference(self._task(workload), split).to_reference()
            else:
                reference = trivial_reference(workload.config, workload.windows)
            out.append(self._instance(workload, reference))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        out = []
        for workload in load_trace_file(Path(path), self.options):
            if self.options.trace_bound == "ilp" and ilp_tractable(workload.config):
                task = self._task(workload)
                record = self.references.cached(task.key)
                if record is None:
                    record = self.compute_reference(task, None)
                    self.references.remember(task.key, record)
                reference = record.to_reference()
            else:
                reference = trivial_reference(workload.config, workload.windows)
            out.append(self._instance(workload, reference))
        return out

    # -- the candidate's calls: answered in the sandbox, timed from outside ----------

    respond = staticmethod(respond)  # runs in the sandbox: one rebalance_experts call per message

    def interact(self, instance: Instance, session: Any) -> dict[str, Any]:
        return self.run(instance, session_call(session))

    def run(self, instance: Instance, call: Call) -> dict[str, Any]:
        """Every call of the protocol through ``call``; the record ``score`` reads."""
        d = instance.data
        args = (d["replicas"], d["groups"], d["nodes"], d["gpus"])
        try:
            return run_workload(call, d["windows"], args, d["warmup"], d["repeats"])
        except CallFailed as err:
            return {"error": f"raised {err}"}

    @staticmethod
    def gp_screen(instances: list[Instance], score: Any) -> Any:
        """The GP's in-process screen of its own rule trees (evolve/gp/screen.py)."""
        from evolve.evaluators.moe.screen import MoeScreen

        return MoeScreen(instances, score)

    # -- score (trusted) ---------------------------------------------------------------

    def score(self, instance: Instance, record: Any) -> InstanceResult:
        windows: np.ndarray = instance.data["windows"]
        config = config_of(instance)
        transitions = windows.shape[0] - 1
        if isinstance(record, dict) and "error" in record:
            return infeasible(instance, str(record["error"]))
        if not isinstance(record, dict) or not isinstance(record.get("placements"), list):
            return infeasible(instance, "harness: no placements in the record")
        placements = record["placements"]
        if len(placements) != transitions:
            return infeasible(instance, f"harness: {len(placements)} placements for {transitions} windows")
        mean_sum = max_sum = slot_mean = slot_max = 0.0
        layer_balance = []
        shapes: list[dict[str, float]] = []
        for k, raw in enumerate(placements):
            if "returned" in raw:
                return infeasible(instance, f"window {k}: shapes: rebalance_experts returned a {raw['returned']}, "
                                            "expected (phy2log, log2phy, logcnt)")
            if "error" in raw:
                return infeasible(instance, f"window {k}: {raw['error']}")
            placement, why = parse_placement(raw, config, windows.shape[1])
            if placement is None or why is not None:
                return infeasible(instance, f"window {k}: {why}")
            why = check_placement(placement, config, windows[k + 1])
            if why is not None:
                return infeasible(instance, f"window {k}: {why}")
            balance = loads(placement, config, windows[k + 1])
            mean_sum += balance.mean_sum
            max_sum += balance.max_sum
            slot_mean += balance.slot_mean_sum
            slot_max += balance.slot_max_sum
            layer_balance.append(balance.layer)
            shapes.append(shape(placement, config, windows[k]))
        timing = read_timing(record)
        per_layer = np.concatenate(layer_balance)
        extra = {"lpt_balancedness": self._lpt_of(config, windows)} if self.options.lpt_guard > 0 else {}
        budget = runtime_budget_ms(windows.shape[1], config.replicas, self.options)
        calls_ms = [1e3 * s for s in judged_calls_s(record, self.options.runtime_clock)]
        if budget is not None:
            extra["runtime_budget_ms"] = budget
            # every judged call against the budget on its own (scoring.call_penalty)
            extra["runtime_call_penalty"] = call_penalty(calls_ms, budget)
        return feasible(
            instance, 1.0 if max_sum <= 0 else mean_sum / max_sum, self.direction,
            balancedness_layer_min=float(per_layer.min()),
            balancedness_layer_mean=float(per_layer.mean()),
            balancedness_slot=1.0 if slot_max <= 0 else slot_mean / slot_max,
            runtime_ms=timing.cpu_ms if self.options.runtime_clock == "cpu" else timing.wall_ms,
            wall_ms=timing.wall_ms,
            cpu_ms=timing.cpu_ms,
            runtime_call_max_ms=max(calls_ms),  # the costliest judged call
            **{key: float(np.mean([s[key] for s in shapes])) for key in shapes[0]},
            **extra,
        )

    def _lpt_of(self, config: EpConfig, windows: np.ndarray) -> float:
        key = content_hash(config, windows)
        if key not in self._lpt:
            self._lpt[key] = lpt_balancedness(config, windows)
        return self._lpt[key]

    def aggregate(self, results: list[InstanceResult]) -> tuple[float | None, dict[str, float]]:
        return combine(results, self.options)

    def prompt_facts(self) -> list[str]:
        """The exact order of calls in a workload (harness.run_workload), from this run's options:
        a clean-room agent writing a stateful balancer had to guess it."""
        warm, repeats = self.options.warmup_calls, self.options.timing_repeats
        return [f"Calls, per workload of W windows: {warm} untimed warm-up call{'s' if warm != 1 else ''} on "
                "made-up loads of window 0's shape; then one call per window 0..W-2 in time order, each "
                f"placement judged on the next window; then {repeats} timing-only call{'s' if repeats != 1 else ''} "
                "on noisy copies of windows already sent (placements discarded). The next workload follows in "
                "the same process. LPT, the bar, is the fixed code with replica_priority = load / count, "
                "item_order = item_load and gpu_cost = gpu_load (ties: the lower index)."]

    def train_facts(self, instances: list[Instance]) -> list[str]:
        """How much the drift costs LPT on the train workloads, and how far shares move (feedback.py)."""
        return train_facts(instances, config_of)

    def feedback_lines(self, results: list[InstanceResult]) -> list[str]:
        """Per deployment: the program against LPT with what the guard took, and the judged calls'
        CPU against the budget (feedback.py)."""
        return feedback_lines(results, self.options)

    def stale_scores(self, metrics: Mapping[str, float]) -> str | None:
        """Why an archived evaluation's score is an older moe score than these options give: each
        term added since leaves a metric that older evaluations lack (``ScoreEras``)."""
        older = []
        if self.options.lpt_guard > 0 and "lpt_shortfall" not in metrics:
            older.append("before the guard against LPT (2026-12-06)")
        if runtime_budget_ms(1, 1, self.options) is not None:
            if "runtime_budget_ms" not in metrics:
                older.append("before the CPU budget per call (2026-12-07), when every program paid "
                             "log2(1 + runtime_ms / 10) points for its runtime")
            elif "runtime_call_penalty" not in metrics:
                older.append("before each judged call was charged against the budget (2026-12-07), "
                             "when one costly call among cheap ones could pay nothing")
        return " and ".join(older) if older else None

    def picture(self, instances: list[Instance], results: list[InstanceResult], solutions: list[Any],
                path: Path) -> None:
        from evolve.evaluators.moe.picture import draw

        try:
            draw(instances, results, solutions, Path(path), config_of)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
