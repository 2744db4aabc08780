"""The serving verifiers' secret: the shared trusted module (``evolve.evaluators.secret_seeds``).

Every built-in trace's streams derive from ``problems/serving*/data/seeds.json``
(docs/serving.md, "the seeds").  Trusted side only.
"""

from __future__ import annotations

from pathlib import Path

from evolve.evaluators.secret_seeds import SEEDS_FILE, file_label, streams
from evolve.evaluators.secret_seeds import load_secret as _load

__all__ = ["SEEDS_FILE", "file_label", "load_secret", "streams"]


def load_secret(problem_dir: Path) -> bytes:
    """The serving problem's secret (one-line UserError for a missing or bad seeds file)."""
    return _load(problem_dir, "the serving verifier seeds its built-in traces")
