"""``[verifier.options]`` of the serving problems: the table declared once, resolved against a profile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from evolve.evaluators.serving.metrics import Slo
from evolve.evaluators.serving.profiles import Profile, load_profile
from evolve.evaluators.serving.records import EngineConfig
from evolve.options import OptionError, VerifierOptions, read_options


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


class ServingTable(VerifierOptions):
    """The table as written; None limits come from the profile."""

    profile: str = Field("h100-llama3.1-8b", min_length=1)  # a profile name or a .toml path
    max_num_batched_tokens: int | None = Field(None, ge=1, le=10**7)
    max_num_seqs: int | None = Field(None, ge=1, le=10**6)
    kv_blocks: int | None = Field(None, ge=1, le=10**8)
    block_size: int = Field(16, ge=1, le=4096)
    chunked_prefill: bool = True
    ttft_slo_s: float = Field(2.0, ge=1e-6, le=1e6)
    tpot_slo_s: float = Field(0.2, ge=1e-6, le=1e6)
    predictor_noise: float = Field(0.85, ge=0.0, le=10.0)
    latency_weight: float = Field(0.2, ge=0.0, le=1e6)
    time_scale: float = Field(1.0, ge=1e-6, le=1e6)
    target_load: float | None = Field(None, ge=1e-3, le=100.0)  # traces: rescale arrivals to this offered load


class RouterTable(ServingTable):
    """serving_router: the fleet, one replica per profile (or ``replicas`` copies of ``profile``)."""

    replicas: int = Field(4, ge=1, le=256)
    replica_profiles: list[Annotated[str, Field(min_length=1)]] = Field([], max_length=256)


def parse_options(options: Mapping[str, Any] | None, problem_dir: Path, router: bool = False) -> ServingOptions:
    given = dict(options or {})
    table = read_options(RouterTable if router else ServingTable, given)
    if "time_scale" in given and "target_load" in given:
        raise OptionError("target_load", "give time_scale or target_load, not both (target_load sets the time "
                          "scale from the engine's capacity)", related=("time_scale",))
    profile = load_profile(table.profile, problem_dir)
    engine = _engine(profile, table)
    names = list(table.replica_profiles) if isinstance(table, RouterTable) else []
    if names and "replicas" in given and given["replicas"] != len(names):
        raise OptionError("replicas", f"{given['replicas']} does not match the {len(names)} entries of "
                          "replica_profiles", related=("replica_profiles",))
    replicas = len(names) if names else table.replicas if isinstance(table, RouterTable) else 1
    names = names or [table.profile] * replicas
    profiles = [load_profile(n, problem_dir) for n in names]
    return ServingOptions(
        profile=profile,
        engine=engine,
        slo=Slo(table.ttft_slo_s, table.tpot_slo_s),
        predictor_noise=table.predictor_noise,
        latency_weight=table.latency_weight,
        time_scale=table.time_scale,
        target_load=table.target_load,
        replicas=replicas,
        budget_given=table.max_num_batched_tokens is not None,
        replica_engines=tuple(_engine(p, table) for p in profiles),
        replica_names=tuple(p.name for p in profiles),
    )


def _engine(profile: Profile, table: ServingTable) -> EngineConfig:
    """The engine of a profile; explicit limits override the profile's defaults."""
    budget = table.max_num_batched_tokens or profile.max_num_batched_tokens
    seqs = table.max_num_seqs or profile.max_num_seqs
    if budget < seqs:
        # vLLM refuses this too: every running request must be able to decode in one step.
        raise OptionError("max_num_batched_tokens", f"{budget} is smaller than max_num_seqs ({seqs}) of profile "
                          f"{profile.name}; every running request must fit in one step's budget",
                          related=("max_num_seqs", "profile", "replica_profiles"))
    b0, b1, b2, b3 = profile.seconds()
    return EngineConfig(
        max_num_batched_tokens=budget,
        max_num_seqs=seqs,
        kv_blocks=table.kv_blocks or profile.kv_blocks,
        block_size=table.block_size,
        chunked_prefill=table.chunked_prefill,
        b0=b0, b1=b1, b2=b2, b3=b3,
    )
