"""`evolve export` of moe, serving and serving_router: the exported module, run by an interpreter
that cannot import evolve (numpy the only package), drives the verifier to the same per-instance
objectives as the sandboxed program. Its answers travel over a pipe to the trusted engine (real
runs, real subprocesses): for these problems the decision frame is the verifier's own harness or
engine simulator, which the export does not carry (docs/review.md says why)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_export_dispatch import LOAD, exported, numpy_only

import evolve
from evolve.problem import load_problem

# Serves calls of the exported function, one JSON line in, one out, from a numpy-only path.
SERVE = LOAD + """
import numpy as np
function = getattr(rule, sys.argv[2])
arg = lambda v: np.asarray(v) if isinstance(v, list) else v
for line in sys.stdin:
    call = json.loads(line)
    out = function(*map(arg, call["args"]), **{k: arg(v) for k, v in call["kwargs"].items()})
    parts = list(out) if isinstance(out, tuple) else None
    value = [np.asarray(p).tolist() for p in parts] if parts is not None else np.asarray(out).tolist()
    print(json.dumps({"tuple": parts is not None, "value": value}), flush=True)
"""


class Standalone:
    """The exported function, called in a `python -I -S` child with numpy as its only package."""

    def __init__(self, folder: Path, function: str) -> None:
        self.child = subprocess.Popen([sys.executable, "-I", "-S", "-c", SERVE, str(numpy_only(folder / "site")),
                                       function], cwd=folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        plain = lambda v: v.tolist() if isinstance(v, np.ndarray) else float(v) if isinstance(v, np.floating) else v  # noqa: E731
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(json.dumps({"args": [plain(a) for a in args],
                                           "kwargs": {k: plain(v) for k, v in kwargs.items()}}) + "\n")
        self.child.stdin.flush()
        line = self.child.stdout.readline()
        assert line, "the exported module's process ended"
        self.calls += 1
        answer = json.loads(line)
        if answer["tuple"]:
            return tuple(np.asarray(part) for part in answer["value"])
        return np.asarray(answer["value"])

    def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        assert self.child.wait(timeout=60) == 0


def drive(problem: str, instance: Any, function: Standalone) -> Any:
    """The verifier's record of ``instance`` with ``function`` answering every call."""
    verifier = load_problem(problem).verifier
    if problem == "moe":
        from evolve.evaluators.moe.harness import local_call

        return verifier.run(instance, local_call(function))
    from evolve.evaluators.serving.session import local_decide

    return verifier.simulate(instance, local_decide(verifier.respond, function))


@pytest.mark.parametrize("problem, function", [("moe", "rebalance_experts"), ("serving", "priority"),
                                               ("serving_router", "route")])
def test_an_exported_program_reproduces_the_verifiers_objectives_without_evolve(
        tmp_path: Path, problem: str, function: str) -> None:
    rule = exported(problem, tmp_path)
    text = rule.read_text()
    assert "# requires:  numpy (does not import evolve)" in text and "# appended:" not in text
    assert text.count("# problem:") == 1 and "# function:  " in text  # a signature over several lines
    compile(text, str(rule), "exec")
    verifier = load_problem(problem).verifier
    instances = load_problem(problem).instances("quick")
    standalone = Standalone(tmp_path, function)
    try:
        mine = {i.name: verifier.score(i, drive(problem, i, standalone)).objective for i in instances}
    finally:
        standalone.close()
    assert standalone.calls >= len(instances)
    evaluation = evolve.evaluate(problem, rule, split="quick")
    assert evaluation.ok, evaluation.feedback
    assert mine == {r.name: r.objective for r in evaluation.instances}
