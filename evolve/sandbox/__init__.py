"""Isolated execution of candidate code: a warm zygote per worker, one fork per candidate.

See docs/sandbox.md for the design and for what it does not defend against.
"""

from evolve.sandbox.controller import Sandbox
from evolve.sandbox.session import Reply, SandboxSession, SessionEnded
from evolve.sandbox.types import (
    InstanceRun,
    SandboxError,
    SandboxLimits,
    SandboxOutcome,
    Status,
)

__all__ = [
    "InstanceRun",
    "Reply",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxOutcome",
    "SandboxSession",
    "SessionEnded",
    "Status",
]
