"""Seeded synthetic workloads and the output-length predictor.

Lengths are log-normal, fitted to published median and mean token counts
(``mu = ln median``, ``sigma^2 = 2 ln(mean / median)``):

* conversation: prompt median 1020 / mean 1155, output median 129 / mean 211
  (Azure LLM inference trace 2023, conversation; Patel et al., "Splitwise",
  ISCA 2024);
* code: prompt median 1500 / mean 2048, output median 13 / mean 28 (same
  trace, coding).

Prompts are clipped to [16, 8192] and outputs to [1, 2048] tokens.  Arrivals
are Poisson (exponential gaps) or bursty (gamma gaps, coefficient of variation
``cv``).  The arrival rate is ``load`` times the engine's nominal capacity for
the mix (``nominal_capacity``, see ``load.py``), so the same load means the
same pressure on any profile.

Every random stream of a built-in trace (lengths and arrivals, the predictor's
noise, the clients) comes from the problem's secret (``secret.py``): the
seeds in ``SPLITS`` only tell traces apart, they do not make them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from evolve.evaluators.serving.load import capacity
from evolve.evaluators.serving.records import EngineConfig, Trace
from evolve.evaluators.serving.secret import streams

PROMPT_CLIP = (16, 8192)
OUTPUT_CLIP = (1, 2048)
CLIENTS = 8  # synthetic tenants for the fair-share baseline, Zipf(1) shares


@dataclass(frozen=True)
class LengthModel:
    prompt_median: float
    prompt_mean: float
    output_median: float
    output_mean: float
    source: str

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        def lognormal(median: float, mean: float, clip: tuple[int, int]) -> np.ndarray:
            sigma = math.sqrt(2.0 * math.log(mean / median))
            values = rng.lognormal(math.log(median), sigma, n)
            return np.clip(np.rint(values), *clip).astype(np.int64)

        return (lognormal(self.prompt_median, self.prompt_mean, PROMPT_CLIP),
                lognormal(self.output_median, self.output_mean, OUTPUT_CLIP))


_AZURE = "Azure LLM inference trace 2023 as reported by Patel et al., Splitwise (ISCA 2024)"
LENGTHS: dict[str, LengthModel] = {
    "conversation": LengthModel(1020, 1155, 129, 211, _AZURE + ", conversation"),
    "code": LengthModel(1500, 2048, 13, 28, _AZURE + ", coding"),
}
KINDS = ("conversation", "code", "mixed")  # mixed: each request is either, 50/50


@dataclass(frozen=True)
class WorkloadSpec:
    kind: str
    arrivals: str  # "poisson" or "bursty"
    load: float
    requests: int
    seed: int
    cv: float = 2.5  # bursty only

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.arrivals}-load{self.load:.2f}-n{self.requests}-s{self.seed}"


@functools.cache
def reference_lengths(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A fixed sample of a kind's lengths, on which its nominal capacity is computed."""
    rng = np.random.default_rng(12345)
    if kind == "mixed":
        a_prompt, a_out = LENGTHS["conversation"].sample(rng, 100_000)
        b_prompt, b_out = LENGTHS["code"].sample(rng, 100_000)
        return np.concatenate((a_prompt, b_prompt)), np.concatenate((a_out, b_out))
    return LENGTHS[kind].sample(rng, 200_000)


def nominal_capacity(cfg: EngineConfig, kind: str) -> float:
    """Requests per second a saturated engine sustains for this kind of requests (``load.capacity``)."""
    return capacity(cfg, *reference_lengths(kind))


def predict(output: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy output-length predictions: ``output * exp(noise * N(0, 1))`` in whole tokens (>= 1).

    Log-normal multiplicative error keeps the ranking quality of a learned
    predictor: with ``noise = 0.85`` the Kendall tau between prediction and
    truth is about 0.55 on conversation lengths, the range Fu et al. report
    for their learned ranker ("Efficient LLM Scheduling by Learning to Rank",
    NeurIPS 2024).  ``noise = 0`` is a perfect predictor.  Rounded as a real
    predictor's token count is: an unrounded value would carry the exact
    noise factor, which a policy that guessed the noise could divide out.
    """
    return np.maximum(np.rint(output * np.exp(noise * rng.standard_normal(output.size))), 1.0)


def clients(rng: np.random.Generator, n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, CLIENTS + 1)
    return rng.choice(CLIENTS, size=n, p=weights / weights.sum()).astype(np.int64)


def generate(spec: WorkloadSpec, cfg: EngineConfig, predictor_noise: float, secret: bytes,
             fleet_capacity: float | None = None) -> Trace:
    """The trace of ``spec`` under ``secret``, at ``spec.load`` times ``capacity`` (default: one
    engine's nominal capacity)."""
    rng, predictor_rng, client_rng = streams(secret, f"trace {spec.seed}", 3)
    n = spec.requests
    if spec.kind == "mixed":
        a_prompt, a_out = LENGTHS["conversation"].sample(rng, n)
        b_prompt, b_out = LENGTHS["code"].sample(rng, n)
        pick = rng.random(n) < 0.5
        prompt, output = np.where(pick, a_prompt, b_prompt), np.where(pick, a_out, b_out)
    else:
        prompt, output = LENGTHS[spec.kind].sample(rng, n)
    rate = spec.load * (fleet_capacity or nominal_capacity(cfg, spec.kind))
    if spec.arrivals == "poisson":
        gaps = rng.exponential(1.0 / rate, n)
    else:
        shape = 1.0 / spec.cv**2
        gaps = rng.gamma(shape, 1.0 / (rate * shape), n)
    arrival = np.cumsum(gaps) - gaps[0]
    predicted = predict(output, predictor_noise, predictor_rng)
    return Trace(arrival, prompt, output, predicted, clients(client_rng, n))


def _specs(rows: list[tuple[str, str, float, int]], requests: int) -> list[WorkloadSpec]:
    return [WorkloadSpec(kind, arrivals, load, requests, seed) for kind, arrivals, load, seed in rows]


# Train and test differ in seeds and load levels; test adds light load and heavier overload.
# Loads are around the knee (0.9-1.4): below it every order meets the SLOs, above it the
# order decides who does.
SPLITS: dict[str, list[WorkloadSpec]] = {
    "quick": _specs([("conversation", "bursty", 1.4, 101), ("code", "poisson", 1.4, 102)], 400),
    "train": _specs([
        ("conversation", "poisson", 1.3, 201), ("conversation", "bursty", 1.1, 202),
        ("code", "poisson", 1.2, 203), ("code", "bursty", 1.3, 204),
        ("mixed", "poisson", 1.3, 205), ("mixed", "bursty", 1.2, 206),
    ], 1200),
    "test": _specs([
        ("conversation", "poisson", 0.8, 301), ("conversation", "poisson", 1.2, 302),
        ("conversation", "bursty", 1.0, 303), ("conversation", "bursty", 1.4, 304),
        ("code", "poisson", 1.1, 305), ("code", "bursty", 0.9, 306),
        ("mixed", "poisson", 1.0, 307), ("mixed", "bursty", 1.25, 308),
    ], 2500),
}
