"""No candidate can read a problem's seeds file (docs/sandbox.md): one probe, every secret-seeded problem.

The serving, serving_router, moe, jssp, smtt and smtt_rule verifiers seed their generated instances
from ``data/seeds.json`` (evaluators/secret_seeds.py). The probe below looks for that file where
the checkout has it, and for the trusted modules that read it, at import in the candidate's
process and raises what it saw. In the trusted process it reads the file (the control); through
the real sandbox it must see neither the file nor its folder, nor any of those modules.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from shipped_evaluator import shipped_evaluator

from evolve.evaluators.secret_seeds import SEEDS_FILE, load_secret

LOOK_FOR_SEEDS = """
import sys

def _look():
    found = []
    for path in PATHS:
        try:
            with open(path) as f:
                found.append("read " + str(len(f.read())))
        except OSError as exc:
            found.append(type(exc).__name__)
    found += sorted(m for m in sys.modules if m == "evolve.evaluators.secret_seeds"
                    or (m.startswith(PACKAGE) and m not in SANDBOX_SIDE))
    return found

_FOUND = _look()

def CALL:
    raise ValueError("seen: " + repr(_FOUND))
"""

# problem, the rule's signature, its verifier package, the modules of it the sandbox may load.
CASES = [
    ("serving", "priority(**_)", "evolve.evaluators.serving.", ("evolve.evaluators.serving.candidate_side",)),
    ("serving_router", "route(**_)", "evolve.evaluators.serving.", ("evolve.evaluators.serving.candidate_side",)),
    ("moe", "rebalance_experts(*_)", "evolve.evaluators.moe.", ("evolve.evaluators.moe.candidate_side",)),
    ("jssp", "priority(**_)", "evolve.evaluators.jssp.",
     ("evolve.evaluators.jssp.candidate_side", "evolve.evaluators.jssp.builder")),
    ("smtt", "schedule(*_)", "evolve.evaluators.smtt.",
     ("evolve.evaluators.smtt.candidate_side", "evolve.evaluators.smtt.dispatch")),
    ("smtt_rule", "priority(**_)", "evolve.evaluators.smtt.",
     ("evolve.evaluators.smtt.candidate_side", "evolve.evaluators.smtt.dispatch")),
]


@pytest.mark.parametrize(("name", "call", "package", "sandbox_side"), CASES, ids=[c[0] for c in CASES])
def test_the_trusted_side_reads_the_seeds_and_the_candidate_cannot(
        name: str, call: str, package: str, sandbox_side: tuple[str, ...]) -> None:
    with shipped_evaluator(name) as (problem, evaluator):
        path = problem.dir / SEEDS_FILE
        assert len(load_secret(problem.dir, name)) == 16 and json.loads(path.read_text())["entropy"]
        source = (f"PATHS = {[str(path), str(path.parent)]!r}\nPACKAGE = {package!r}\n"
                  f"SANDBOX_SIDE = {sandbox_side!r}\n" + LOOK_FOR_SEEDS.replace("CALL", call))
        control: dict[str, Any] = {}
        exec(compile(source, "<look>", "exec"), control)  # in the trusted process: the probe sees the file
        assert control["_FOUND"][:2] == [f"read {len(path.read_text())}", "IsADirectoryError"]
        if not evaluator._sandbox(0).facts["filesystem"][0]:
            pytest.skip("no filesystem view here")
        evaluation = evaluator.run_split(source, problem.instances("quick")[:1], "quick")
    assert not evaluation.ok
    assert "seen: ['FileNotFoundError', 'FileNotFoundError']" in evaluation.feedback, evaluation.feedback
