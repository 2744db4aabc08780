"""The serving verifier: evolve the request-scheduling policy of one vLLM-like replica.

The engine and the trace (with its true output lengths) stay in the trusted
process.  ``interact`` simulates the trace here and asks the sandboxed policy
for priorities at each step where its order matters (``policy.py`` says what it is
shown); the record it returns is this process's own, and ``score`` turns it
into metrics.  Nothing the candidate returns besides its priorities is used.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.serving import facts, judge
from evolve.evaluators.serving.candidate_side import respond_priority
from evolve.evaluators.serving.engine import EngineError, run_engine
from evolve.evaluators.serving.load import TIE_LOAD, offered_load
from evolve.evaluators.serving.metrics import (
    RequestTable,
    engine_stats,
    engine_table,
    kv_bound_pct,
    request_table,
)
from evolve.evaluators.serving.options import ServingOptions, parse_options
from evolve.evaluators.serving.picture import draw_cdfs
from evolve.evaluators.serving.policy import (
    Observation,
    PolicyDecider,
    PolicyError,
    fcfs_ask,
    policy_ask,
)
from evolve.evaluators.serving.records import EngineConfig, Trace
from evolve.evaluators.serving.reference import ReferenceRun, cached, trace_key
from evolve.evaluators.serving.secret import file_label, load_secret, streams
from evolve.evaluators.serving.session import Session, session_decide
from evolve.evaluators.serving.traces import read_trace
from evolve.evaluators.serving.workload import SPLITS, generate, predict
from evolve.verifier import Direction, Instance, InstanceResult, infeasible

log = logging.getLogger(__name__)

STEP_LIMIT_FACTOR = 20  # a policy may take 20x FCFS's steps (+1000) before it counts as stuck
NOMINAL_REQUESTS = 2500  # instance_timeout_s is for a trace this long (the test split's)


def oracle_digests(problem_dir: Path) -> tuple[str, ...]:
    """Digests of shipped baselines that declare ``ORACLE = True`` (they alone see true lengths)."""
    found = []
    for path in sorted((problem_dir / "baselines").glob("*.py")):
        text = path.read_text()
        if any(line.strip() == "ORACLE = True" for line in text.splitlines()):
            found.append(hashlib.sha256(text.encode()).hexdigest())
    return tuple(found)


def is_oracle(source: str | None, digests: tuple[str, ...]) -> bool:
    """True for the exact text of a shipped oracle baseline (decided here, from the program text)."""
    return bool(source) and hashlib.sha256(str(source).encode()).hexdigest() in digests


def trace_from_arrays(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, client: np.ndarray,
                      noise: float, rng: np.random.Generator) -> Trace:
    _, dense = np.unique(client, return_inverse=True)  # tenant ids -> 0..k-1
    predicted = predict(output, noise, rng)
    return Trace(arrival.astype(float), prompt.astype(np.int64), output.astype(np.int64), predicted,
                 dense.astype(np.int64).reshape(-1))


def trace_from_csv(path: Path, opts: ServingOptions, capacity_of: Callable[[Trace], float],
                   secret: bytes) -> Trace:
    """A CSV trace; predictions are seeded by the secret and the whole file's content (same file,
    same predictions; a policy that knows the file's name or its arrivals cannot know its seed).

    With ``target_load`` the arrivals are rescaled so that the offered load is that
    fraction of ``capacity_of(trace)``; otherwise they are multiplied by ``time_scale``.
    """
    arrival, prompt, output, client = read_trace(path)
    (rng,) = streams(secret, file_label(path), 1)
    trace = trace_from_arrays(arrival, prompt, output, client, opts.predictor_noise, rng)
    scale = opts.time_scale
    if opts.target_load is not None:
        span = float(arrival[-1] - arrival[0])
        if len(trace) < 2 or span <= 0:
            raise UserError(f"{path}: target_load needs at least two requests at different times")
        scale = ((len(trace) - 1) / span) / capacity_of(trace) / opts.target_load
    trace.arrival = trace.arrival * scale
    return trace


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


def say_load(where: str, report_line: str, load: float, decisions: int, requests: int, knob: str,
             given: float | None = None) -> None:
    """What ``--trace`` prints about the load: one line, and a warning when policies must tie.
    ``given``: the target_load already set (then the advice is not to set it)."""
    print(f"{where}: {report_line}", file=sys.stderr)
    advice = (f"set {knob} (e.g. --option target_load=0.9)" if given is None else
              f"with target_load = {given:g} already set, a longer trace or a higher target_load would differ")
    if decisions == 0:
        print(f"warning: {where}: at this load every policy ties exactly (FCFS never had two requests to "
              f"order); {advice}", file=sys.stderr)
    elif load < TIE_LOAD:
        print(f"warning: {where}: offered load {load:.2f} is low: FCFS had a choice at only {decisions} steps "
              f"for {requests:,} requests, so policies differ little; {advice}", file=sys.stderr)


def table_of(trace: Trace, cfg: EngineConfig, record: dict[str, Any]) -> RequestTable:
    """Per-request latencies of a record (trusted: written by ``simulate``)."""
    ttft, e2e = np.asarray(record["ttft"], dtype=float), np.asarray(record["e2e"], dtype=float)
    return request_table(cfg, trace, trace.arrival + ttft, trace.arrival + e2e)


class ServingVerifier:
    """Scheduling policy of a continuous-batching LLM engine (see docs/serving.md)."""

    direction: Direction = "minimize"
    respond = staticmethod(respond_priority)  # the sandbox side: one call per decision

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.opts = parse_options(options, self.problem_dir)
        self.digests = oracle_digests(self.problem_dir)
        self.secret = load_secret(self.problem_dir)  # trusted: the seeds of every trace

    # -- instances (trusted) -------------------------------------------------------

    def instances(self, split: str) -> list[Instance]:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for serving (expected one of {', '.join(SPLITS)})")
        out = []
        for spec in SPLITS[split]:
            trace = generate(spec, self.opts.engine, self.opts.predictor_noise, self.secret)
            out.append(self.make_instance(spec.name, spec.kind, trace, spec.name))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        path = Path(path)
        if path.suffix.lower() != ".csv":
            raise UserError(f"{path}: expected a .csv trace (arrived_at,num_prefill_tokens,"
                            "num_decode_tokens or TIMESTAMP,ContextTokens,GeneratedTokens)")
        trace = trace_from_csv(path, self.opts,
                               lambda t: offered_load(engine_for(self.opts, t, str(path)), t).capacity,
                               self.secret)
        instance = self.make_instance(path.stem, "trace", trace, str(path))
        report = offered_load(EngineConfig.from_data(instance.data["engine"]), trace)
        say_load(str(path), report.describe(), report.load, instance.data["reference_decisions"], len(trace),
                 "target_load", self.opts.target_load)
        return [instance]

    def make_instance(self, name: str, group: str, trace: Trace, where: str) -> Instance:
        cfg = engine_for(self.opts, trace, where)
        ref = self.reference(cfg, trace)
        data = {
            "trace": trace.to_data(),
            "engine": cfg.to_data(),
            "max_steps": STEP_LIMIT_FACTOR * ref.steps + 1000,
            "slo": (self.opts.slo.ttft_s, self.opts.slo.tpot_s),
            "reference": ref.figures,
            "reference_decisions": ref.decisions,
        }
        return Instance(name, group, data, judge.make_reference(ref.figures, "FCFS"))

    def reference(self, cfg: EngineConfig, trace: Trace) -> ReferenceRun:
        """FCFS on this trace and engine (cached: the same trace is never simulated twice)."""

        def compute() -> ReferenceRun:
            decider = PolicyDecider(fcfs_ask)
            engine = run_engine(cfg, trace, decider, 10**9)
            figures = judge.reference_figures(engine_table(engine), trace.arrival, trace.output,
                                              self.opts.slo, engine_stats([engine]))
            return ReferenceRun(figures, engine.first_token, engine.finish, engine.steps, decider.calls)

        return cached(trace_key(trace, [cfg], ("fcfs", self.opts.slo)), compute)

    def prompt_facts(self) -> list[str]:
        """The engine, SLOs and predictor of this run, as a model's prompt states them."""
        return [f"Engine of this run, on every split: {self.opts.describe()}; SLOs: time to first token "
                f"<= {self.opts.slo.ttft_s:g} s, time per output token <= {self.opts.slo.tpot_s:g} s; "
                f"predicted_len has log-normal noise of sigma {self.opts.predictor_noise:g}, in whole tokens."]

    def train_facts(self, instances: list[Instance]) -> list[str]:
        """After-the-fact figures of the train traces for the system prompt (facts.py)."""
        return facts.train_facts(instances)

    def feedback_lines(self, results: list[InstanceResult]) -> list[str]:
        """A program's goodput and starved shares per trace, and how often KV memory
        bound in its runs (facts.py)."""
        return facts.feedback_lines(results)

    def time_weight(self, instance: Instance) -> float:
        """How many instance time limits this instance gets: one per 2,500 requests (at least one)."""
        return max(1.0, len(instance.data["trace"]["arrival"]) / NOMINAL_REQUESTS)

    # -- the policy's run (trusted; the policy answers from the sandbox) -------------

    def interact(self, instance: Instance, session: Session) -> dict[str, Any]:
        oracle = is_oracle(session.source, self.digests)
        return self.simulate(instance, session_decide(session, "policy"), oracle)

    def simulate(self, instance: Instance, decide: Callable[[Observation], Any],
                 oracle: bool = False) -> dict[str, Any]:
        """Run the trace here, asking ``decide`` for priorities; the record ``score`` reads."""
        data = instance.data
        trace = Trace.from_data(data["trace"])
        predicted = trace.output.astype(float) if oracle else trace.predicted
        decider = PolicyDecider(policy_ask(decide, predicted, tuple(data["slo"])))
        try:
            engine = run_engine(EngineConfig.from_data(data["engine"]), trace, decider, int(data["max_steps"]))
        except (PolicyError, EngineError) as err:
            return {"error": str(err), "policy_calls": decider.calls}
        table = engine_table(engine)
        return {
            "ttft": table.ttft.tolist(),
            "e2e": table.e2e.tolist(),
            **engine_stats([engine]),
            "kv_bound_pct": kv_bound_pct([engine]),
            "policy_calls": decider.calls,
            "oracle": oracle,
        }

    def gp_screen(self, instances: list[Instance], score: Any) -> Any:
        """The GP's in-process screen of its own priority trees (evolve/gp/screen.py)."""
        from evolve.evaluators.serving.screen import ServingScreen

        return ServingScreen(self, instances)

    # -- score (trusted) ---------------------------------------------------------------

    def score(self, instance: Instance, record: Any) -> InstanceResult:
        if not isinstance(record, dict) or "error" in record or "e2e" not in record:
            why = record.get("error") if isinstance(record, dict) else None
            return infeasible(instance, str(why or "no simulation record"))
        data = instance.data
        trace = Trace.from_data(data["trace"])
        table = table_of(trace, EngineConfig.from_data(data["engine"]), record)
        stats = {k: float(record[k]) for k in ("preemptions", "kv_util_pct", "kv_bound_pct", "steps", "busy_s")}
        return judge.verdict(instance, table, stats, self.opts.slo, record.get("oracle") is True)

    def aggregate(self, results: list[InstanceResult]) -> tuple[float | None, dict[str, float]]:
        return judge.aggregate(results, self.opts.latency_weight)

    def instance_score(self, result: InstanceResult) -> float:
        return judge.instance_score(result, self.opts.latency_weight)

    # -- picture ---------------------------------------------------------------------

    def picture(self, instances: list[Instance], results: list[InstanceResult],
                solutions: list[Any], path: Path) -> None:
        panels = []
        for instance, result, record in zip(instances, results, solutions, strict=False):
            if not result.feasible:
                continue
            data = instance.data
            trace = Trace.from_data(data["trace"])
            cfg = EngineConfig.from_data(data["engine"])
            ref = self.reference(cfg, trace)
            fcfs = request_table(cfg, trace, ref.first_token, ref.finish)
            panels.append((instance.name, table_of(trace, cfg, record), fcfs,
                           result.extra.get("goodput_pct", float("nan")), data["reference"]["goodput_pct"]))
        draw_cdfs(Path(path), panels, "policy", "FCFS", self.opts.slo)
