"""Plain data exchanged between the engine and the sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "timeout", "memory", "crash", "error"]


class SandboxError(RuntimeError):
    """The sandbox itself cannot work (worker does not start, instances do not transfer).

    Never raised for anything a candidate does: those become a ``SandboxOutcome``.
    """


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 30.0  # wall clock for the whole candidate run (all instances)
    memory_mb: int = 2048  # RLIMIT_AS of each process; with cgroups also all processes together
    max_processes: int = 1  # tasks (processes and threads) in all: 1 = no forking, no threads
    file_size_mb: int = 16  # RLIMIT_FSIZE
    max_output_mb: int = 64  # bytes read back from the candidate, beyond that -> failure

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        for name in ("memory_mb", "max_processes", "file_size_mb", "max_output_mb"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class InstanceRun:
    """One instance's raw outcome.  Untrusted: ``solution`` is whatever the candidate returned."""

    solution: Any
    error: str | None
    seconds: float


@dataclass
class SandboxOutcome:
    status: Status  # "ok" = the child ran to the end (instances may still have errors)
    runs: list[InstanceRun] = field(default_factory=list)  # partial on timeout/crash
    error: str | None = None  # one-line reason when status != "ok"
    stderr_tail: str = ""  # last ~2 KB of the candidate's stdout+stderr; never parsed
    wall_seconds: float = 0.0
