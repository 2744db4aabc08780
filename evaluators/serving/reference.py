"""The reference policy's run on a trace, computed once per (trace, engine, SLOs) and cached.

Every instance's figures are relative to FCFS (round robin for the router) on
the same trace and engine.  Building instances, drawing pictures and scoring
several programs in one process all need that run; on a 19k-request trace it
is the most expensive thing the verifier does after the candidate's own run,
so it is kept here, keyed by the content of the trace and the engine.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evolve.evaluators.serving.records import EngineConfig, Trace

KEEP = 32  # reference runs kept per process (each holds two floats per request)


@dataclass(frozen=True)
class ReferenceRun:
    figures: dict[str, float]  # judge.reference_figures
    first_token: np.ndarray
    finish: np.ndarray
    steps: int
    decisions: int  # steps at which the reference policy's order could change the outcome


_CACHE: OrderedDict[str, ReferenceRun] = OrderedDict()


def trace_key(trace: Trace, engines: list[EngineConfig], extra: object) -> str:
    digest = hashlib.sha256()
    for arr in (trace.arrival, trace.prompt, trace.output, trace.predicted, trace.client):
        digest.update(np.ascontiguousarray(arr).tobytes())
    digest.update(json.dumps([e.to_data() for e in engines], sort_keys=True).encode())
    digest.update(repr(extra).encode())
    return digest.hexdigest()


def cached(key: str, compute: Callable[[], ReferenceRun]) -> ReferenceRun:
    hit = _CACHE.get(key)
    if hit is None:
        hit = compute()
        _CACHE[key] = hit
        while len(_CACHE) > KEEP:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return hit
