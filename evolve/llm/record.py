"""Record completions to JSONL, and replay them later without any model or network.

A record line is ``{"iteration", "model", "text", "prompt_tokens",
"completion_tokens", "cost_usd"}`` -- never the prompt (which may quote user
data) and never a key -- plus ``"lookahead": false`` when the run sent no request
ahead (``files:``, or ``lookahead = false``), so that its replay does not either:
the parents, and so the programs, depend on it. Replaying returns the recorded
cost, so a replayed run reports what the original run spent.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from evolve.errors import UserError
from evolve.llm.base import LLM, Completion, LLMConfigError, LLMError, ProposalRequest

RECORD_KEYS = ("iteration", "model", "text", "prompt_tokens", "completion_tokens", "cost_usd")


@dataclass
class RecordingLLM:
    """Wraps a backend; appends one flushed JSON line per successful completion."""

    inner: LLM
    path: Path
    name: str = ""
    lookahead: bool = True  # the loop's, set as the run starts
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _file: IO[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name

    def complete(self, request: ProposalRequest) -> Completion:
        # Failures propagate unrecorded: replaying that iteration then fails too.
        completion = self.inner.complete(request)
        record = {
            "iteration": request.iteration,
            "model": completion.model,
            "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "cost_usd": completion.cost_usd,
        }
        if not self.lookahead:
            record["lookahead"] = False
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            # Flushed per line: a crashed or killed run keeps every paid-for reply.
            self._file.write(line + "\n")
            self._file.flush()
        return completion

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _bad_line(path: Path, lineno: int, why: str) -> UserError:
    return UserError(f"replay file {path} line {lineno}: {why}; expected one JSON object per "
                     f"line with keys {', '.join(RECORD_KEYS)} (as written by --record)")


def _parse_record(path: Path, lineno: int, raw: str) -> dict[str, Any]:
    try:
        rec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _bad_line(path, lineno, f"not JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise _bad_line(path, lineno, "not a JSON object")
    it = rec.get("iteration")
    if not isinstance(it, int) or isinstance(it, bool) or it < 0:
        raise _bad_line(path, lineno, f"'iteration' is {it!r}, not a non-negative integer")
    for key in ("model", "text"):
        if not isinstance(rec.get(key), str):
            raise _bad_line(path, lineno, f"'{key}' is missing or not a string")
    if not rec["model"].isprintable():
        # The archive keeps it as the programs' model, and `evolve export` writes it into the
        # module's comment header: a line break there put code above the program, run when the
        # exported rule was imported (fourteenth red team); `evolve review` printed its escapes raw.
        raise _bad_line(path, lineno, f"'model' is {rec['model'][:60]!r}, which holds a line break "
                                      "or control character; a model name is one printable line")
    for key in ("prompt_tokens", "completion_tokens"):
        value = rec.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad_line(path, lineno, f"'{key}' is {value!r}, not a non-negative integer")
    if not isinstance(rec.get("lookahead", True), bool):
        raise _bad_line(path, lineno, f"'lookahead' is {rec['lookahead']!r}, not true or false")
    cost = rec.get("cost_usd", 0.0)
    if (not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost < 0
            or not math.isfinite(cost)):
        raise _bad_line(path, lineno, f"'cost_usd' is {cost!r}, not a non-negative number")
    return rec


def load_records(path: Path) -> dict[int, list[dict[str, Any]]]:
    if not path.is_file():
        raise UserError(f"replay file {path} does not exist; expected a JSONL file written by "
                        "--record")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"replay file {path} cannot be read ({type(exc).__name__}); expected a "
                        "UTF-8 JSONL file written by --record") from None
    by_iteration: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for lineno, raw in enumerate(lines, start=1):
        if raw.strip():
            rec = _parse_record(path, lineno, raw)
            by_iteration[rec["iteration"]].append(rec)
    if not by_iteration:
        raise UserError(f"replay file {path} has no completions; expected a JSONL file written "
                        "by --record")
    return dict(by_iteration)


class ReplayEnded(LLMConfigError):
    """A request past the recording's last iteration: every later one fails the same way.

    The loop stops the run at the first one (``ModelHealth``, exit 3) instead of failing
    proposal after proposal and reporting a finished run.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="replay_end")


@dataclass
class ReplayLLM:
    """Serves recorded completions by ``request.iteration``, in recorded order."""

    path: Path
    name: str = ""
    _records: dict[int, list[dict[str, Any]]] = field(default_factory=dict, init=False,
                                                      repr=False)
    _used: dict[int, int] = field(default_factory=lambda: defaultdict(int), init=False,
                                  repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"replay:{self.path}"
        self._records = load_records(self.path)  # validate eagerly: a bad file is a UserError

    @property
    def lookahead(self) -> bool:
        """The recorded run's: a replay sends requests ahead only if it did."""
        return all(rec.get("lookahead", True) for recs in self._records.values() for rec in recs)

    def complete(self, request: ProposalRequest) -> Completion:
        with self._lock:
            last = max(self._records)
            if request.iteration > last:
                raise ReplayEnded(
                    f"replay {self.path} ends at iteration {last} (its last recorded completion) "
                    f"and the run asked for iteration {request.iteration}; replay with --iterations "
                    f"{last} or fewer")
            recs = self._records.get(request.iteration, [])
            index = self._used[request.iteration]
            if index >= len(recs):
                more = f" (all {len(recs)} recorded used)" if recs else ""
                raise LLMError(f"replay {self.path} has no completion for iteration "
                               f"{request.iteration}{more}")
            self._used[request.iteration] = index + 1
            rec = recs[index]
        return Completion(
            text=rec["text"],
            model=rec["model"],
            prompt_tokens=rec.get("prompt_tokens", 0),
            completion_tokens=rec.get("completion_tokens", 0),
            cost_usd=float(rec.get("cost_usd", 0.0)),
            seconds=0.0,
        )
