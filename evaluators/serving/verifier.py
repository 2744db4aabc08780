"""The serving verifier: evolve the request-scheduling policy of one vLLM-like replica."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.serving import judge
from evolve.evaluators.serving.engine import EngineConfig, EngineError, Trace, run_engine
from evolve.evaluators.serving.metrics import engine_stats, engine_table
from evolve.evaluators.serving.options import ServingOptions, parse_options
from evolve.evaluators.serving.picture import draw_cdfs
from evolve.evaluators.serving.policy import PolicyDecider, fcfs_priority, simulate
from evolve.evaluators.serving.replay import SolutionError, replay, reported
from evolve.evaluators.serving.traces import read_trace
from evolve.evaluators.serving.workload import SPLITS, generate, predict
from evolve.verifier import Direction, Instance, InstanceResult, infeasible

log = logging.getLogger(__name__)

STEP_LIMIT_FACTOR = 20  # a policy may take 20x FCFS's steps (+1000) before it counts as stuck


def oracle_digests(problem_dir: Path) -> tuple[str, ...]:
    """Digests of shipped baselines that declare ``ORACLE = True`` (they alone see true lengths)."""
    found = []
    for path in sorted((problem_dir / "baselines").glob("*.py")):
        text = path.read_text()
        if any(line.strip() == "ORACLE = True" for line in text.splitlines()):
            found.append(hashlib.sha256(text.encode()).hexdigest())
    return tuple(found)


def trace_from_arrays(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, client: np.ndarray,
                      noise: float, seed: int) -> Trace:
    _, dense = np.unique(client, return_inverse=True)  # tenant ids -> 0..k-1
    predicted = predict(output, noise, np.random.default_rng(seed))
    return Trace(arrival.astype(float), prompt.astype(np.int64), output.astype(np.int64), predicted,
                 dense.astype(np.int64).reshape(-1))


def trace_from_csv(path: Path, opts: ServingOptions) -> Trace:
    """A CSV trace; predictions are seeded by the file's content (same file, same predictions)."""
    arrival, prompt, output, client = read_trace(path)
    seed = int.from_bytes(hashlib.sha256(path.read_bytes()).digest()[:8], "little")
    return trace_from_arrays(arrival * opts.time_scale, prompt, output, client, opts.predictor_noise, seed)


def engine_for(opts: ServingOptions, trace: Trace, where: str) -> EngineConfig:
    """The engine config for a trace; refuses requests the engine could never serve."""
    cfg = opts.engine
    longest = int((trace.prompt + trace.output).max())
    if not cfg.chunked_prefill and not opts.budget_given and longest > cfg.max_num_batched_tokens:
        # as vLLM without chunked prefill: max_num_batched_tokens >= max_model_len
        cfg = EngineConfig(**{**cfg.to_data(), "max_num_batched_tokens": longest})
    capacity = cfg.kv_blocks * cfg.block_size
    worst = int(np.argmax(trace.prompt + trace.output))
    if longest > capacity:
        raise UserError(f"{where}: request {worst} needs {longest} tokens of KV cache, more than the "
                        f"{capacity} the engine holds (verifier.options kv_blocks / block_size)")
    if not cfg.chunked_prefill and longest - 1 > cfg.max_num_batched_tokens:
        raise UserError(f"{where}: request {worst} has {longest} tokens, more than "
                        f"max_num_batched_tokens = {cfg.max_num_batched_tokens}; without chunked "
                        "prefill every prompt (and its recomputation) must fit in one step")
    return cfg


class ServingVerifier:
    """Scheduling policy of a continuous-batching LLM engine (see docs/serving.md).

    The solution is the record of decisions the sandboxed simulation took; the
    trusted ``score`` replays them, validates each against the engine's rules
    and computes every metric itself.
    """

    direction: Direction = "minimize"

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.opts = parse_options(options, self.problem_dir)
        self.digests = oracle_digests(self.problem_dir)

    # -- instances (trusted) -------------------------------------------------------

    def instances(self, split: str) -> list[Instance]:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for serving (expected one of {', '.join(SPLITS)})")
        out = []
        for spec in SPLITS[split]:
            trace = generate(spec, self.opts.engine, self.opts.predictor_noise)
            out.append(self.make_instance(spec.name, spec.kind, trace, spec.name))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        path = Path(path)
        if path.suffix.lower() != ".csv":
            raise UserError(f"{path}: expected a .csv trace (arrived_at,num_prefill_tokens,"
                            "num_decode_tokens or TIMESTAMP,ContextTokens,GeneratedTokens)")
        return [self.make_instance(path.stem, "trace", trace_from_csv(path, self.opts), str(path))]

    def make_instance(self, name: str, group: str, trace: Trace, where: str) -> Instance:
        cfg = engine_for(self.opts, trace, where)
        engine = run_engine(cfg, trace, PolicyDecider(fcfs_priority, trace.predicted), 10**9)
        figures = judge.reference_figures(engine_table(engine), trace.arrival, trace.output,
                                          self.opts.slo, engine_stats([engine]))
        data = {
            "trace": trace.to_data(),
            "engine": cfg.to_data(),
            "max_steps": STEP_LIMIT_FACTOR * engine.steps + 1000,
            "oracle_digests": self.digests,
            "slo": (self.opts.slo.ttft_s, self.opts.slo.tpot_s),
            "reference": figures,
        }
        return Instance(name, group, data, judge.make_reference(figures, "FCFS"))

    # -- solve (inside the sandbox) --------------------------------------------------

    @staticmethod
    def solve(heuristic: Callable[..., Any], instance: Instance) -> Any:
        return simulate(heuristic, instance.data)

    # -- score (trusted) ---------------------------------------------------------------

    def replay(self, instance: Instance, solution: Any) -> Any:
        data = instance.data
        return replay(EngineConfig.from_data(data["engine"]), Trace.from_data(data["trace"]),
                      solution, int(data["max_steps"]))

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        try:
            engine = self.replay(instance, solution)
            table = engine_table(engine)
            wrong = judge.check_reported(solution, table, reported)
        except (SolutionError, EngineError) as err:
            return infeasible(instance, str(err))
        if wrong:
            return infeasible(instance, wrong)
        return judge.verdict(instance, table, engine_stats([engine]), self.opts.slo,
                             solution.get("oracle") is True)

    def aggregate(self, results: list[InstanceResult]) -> tuple[float | None, dict[str, float]]:
        return judge.aggregate(results, self.opts.latency_weight)

    # -- picture ---------------------------------------------------------------------

    def picture(self, instances: list[Instance], results: list[InstanceResult],
                solutions: list[Any], path: Path) -> None:
        panels = []
        for instance, result, solution in zip(instances, results, solutions, strict=False):
            if not result.feasible:
                continue
            data = instance.data
            trace = Trace.from_data(data["trace"])
            cfg = EngineConfig.from_data(data["engine"])
            mine = engine_table(self.replay(instance, solution))
            fcfs = engine_table(run_engine(cfg, trace, PolicyDecider(fcfs_priority, trace.predicted), 10**9))
            panels.append((instance.name, mine, fcfs, result.extra.get("goodput_pct", float("nan")),
                           data["reference"]["goodput_pct"]))
        draw_cdfs(Path(path), panels, "policy", "FCFS", self.opts.slo)

