"""Several replicas behind a router: the evolved program is the router.

Each replica is the engine of ``engine.py`` with vLLM's default FCFS order;
replicas may differ (``replica_profiles``: e.g. H100s next to A100s).  When a
request arrives at time t, every replica first runs the steps that
start before t; the router then sees each replica's state and returns one
score per replica; the request goes to the lowest (ties: lowest index).  The
solution is the replica of every request; the trusted side re-simulates the
replicas with that routing (the replicas' own scheduling is deterministic)
and computes every metric itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.serving import judge
from evolve.evaluators.serving.engine import Engine, EngineConfig, EngineError, Trace
from evolve.evaluators.serving.metrics import (
    RequestTable,
    engine_stats,
    isolated_latency,
    request_table,
)
from evolve.evaluators.serving.options import parse_options
from evolve.evaluators.serving.picture import draw_cdfs
from evolve.evaluators.serving.policy import PolicyDecider, fcfs_priority
from evolve.evaluators.serving.replay import SolutionError, reported
from evolve.evaluators.serving.verifier import STEP_LIMIT_FACTOR, engine_for, trace_from_csv
from evolve.evaluators.serving.workload import (
    SPLITS,
    WorkloadSpec,
    generate,
    nominal_capacity,
    nominal_means,
)
from evolve.verifier import Direction, Instance, InstanceResult, infeasible

Chooser = Callable[[list[Engine], int], int]
ROUTER_FEATURES = ("now", "prompt_len", "predicted_len", "arrival_index", "outstanding", "waiting",
                   "running", "free_blocks", "total_blocks", "queued_tokens", "predicted_work",
                   "step_time", "prefill_time", "decode_time")


def _advance(engine: Engine, until: float, local: PolicyDecider, max_steps: int) -> None:
    """Run the steps that start before ``until`` (all remaining ones for until = inf)."""
    while not engine.idle and engine.now < until:
        if engine.steps >= max_steps:
            raise EngineError(f"a replica passed the step limit of {max_steps} steps; a request never finished")
        engine.step(local)


def run_router(cfgs: list[EngineConfig], trace: Trace, choose: Chooser,
               max_steps: int) -> tuple[list[Engine], np.ndarray]:
    """Simulate one replica per config with routing ``choose``; returns them and the route."""
    engines = [Engine(cfg, trace) for cfg in cfgs]
    locals_ = [PolicyDecider(fcfs_priority, trace.predicted) for _ in cfgs]
    route = np.empty(len(trace), np.int64)
    for i, t in enumerate(trace.arrival.tolist()):
        for engine, local in zip(engines, locals_, strict=True):
            _advance(engine, t, local, max_steps)
        r = choose(engines, i)
        route[i] = r
        engine = engines[r]
        if engine.idle:
            engine.now = max(engine.now, t)
        engine.receive(np.array([i], np.int64))
    for engine, local in zip(engines, locals_, strict=True):
        _advance(engine, float("inf"), local, max_steps)
    return engines, route


def combined_table(trace: Trace, engines: list[Engine], route: np.ndarray) -> RequestTable:
    """Per-request latencies; slowdown is relative to the request alone on the fastest replica."""
    first = np.empty(len(trace))
    finish = np.empty(len(trace))
    for r, engine in enumerate(engines):
        mine = route == r
        first[mine], finish[mine] = engine.first_token[mine], engine.finish[mine]
    table = request_table(engines[0].cfg, trace, first, finish)
    alone = np.min([isolated_latency(e.cfg, trace.prompt, trace.output) for e in engines], axis=0)
    return RequestTable(table.ttft, table.tpot, table.e2e, table.e2e / alone)


def replica_features(engines: list[Engine], predicted: np.ndarray) -> dict[str, np.ndarray]:
    n = len(engines)
    cols = {k: np.zeros(n) for k in ("outstanding", "waiting", "running", "free_blocks", "total_blocks",
                                     "queued_tokens", "predicted_work", "step_time", "prefill_time",
                                     "decode_time")}
    for r, e in enumerate(engines):
        cols["step_time"][r], cols["prefill_time"][r], cols["decode_time"][r] = e.cfg.b0, e.cfg.b1, e.cfg.b2
        w = e.waiting
        cols["waiting"][r], cols["running"][r] = w.size, e.running.size
        cols["free_blocks"][r], cols["total_blocks"][r] = e.free, e.cfg.kv_blocks
        cols["queued_tokens"][r] = float((e.prompt[w] + e.generated[w]).sum()
                                         + (e.r_prompt + e.r_generated - e.r_computed).sum())
        cols["predicted_work"][r] = float(np.maximum(predicted[w] - e.generated[w], 0).sum()
                                          + np.maximum(predicted[e.running] - e.r_generated, 0).sum())
    cols["outstanding"] = cols["waiting"] + cols["running"]
    return cols


def policy_chooser(fn: Callable[..., Any], trace: Trace) -> Chooser:
    def choose(engines: list[Engine], i: int) -> int:
        scores = np.asarray(fn(now=float(trace.arrival[i]), prompt_len=float(trace.prompt[i]),
                               predicted_len=float(trace.predicted[i]), arrival_index=float(i),
                               **replica_features(engines, trace.predicted)), dtype=float)
        if scores.shape != (len(engines),):
            raise ValueError(f"request {i}: the router returned shape {scores.shape}; expected "
                             f"({len(engines)},), one score per replica")
        if not np.isfinite(scores).all():
            raise ValueError(f"request {i}: the router returned NaN or infinity")
        return int(np.argmin(scores))

    return choose


def round_robin(engines: list[Engine], i: int) -> int:
    return i % len(engines)


def simulate_router(fn: Callable[..., Any], data: dict[str, Any]) -> dict[str, Any]:
    """Inside the sandbox: route the whole trace with ``fn``."""
    trace = Trace.from_data(data["trace"])
    engines, route = run_router(configs(data), trace, policy_chooser(fn, trace), int(data["max_steps"]))
    table = combined_table(trace, engines, route)
    return {"route": route.tolist(), "ttft": np.round(table.ttft, 6).tolist(),
            "e2e": np.round(table.e2e, 6).tolist()}


def configs(data: dict[str, Any]) -> list[EngineConfig]:
    return [EngineConfig.from_data(d) for d in data["engines"]]


def recorded_route(solution: Any, n: int, replicas: int) -> np.ndarray:
    if not isinstance(solution, dict):
        raise SolutionError(f"the solution must be an object, got {type(solution).__name__}")
    route = solution.get("route")
    if not isinstance(route, list) or len(route) != n:
        raise SolutionError(f"'route' must be a list of {n} replica indices")
    for i, r in enumerate(route):
        if type(r) is not int or not 0 <= r < replicas:
            raise SolutionError(f"request {i}: replica {r!r} does not exist (expected 0..{replicas - 1})")
    return np.asarray(route, dtype=np.int64)


class RouterVerifier:
    """Routing over several replicas (see docs/serving.md); reference: round robin."""

    direction: Direction = "minimize"

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.opts = parse_options(options, self.problem_dir, router=True)

    def instances(self, split: str) -> list[Instance]:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for serving_router (expected one of {', '.join(SPLITS)})")
        out = []
        engines = self.opts.replica_engines
        for spec in SPLITS[split]:
            # the same mixes and load levels, relative to the whole cluster's nominal capacity
            capacity = sum(nominal_capacity(cfg, *nominal_means(spec.kind)) for cfg in engines)
            scaled = WorkloadSpec(spec.kind, spec.arrivals, spec.load, spec.requests * 2, spec.seed + 1000, spec.cv)
            trace = generate(scaled, engines[0], self.opts.predictor_noise, capacity)
            name = f"{spec.kind}-{spec.arrivals}-load{spec.load:.2f}-r{len(engines)}-n{scaled.requests}-s{scaled.seed}"
            out.append(self.make_instance(name, spec.kind, trace, spec.name))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        path = Path(path)
        if path.suffix.lower() != ".csv":
            raise UserError(f"{path}: expected a .csv trace")
        return [self.make_instance(path.stem, "trace", trace_from_csv(path, self.opts), str(path))]

    def make_instance(self, name: str, group: str, trace: Trace, where: str) -> Instance:
        cfgs = [engine_for(replace(self.opts, engine=cfg), trace, where) for cfg in self.opts.replica_engines]
        engines, route = run_router(cfgs, trace, round_robin, 10**9)
        figures = judge.reference_figures(combined_table(trace, engines, route), trace.arrival,
                                          trace.output, self.opts.slo, engine_stats(engines))
        steps = max(e.steps for e in engines)
        data = {"trace": trace.to_data(), "engines": [cfg.to_data() for cfg in cfgs],
                "replica_names": self.opts.replica_names,
                "max_steps": STEP_LIMIT_FACTOR * steps + 1000, "reference": figures}
        return Instance(name, group, data, judge.make_reference(figures, "round robin"))

    @staticmethod
    def solve(heuristic: Callable[..., Any], instance: Instance) -> Any:
        return simulate_router(heuristic, instance.data)

    def replay(self, instance: Instance, solution: Any) -> tuple[list[Engine], RequestTable]:
        data = instance.data
        trace = Trace.from_data(data["trace"])
        cfgs = configs(data)
        route = recorded_route(solution, len(trace), len(cfgs))
        engines, _ = run_router(cfgs, trace, lambda _, i: int(route[i]), int(data["max_steps"]))
        return engines, combined_table(trace, engines, route)

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        try:
            engines, table = self.replay(instance, solution)
            wrong = judge.check_reported(solution, table, reported)
        except (SolutionError, EngineError) as err:
            return infeasible(instance, str(err))
        if wrong:
            return infeasible(instance, wrong)
        return judge.verdict(instance, table, engine_stats(engines), self.opts.slo, False)

    def aggregate(self, results: list[InstanceResult]) -> tuple[float | None, dict[str, float]]:
        return judge.aggregate(results, self.opts.latency_weight)

    def picture(self, instances: list[Instance], results: list[InstanceResult],
                solutions: list[Any], path: Path) -> None:
        panels = []
        for instance, result, solution in zip(instances, results, solutions, strict=False):
            if not result.feasible:
                continue
            data = instance.data
            trace = Trace.from_data(data["trace"])
            _, mine = self.replay(instance, solution)
            engines, route = run_router(configs(data), trace, round_robin, 10**9)
            panels.append((instance.name, mine, combined_table(trace, engines, route),
                           result.extra.get("goodput_pct", float("nan")), data["reference"]["goodput_pct"]))
        draw_cdfs(Path(path), panels, "router", "round robin", self.opts.slo)
