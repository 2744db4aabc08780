"""What isolation this machine gives a candidate: ``evolve doctor`` and the one-line warning."""

from __future__ import annotations

from typing import Any

from evolve.sandbox.controller import Sandbox
from evolve.sandbox.types import SandboxLimits

ASPECTS = ("filesystem", "pid namespace", "network", "uid", "seccomp", "cgroup limits")


class ProbeVerifier:
    """The smallest verifier: enough to start a real sandbox and fork one candidate."""

    direction = "minimize"

    @staticmethod
    def solve(heuristic: Any, instance: Any) -> Any:
        return heuristic(instance)


def isolation_facts() -> dict[str, tuple[bool, str]]:
    """Start a sandbox as a run would and report, per aspect, (in force, how or why not)."""
    with Sandbox(f"{__name__}:ProbeVerifier", SandboxLimits(timeout_s=10.0)) as sandbox:
        return dict(sandbox.facts)


def weaknesses(facts: dict[str, tuple[bool, str]]) -> str | None:
    """One line on what candidates can reach here that they could not with full isolation."""
    gaps = []
    if not facts.get("filesystem", (True, ""))[0]:
        gaps.append("read the checkout, problems/*/data and runs/ (no filesystem view)")
    if not facts.get("pid namespace", (True, ""))[0] and not facts.get("uid", (True, ""))[0]:
        gaps.append("see and signal your other processes")
    if not gaps:
        return None
    return "sandbox: candidates can " + " and ".join(gaps) + " on this machine; see `evolve doctor`"
