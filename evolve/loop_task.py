"""One iteration in flight, as the controller keeps it between its proposal and its commit."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
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


class Arrivals:
    """Finished futures, in the order they finished, for the controller's thread to take.

    With one iteration at a time and lookahead, the next proposal's answer is held until the
    evaluation ahead is archived (loop.py). An answer that comes while that evaluation runs
    is *parked* here instead of waking the controller's thread, which would only set it aside
    (with the instant local model that was every iteration: one thread wake-up in ~7); the
    evaluation's own arrival hands it over (``unpark``). Parked or not, the controller takes
    the two in the same order.
    """

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Future] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._parking = False
        self._parked: list[Future] = []

    def put(self, future: Future) -> None:
        """A future's done-callback."""
        self.queue.put(future)

    def park_until_unparked(self) -> None:
        """From now on answers wait for ``unpark`` (the controller launched a held proposal)."""
        with self._lock:
            self._parking = True

    def put_or_park(self, future: Future) -> None:
        """A held proposal's done-callback."""
        with self._lock:
            if self._parking:
                self._parked.append(future)
                return
        self.queue.put(future)

    def unpark(self) -> list[Future]:
        """The answers parked so far (in the order they came); later ones arrive as usual."""
        with self._lock:
            self._parking = False
            parked, self._parked = self._parked, []
        return parked
