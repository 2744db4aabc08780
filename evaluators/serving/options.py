"""``[verifier.options]`` of the serving problems: strict, with one-line errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.errors import UserError
from evolve.evaluators.serving.engine import EngineConfig
from evolve.evaluators.serving.metrics import Slo
from evolve.evaluators.serving.profiles import Profile, load_profile

WHERE = "problem.toml: verifier.options"


@dataclass(frozen=True)
class ServingOptions:
    profile: Profile
    engine: EngineConfig
    slo: Slo
    predictor_noise: float
    latency_weight: float
    time_scale: float
    target_load: float | None  # traces: rescale arrivals to this offered load (see load.py)
    replicas: int
    budget_given: bool  # prefill-first without an explicit budget: as vLLM, budget >= longest request
    replica_engines: tuple[EngineConfig, ...] = ()  # router: one engine per replica
    replica_names: tuple[str, ...] = ()

    def describe(self, router: bool = False) -> str:
        if router:
            return "replicas: " + ", ".join(
                f"{name} ({e.max_num_batched_tokens} tokens, {e.max_num_seqs} seqs, {e.kv_blocks} blocks)"
                for name, e in zip(self.replica_names, self.replica_engines, strict=True))
        e = self.engine
        return (f"profile {self.profile.name}, budget {e.max_num_batched_tokens} tokens, "
                f"{e.max_num_seqs} seqs, {e.kv_blocks} KV blocks of {e.block_size}, "
                f"{'chunked prefill' if e.chunked_prefill else 'prefill-first'}")


# key -> (kind, default, low, high); None defaults come from the profile
_SPEC: dict[str, tuple[type, Any, float, float]] = {
    "profile": (str, "h100-llama3.1-8b", 0, 0),
    "max_num_batched_tokens": (int, None, 1, 10**7),
    "max_num_seqs": (int, None, 1, 10**6),
    "kv_blocks": (int, None, 1, 10**8),
    "block_size": (int, 16, 1, 4096),
    "chunked_prefill": (bool, True, 0, 0),
    "ttft_slo_s": (float, 2.0, 1e-6, 1e6),
    "tpot_slo_s": (float, 0.2, 1e-6, 1e6),
    "predictor_noise": (float, 0.85, 0.0, 10.0),
    "latency_weight": (float, 0.2, 0.0, 1e6),
    "time_scale": (float, 1.0, 1e-6, 1e6),
    "target_load": (float, None, 1e-3, 100.0),
    "replicas": (int, 4, 1, 256),
    "replica_profiles": (list, [], 1, 256),
}
ROUTER_ONLY = ("replicas", "replica_profiles")


def _value(key: str, raw: Any) -> Any:
    kind, _, low, high = _SPEC[key]
    if kind is bool:
        if not isinstance(raw, bool):
            raise UserError(f"{WHERE}.{key}: expected true or false, got {raw!r}")
        return raw
    if kind is list:
        if (not isinstance(raw, list) or not low <= len(raw) <= high
                or not all(isinstance(x, str) and x for x in raw)):
            raise UserError(f"{WHERE}.{key}: expected a list of 1 to {high:g} profile names or .toml paths, "
                            f"got {raw!r}")
        return raw
    if kind is str:
        if not isinstance(raw, str) or not raw:
            raise UserError(f"{WHERE}.{key}: expected a profile name or a .toml path, got {raw!r}")
        return raw
    ok_type = isinstance(raw, int) if kind is int else isinstance(raw, int | float)
    if isinstance(raw, bool) or not ok_type or not low <= raw <= high:
        what = "an integer" if kind is int else "a number"
        raise UserError(f"{WHERE}.{key}: expected {what} from {low:g} to {high:g}, got {raw!r}")
    return kind(raw)


def parse_options(options: Mapping[str, Any] | None, problem_dir: Path, router: bool = False) -> ServingOptions:
    given = dict(options or {})
    allowed = [k for k in _SPEC if router or k not in ROUTER_ONLY]
    for key in given:
        if key not in allowed:
            raise UserError(f"{WHERE}: unknown key {key!r} (expected one of {', '.join(allowed)})")
    values = {key: _value(key, given[key]) if key in given else _SPEC[key][1] for key in allowed}
    if "time_scale" in given and "target_load" in given:
        raise UserError(f"{WHERE}: give time_scale or target_load, not both (target_load sets the time scale "
                        "from the engine's capacity)")
    profile = load_profile(values["profile"], problem_dir)
    engine = _engine(profile, values)
    names = list(values.get("replica_profiles") or [])
    if names and "replicas" in given and given["replicas"] != len(names):
        raise UserError(f"{WHERE}.replicas: {given['replicas']} does not match the "
                        f"{len(names)} entries of replica_profiles")
    replicas = len(names) if names else values.get("replicas", 1)
    names = names or [values["profile"]] * replicas
    profiles = [load_profile(n, problem_dir) for n in names]
    return ServingOptions(
        profile=profile,
        engine=engine,
        slo=Slo(values["ttft_slo_s"], values["tpot_slo_s"]),
        predictor_noise=values["predictor_noise"],
        latency_weight=values["latency_weight"],
        time_scale=values["time_scale"],
        target_load=values["target_load"],
        replicas=replicas,
        budget_given="max_num_batched_tokens" in given,
        replica_engines=tuple(_engine(p, values) for p in profiles),
        replica_names=tuple(p.name for p in profiles),
    )


def _engine(profile: Profile, values: dict[str, Any]) -> EngineConfig:
    """The engine of a profile; explicit limits override the profile's defaults."""
    budget = values["max_num_batched_tokens"] or profile.max_num_batched_tokens
    seqs = values["max_num_seqs"] or profile.max_num_seqs
    if budget < seqs:
        # vLLM refuses this too: every running request must be able to decode in one step.
        raise UserError(f"{WHERE}.max_num_batched_tokens: {budget} is smaller than max_num_seqs ({seqs}) "
                        f"of profile {profile.name}; every running request must fit in one step's budget")
    b0, b1, b2, b3 = profile.seconds()
    return EngineConfig(
        max_num_batched_tokens=budget,
        max_num_seqs=seqs,
        kv_blocks=values["kv_blocks"] or profile.kv_blocks,
        block_size=values["block_size"],
        chunked_prefill=values["chunked_prefill"],
        b0=b0, b1=b1, b2=b2, b3=b3,
    )
