"""One iteration in flight, as the controller keeps it between its proposal and its commit."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from evolve.archive import Program
from evolve.llm.base import Completion


@dataclass
class Task:
    """One iteration in flight: what the loop knows of it from its proposal to its commit."""

    kind: str  # "propose" or "evaluate"
    iteration: int
    island: int
    parent: Program
    mode: str
    completion: Completion | None = None
    child: str = ""
    child_hash: str = ""
    child_key: str | None = None  # behaviour key (evolve.gp.semantics), when the problem has rules
    retry: int = 0
    started: float = field(default_factory=time.perf_counter)
    # Set by the evaluation thread as it takes the child up (lookahead waits for it: loop.py).
    dispatched: threading.Event = field(default_factory=threading.Event, repr=False)
