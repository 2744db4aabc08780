"""Seeded synthetic expert-load traces and the built-in splits.

No public expert-load trace can be downloaded here, so workloads come from a
documented generative model (docs/moe.md).  Per layer, an expert's routing
logit is the sum of

* a heavy-tailed base popularity: log-normal with ``skew_sigma``;
* a boost ``log(hot_boost)`` for a few hot experts (``hot_experts``);
* a group effect shared by the experts of a group (``group_sigma``), which
  also drifts, so experts of one group rise and fall together;
* a deviation that drifts between windows as an AR(1) process (persistence
  ``rho``, innovation ``drift_sigma``): consecutive windows are correlated.

At each window a *shift* happens with probability ``shift_prob`` (one event
for all layers, like a change of traffic mix): in every layer a fraction
``shift_fraction`` of the hot set moves to other experts.  A window routes
``tokens x top_k`` token-expert assignments per layer, drawn multinomially
from the softmax of the logits, so loads are realistic integer token counts.

Every workload draws from its own numpy Generator keyed by the problem's
secret (``evolve.evaluators.secret_seeds``: HMAC-SHA-256 of the entropy in
problems/moe/data/seeds.json and the label "workload <split> <index>"), so a
balancer carrying a copy of ``generate`` cannot rebuild the windows it is
judged on; train and test also differ in drift settings.  Trusted side only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evolve.evaluators.moe.configs import QWEN, SMALL, TINY, V3, EpConfig
from evolve.evaluators.secret_seeds import streams

SPLIT_IDS = {"quick": 1, "train": 2, "test": 3}


@dataclass(frozen=True)
class Drift:
    """Parameters of the generative model (see the module docstring)."""

    skew_sigma: float
    hot_experts: int
    hot_boost: float
    group_sigma: float
    rho: float
    drift_sigma: float
    group_drift_sigma: float
    shift_prob: float
    shift_fraction: float
    tokens: tuple[int, int]  # tokens per window, uniform in [low, high]
    top_k: int


# Search splits (quick, train) and the held-out test split differ in drift:
# test drifts faster, shifts its hot set more often and is more skewed.
TRAIN_DRIFT = Drift(skew_sigma=0.6, hot_experts=4, hot_boost=3.0, group_sigma=0.25, rho=0.85,
                    drift_sigma=0.25, group_drift_sigma=0.1, shift_prob=0.2, shift_fraction=0.5,
                    tokens=(100_000, 400_000), top_k=8)
TEST_DRIFT = Drift(skew_sigma=0.7, hot_experts=6, hot_boost=2.5, group_sigma=0.3, rho=0.75,
                   drift_sigma=0.35, group_drift_sigma=0.15, shift_prob=0.3, shift_fraction=0.5,
                   tokens=(50_000, 500_000), top_k=8)


@dataclass(frozen=True)
class Workload:
    """A generated trace: ``windows`` is int64 [windows, layers, experts]."""

    name: str
    config: EpConfig
    windows: np.ndarray


def _hot_count(config: EpConfig, drift: Drift) -> int:
    """``hot_experts`` is per 256 experts; smaller models get proportionally fewer."""
    return max(1, round(drift.hot_experts * config.experts / 256))


def generate(config: EpConfig, layers: int, windows: int, drift: Drift,
             rng: np.random.Generator, expected: np.ndarray | None = None) -> np.ndarray:
    """Token counts [windows, layers, experts] (int64) for one workload.

    ``expected`` (float [windows, layers, experts]), when given, receives for each window the
    loads the next window has in expectation given the model's hidden state (base, hot set,
    AR(1) deviations: a clairvoyant forecast no balancer has, for bench/moe_headroom.py), at
    this window's token count. It draws nothing: the windows are the same with or without it.
    """
    e, g = config.experts, config.groups
    group_of = np.arange(e) // (e // g)
    hot = min(_hot_count(config, drift), e)
    base = rng.normal(0.0, drift.skew_sigma, size=(layers, e))
    hot_set = np.stack([rng.choice(e, size=hot, replace=False) for _ in range(layers)])
    group_base = rng.normal(0.0, drift.group_sigma, size=(layers, g))
    dev = rng.normal(0.0, drift.drift_sigma, size=(layers, e))
    group_dev = rng.normal(0.0, drift.group_drift_sigma, size=(layers, g))
    out = np.empty((windows, layers, e), dtype=np.int64)
    rows = np.arange(layers)[:, None]
    for w in range(windows):
        if w > 0:
            dev = drift.rho * dev + rng.normal(0.0, drift.drift_sigma, size=dev.shape)
            group_dev = drift.rho * group_dev + rng.normal(0.0, drift.group_drift_sigma, size=group_dev.shape)
            if rng.random() < drift.shift_prob:
                moved = max(1, round(drift.shift_fraction * hot))
                for layer in range(layers):
                    cold = np.setdiff1d(np.arange(e), hot_set[layer])
                    slots = rng.choice(hot, size=moved, replace=False)
                    hot_set[layer, slots] = rng.choice(cold, size=moved, replace=False)
        boost = np.zeros((layers, e))
        boost[rows, hot_set] = np.log(drift.hot_boost)
        logits = base + boost + (group_base + group_dev)[:, group_of] + dev
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        assignments = int(rng.integers(drift.tokens[0], drift.tokens[1], endpoint=True)) * drift.top_k
        for layer in range(layers):
            out[w, layer] = rng.multinomial(assignments, probs[layer])
        if expected is not None:
            expected[w] = _forecast(base, hot_set, group_base + drift.rho * group_dev, group_of,
                                    drift.rho * dev, drift) * assignments
    return out


def _forecast(base: np.ndarray, hot_set: np.ndarray, group: np.ndarray, group_of: np.ndarray,
              dev: np.ndarray, drift: Drift) -> np.ndarray:
    """Expected routing probabilities of the next window from the state (innovations averaged out
    up to their common factor; a shift moves a hot expert's boost with its probability)."""
    layers, experts = base.shape
    hot = hot_set.shape[1]
    moved = max(1, round(drift.shift_fraction * hot))
    leave = drift.shift_prob * moved / hot  # a hot expert loses its boost
    arrive = drift.shift_prob * moved / max(experts - hot, 1)  # a cold one gains it
    boost = np.full((layers, experts), 1.0 + arrive * (drift.hot_boost - 1.0))
    boost[np.arange(layers)[:, None], hot_set] = (1.0 - leave) * drift.hot_boost + leave
    logits = base + group[:, group_of] + dev
    weight = np.exp(logits - logits.max(axis=1, keepdims=True)) * boost
    return weight / weight.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class WorkloadSpec:
    config: EpConfig
    layers: int
    windows: int
    count: int


# (deployment, MoE layers, windows per workload, workloads).  V3 has 58 MoE layers
# (61 minus 3 dense), the Qwen3-like model 48.
SPLITS: dict[str, tuple[WorkloadSpec, ...]] = {
    "quick": (WorkloadSpec(SMALL, 4, 4, 1), WorkloadSpec(V3, 58, 3, 1)),
    # The first four rows are the original train split; the rest (added later, so the first
    # rows keep their seeds and shipped references) make a rule's train figure less a matter of
    # luck: two 2-layer tiny16 workloads moved the mean by more than the rules differ.
    "train": (WorkloadSpec(TINY, 2, 5, 2), WorkloadSpec(SMALL, 4, 5, 3), WorkloadSpec(V3, 58, 4, 2),
              WorkloadSpec(QWEN, 48, 4, 1),
              WorkloadSpec(TINY, 2, 5, 4), WorkloadSpec(SMALL, 4, 5, 3), WorkloadSpec(V3, 58, 4, 2),
              WorkloadSpec(QWEN, 48, 4, 2)),
    "test": (WorkloadSpec(TINY, 2, 5, 2), WorkloadSpec(SMALL, 4, 5, 4), WorkloadSpec(V3, 58, 4, 3),
             WorkloadSpec(QWEN, 48, 4, 2)),
}


def workload_label(split: str, index: int) -> str:
    """What a built-in workload's key is made from, with the secret."""
    return f"workload {split} {index}"


def split_workloads(split: str, secret: bytes) -> list[Workload]:
    """The workloads of a built-in split, seeded by ``secret`` (KeyError for an unknown split)."""
    drift = TEST_DRIFT if split == "test" else TRAIN_DRIFT
    out = []
    index = 0
    per_config: dict[str, int] = {}  # names count on across rows of one deployment
    for spec in SPLITS[split]:
        for _ in range(spec.count):
            (rng,) = streams(secret, workload_label(split, index), 1)
            index += 1
            windows = generate(spec.config, spec.layers, spec.windows, drift, rng)
            k = per_config.get(spec.config.name, 0)
            per_config[spec.config.name] = k + 1
            out.append(Workload(f"{split}-{spec.config.name}-{k}", spec.config, windows))
    return out
