"""Several replicas behind a router: the evolved program is the router.

Each replica is the engine of ``engine.py`` with vLLM's default FCFS order;
replicas may differ (``replica_profiles``: e.g. H100s next to A100s).  When a
request arrives at time t, every replica first runs the steps that start
before t; the router then sees each replica's state (``replica_features``) and
returns one score per replica; the request goes to the lowest (ties: lowest
index).  As for one replica, the replicas and the trace stay in the trusted
process: ``interact`` asks the sandboxed router once per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.serving import facts, judge
from evolve.evaluators.serving.candidate_side import ROUTER_ARRAYS, ROUTER_SCALARS, respond_route
from evolve.evaluators.serving.engine import Engine, EngineError
from evolve.evaluators.serving.load import offered_load
from evolve.evaluators.serving.metrics import (
    RequestTable,
    engine_stats,
    isolated_latency,
    kv_bound_pct,
    request_table,
)
from evolve.evaluators.serving.options import parse_options
from evolve.evaluators.serving.picture import draw_cdfs
from evolve.evaluators.serving.policy import Observation, PolicyDecider, PolicyError, fcfs_ask
from evolve.evaluators.serving.records import EngineConfig, Trace
from evolve.evaluators.serving.reference import ReferenceRun, cached, trace_key
from evolve.evaluators.serving.secret import load_secret
from evolve.evaluators.serving.session import Session, session_decide
from evolve.evaluators.serving.stretch import decode_stretch
from evolve.evaluators.serving.verifier import (
    NOMINAL_REQUESTS,
    STEP_LIMIT_FACTOR,
    engine_for,
    say_load,
    trace_from_csv,
)
from evolve.evaluators.serving.workload import SPLITS, WorkloadSpec, generate, nominal_capacity
from evolve.verifier import Direction, Instance, InstanceResult, infeasible

Chooser = Callable[[list[Engine], int], int]
ROUTER_FEATURES = ROUTER_SCALARS + ROUTER_ARRAYS  # the router's keyword arguments


def _advance(engine: Engine, until: float, local: PolicyDecider, max_steps: int, event_driven: bool) -> None:
    """Run the steps that start before ``until`` (all remaining ones for until = inf)."""
    while not engine.idle and engine.now < until:
        if engine.steps >= max_steps:
            raise EngineError(f"a replica passed the step limit of {max_steps} steps; a request never finished")
        if event_driven and decode_stretch(engine, until, max_steps):
            continue
        engine.step(local)


def run_router(cfgs: list[EngineConfig], trace: Trace, choose: Chooser, max_steps: int,
               event_driven: bool = True) -> tuple[list[Engine], np.ndarray]:
    """Simulate one replica per config with routing ``choose``; returns them and the route."""
    engines = [Engine(cfg, trace) for cfg in cfgs]
    locals_ = [PolicyDecider(fcfs_ask) for _ in cfgs]
    route = np.empty(len(trace), np.int64)
    for i, t in enumerate(trace.arrival.tolist()):
        for engine, local in zip(engines, locals_, strict=True):
            _advance(engine, t, local, max_steps, event_driven)
        r = choose(engines, i)
        route[i] = r
        engine = engines[r]
        if engine.idle:
            engine.now = max(engine.now, t)
        engine.receive(np.array([i], np.int64))
    for engine, local in zip(engines, locals_, strict=True):
        _advance(engine, float("inf"), local, max_steps, event_driven)
    return engines, route


def fleet_table(trace: Trace, cfgs: list[EngineConfig], first: np.ndarray, finish: np.ndarray) -> RequestTable:
    """Per-request latencies; slowdown is relative to the request alone on the fastest replica."""
    table = request_table(cfgs[0], trace, first, finish)
    alone = np.min([isolated_latency(cfg, trace.prompt, trace.output) for cfg in cfgs], axis=0)
    return RequestTable(table.ttft, table.tpot, table.e2e, table.e2e / alone)


def replica_times(engines: list[Engine], route: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    first, finish = np.empty(n), np.empty(n)
    for r, engine in enumerate(engines):
        mine = route == r
        first[mine], finish[mine] = engine.first_token[mine], engine.finish[mine]
    return first, finish


def replica_features(engines: list[Engine], predicted: np.ndarray) -> np.ndarray:
    """One row per feature of ``ROUTER_ARRAYS``, one column per replica."""
    cols = np.zeros((len(ROUTER_ARRAYS), len(engines)))
    row = {name: k for k, name in enumerate(ROUTER_ARRAYS)}
    for r, e in enumerate(engines):
        w = e.waiting
        cols[row["step_time"], r], cols[row["prefill_time"], r], cols[row["decode_time"], r] = (
            e.cfg.b0, e.cfg.b1, e.cfg.b2)
        cols[row["waiting"], r], cols[row["running"], r] = w.size, e.running.size
        cols[row["outstanding"], r] = w.size + e.running.size
        cols[row["free_blocks"], r], cols[row["total_blocks"], r] = e.free, e.cfg.kv_blocks
        cols[row["queued_tokens"], r] = float((e.prompt[w] + e.generated[w]).sum()
                                              + (e.r_prompt + e.r_generated - e.r_computed).sum())
        cols[row["predicted_work"], r] = float(np.maximum(predicted[w] - e.generated[w], 0).sum()
                                               + np.maximum(predicted[e.running] - e.r_generated, 0).sum())
    return cols


def router_observation(engines: list[Engine], trace: Trace, i: int) -> Observation:
    """What the router knows when request ``i`` arrives (its own lengths are the prompt and the prediction)."""
    request = (float(trace.arrival[i]), float(trace.prompt[i]), float(trace.predicted[i]), float(i))
    return replica_features(engines, trace.predicted), request


def policy_chooser(decide: Callable[[Observation], Any], trace: Trace) -> tuple[Chooser, list[int]]:
    """A chooser asking ``decide`` once per request; the list counts the calls."""
    calls = [0]

    def choose(engines: list[Engine], i: int) -> int:
        calls[0] += 1
        try:
            value = decide(router_observation(engines, trace, i))
        except PolicyError as err:
            raise PolicyError(f"{err}, at request {i}") from None
        try:
            scores = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise PolicyError(f"request {i}: the router returned {type(value).__name__}, not numbers") from None
        if scores.shape != (len(engines),):
            raise PolicyError(f"request {i}: the router returned shape {scores.shape}; expected "
                              f"({len(engines)},), one score per replica")
        if not np.isfinite(scores).all():
            raise PolicyError(f"request {i}: the router returned NaN or infinity")
        return int(np.argmin(scores))

    return choose, calls


def round_robin(engines: list[Engine], i: int) -> int:
    return i % len(engines)


def configs(data: dict[str, Any]) -> list[EngineConfig]:
    return [EngineConfig.from_data(d) for d in data["engines"]]


class RouterVerifier:
    """Routing over several replicas (see docs/serving.md); reference: round robin."""

    direction: Direction = "minimize"
    respond = staticmethod(respond_route)  # the sandbox side: one call per request

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.opts = parse_options(options, self.problem_dir, router=True)
        self.secret = load_secret(self.problem_dir)  # trusted: the seeds of every trace

    def instances(self, split: str) -> list[Instance]:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for serving_router (expected one of {', '.join(SPLITS)})")
        out = []
        engines = self.opts.replica_engines
        for spec in SPLITS[split]:
            # the same mixes and load levels, relative to the whole cluster's nominal capacity
            fleet = sum(nominal_capacity(cfg, spec.kind) for cfg in engines)
            scaled = WorkloadSpec(spec.kind, spec.arrivals, spec.load, spec.requests * 2, spec.seed + 1000, spec.cv)
            trace = generate(scaled, engines[0], self.opts.predictor_noise, self.secret, fleet)
            name = f"{spec.kind}-{spec.arrivals}-load{spec.load:.2f}-r{len(engines)}-n{scaled.requests}-s{scaled.seed}"
            out.append(self.make_instance(name, spec.kind, trace, spec.name))
        return out

    def fleet_capacity(self, trace: Trace, where: str) -> float:
        return sum(offered_load(engine_for(replace(self.opts, engine=cfg), trace, where), trace).capacity
                   for cfg in self.opts.replica_engines)

    def load_instances(self, path: Path) -> list[Instance]:
        path = Path(path)
        if path.suffix.lower() != ".csv":
            raise UserError(f"{path}: expected a .csv trace")
        trace = trace_from_csv(path, self.opts, lambda t: self.fleet_capacity(t, str(path)), self.secret)
        instance = self.make_instance(path.stem, "trace", trace, str(path))
        report = offered_load(self.opts.engine, trace)
        fleet = self.fleet_capacity(trace, str(path))
        line = replace(report, capacity=fleet, load=report.rate / fleet).describe("fleet")
        # Round robin has a choice at every request, so the tie test is the load alone.
        say_load(str(path), line, report.rate / fleet, len(trace), len(trace), "target_load", self.opts.target_load)
        return [instance]

    def make_instance(self, name: str, group: str, trace: Trace, where: str) -> Instance:
        cfgs = [engine_for(replace(self.opts, engine=cfg), trace, where) for cfg in self.opts.replica_engines]
        ref = self.reference(cfgs, trace)
        data = {"trace": trace.to_data(), "engines": [cfg.to_data() for cfg in cfgs],
                "replica_names": self.opts.replica_names,
                "max_steps": STEP_LIMIT_FACTOR * ref.steps + 1000, "reference": ref.figures}
        return Instance(name, group, data, judge.make_reference(ref.figures, "round robin"))

    def reference(self, cfgs: list[EngineConfig], trace: Trace) -> ReferenceRun:
        """Round robin on this trace and fleet (cached)."""

        def compute() -> ReferenceRun:
            engines, route = run_router(cfgs, trace, round_robin, 10**9)
            first, finish = replica_times(engines, route, len(trace))
            figures = judge.reference_figures(fleet_table(trace, cfgs, first, finish), trace.arrival,
                                              trace.output, self.opts.slo, engine_stats(engines))
            return ReferenceRun(figures, first, finish, max(e.steps for e in engines), len(trace))

        return cached(trace_key(trace, cfgs, ("round robin", self.opts.slo)), compute)

    def prompt_facts(self) -> list[str]:
        """The fleet, SLOs and predictor of this run, as a model's prompt states them."""
        return [f"Fleet of this run, on every split: {self.opts.describe(router=True)}; SLOs: time to "
                f"first token <= {self.opts.slo.ttft_s:g} s, time per output token <= "
                f"{self.opts.slo.tpot_s:g} s; predicted_len has log-normal noise of sigma "
                f"{self.opts.predictor_noise:g}, in whole tokens."]

    def train_facts(self, instances: list[Instance]) -> list[str]:
        """After-the-fact figures of the train traces for the system prompt (facts.py)."""
        return facts.train_facts(instances, "round robin")

    def feedback_lines(self, results: list[InstanceResult]) -> list[str]:
        """A program's goodput and starved shares per trace, and how often KV memory
        bound in its runs (facts.py)."""
        return facts.feedback_lines(results)

    def time_weight(self, instance: Instance) -> float:
        """Instance time limits for this instance: one per 2,500 requests (at least one)."""
        return max(1.0, len(instance.data["trace"]["arrival"]) / NOMINAL_REQUESTS)

    def interact(self, instance: Instance, session: Session) -> dict[str, Any]:
        return self.simulate(instance, session_decide(session, "router"))

    def simulate(self, instance: Instance, decide: Callable[[Observation], Any]) -> dict[str, Any]:
        """Route the whole trace here, asking ``decide`` per request; the record ``score`` reads."""
        data = instance.data
        trace = Trace.from_data(data["trace"])
        choose, calls = policy_chooser(decide, trace)
        try:
            engines, route = run_router(configs(data), trace, choose, int(data["max_steps"]))
        except (PolicyError, EngineError) as err:
            return {"error": str(err), "policy_calls": calls[0]}
        first, finish = replica_times(engines, route, len(trace))
        return {"route": route.tolist(), "ttft": (first - trace.arrival).tolist(),
                "e2e": (finish - trace.arrival).tolist(), **engine_stats(engines),
                "kv_bound_pct": kv_bound_pct(engines), "policy_calls": calls[0]}

    def table(self, instance: Instance, record: dict[str, Any]) -> RequestTable:
        trace = Trace.from_data(instance.data["trace"])
        first = trace.arrival + np.asarray(record["ttft"], dtype=float)
        finish = trace.arrival + np.asarray(record["e2e"], dtype=float)
        return fleet_table(trace, configs(instance.data), first, finish)

    def score(self, instance: Instance, record: Any) -> InstanceResult:
        if not isinstance(record, dict) or "error" in record or "e2e" not in record:
            why = record.get("error") if isinstance(record, dict) else None
            return infeasible(instance, str(why or "no simulation record"))
        stats = {k: float(record[k]) for k in ("preemptions", "kv_util_pct", "kv_bound_pct", "steps", "busy_s")}
        return judge.verdict(instance, self.table(instance, record), stats, self.opts.slo, False)

    def aggregate(self, results: list[InstanceResult]) -> tuple[float | None, dict[str, float]]:
        return judge.aggregate(results, self.opts.latency_weight)

    def instance_score(self, result: InstanceResult) -> float:
        return judge.instance_score(result, self.opts.latency_weight)

    def picture(self, instances: list[Instance], results: list[InstanceResult],
                solutions: list[Any], path: Path) -> None:
        panels = []
        for instance, result, record in zip(instances, results, solutions, strict=False):
            if not result.feasible:
                continue
            data = instance.data
            trace = Trace.from_data(data["trace"])
            cfgs = configs(data)
            ref = self.reference(cfgs, trace)
            panels.append((instance.name, self.table(instance, record), fleet_table(trace, cfgs, ref.first_token,
                                                                                     ref.finish),
                           result.extra.get("goodput_pct", float("nan")), data["reference"]["goodput_pct"]))
        draw_cdfs(Path(path), panels, "router", "round robin", self.opts.slo)
