"""The time a batch run charges each instance is the kernel's count of the candidate's CPU, read
by the zygote as each result line arrives (``supervise.line_cpu_ns``), never a number the
candidate writes; so a program's MAP-Elites cell on a time dimension does not move with the wall
clock (how busy the machine is, or a sleep).

Real sandboxes, and `evolve eval` as a subprocess, on a copy of the toy problem (a plain batch
verifier: no ``interact``, no ``drive``) with an ``ms_per_instance`` feature dimension.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.population import cell_key, feature_values
from evolve.problem import load_problem

TOY = Path(__file__).parent / "toy_problem"
SPIN_S = 0.025  # CPU each instance of the spinning programs burns (their own process_time)
LIE_S = 123456.0  # what the liar says each instance took

ORDER = "    return sorted(range(len(x)), key=lambda i: -x[i])\n"
SPIN = f"""
import time

def order(x):
    end = time.process_time() + {SPIN_S}
    while time.process_time() < end:
        pass
{ORDER}"""
# Says every instance took LIE_S: its lines carry the claim (the child's encoder, replaced from
# the candidate's module), and the child's own clock is frozen, as a liar would do both.
LIAR = f"""
import sys
import time

_child = sys.modules["evolve.sandbox.child"]
_real = _child._encode

def _claim(*args):
    return _real(*args)[:-1] + b', "seconds": {LIE_S}}}'

_child._encode = _claim
_spin_until = time.process_time
time.perf_counter = time.monotonic = lambda: 0.0

def order(x):
    end = _spin_until() + {SPIN_S}
    while _spin_until() < end:
        pass
{ORDER}"""
HONEST = f"def order(x):\n{ORDER}"
SLEEPER = f"import time\n\ndef order(x):\n    time.sleep(0.1)\n{ORDER}"


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy problem with a second feature dimension: ms per instance, 6 bins of 10 ms."""
    folder = tmp_path_factory.mktemp("timed") / "toy"
    shutil.copytree(TOY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text().replace(
        "[run]", '[[features]]\nname = "ms_per_instance"\nbins = 6\nmin = 0\nmax = 60\n\n[run]', 1))
    return folder


def _evaluate(toy: Path, programs: dict[str, str]) -> dict[str, tuple[object, dict[str, float], str]]:
    """Each program's (score, metrics, cell) on train, in one real sandbox."""
    problem = load_problem(str(toy))
    specs = problem.spec.features
    assert [f.name for f in specs] == ["code_length", "ms_per_instance"]
    out = {}
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for name, code in programs.items():
            evaluation = evaluator.run_split(code, problem.instances("train"), "train")
            assert evaluation.ok, evaluation.feedback
            cell = cell_key(specs, feature_values(specs, len(HONEST), evaluation.metrics))  # one length: time decides
            out[name] = (evaluation.score, evaluation.metrics, cell)
    return out


def test_a_candidate_lying_about_its_time_is_charged_its_cpu(toy: Path) -> None:
    got = _evaluate(toy, {"spin": SPIN, "liar": LIAR, "honest": HONEST})
    spin, liar, honest = got["spin"], got["liar"], got["honest"]
    # The sum over a batch is the kernel's count from the work order to the last line, so each
    # spinning program is charged at least the CPU it spun; the liar exactly like the honest spinner.
    for _, metrics, _ in (spin, liar):
        assert 1000 * SPIN_S <= metrics["ms_per_instance"] < 1000 * LIE_S
    assert liar[2] == spin[2] != honest[2]  # the cell of its CPU, not of its claim (the last bin)
    assert liar[0] == spin[0] == honest[0]  # the same schedules: the same score


def test_waiting_is_not_charged_so_the_cell_does_not_move(toy: Path) -> None:
    """A program that sleeps 0.1 s per instance waits as one does on a busy machine: its wall
    time grows, its CPU does not, and it lands in the cell of the same program that does not wait."""
    got = _evaluate(toy, {"sleeper": SLEEPER, "honest": HONEST})
    assert got["sleeper"][1]["ms_per_instance"] < 100.0
    assert got["sleeper"][2] == got["honest"][2]


def test_evolve_eval_reports_the_trusted_time_not_the_claim(toy: Path, tmp_path: Path) -> None:
    program = tmp_path / "liar.py"
    program.write_text(LIAR)
    command = [sys.executable, "-m", "evolve.cli", "eval", str(toy), str(program), "--split", "train"]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    seconds = [i["seconds"] for i in result["instances"]]
    assert len(seconds) == 4 and all(0 <= s < LIE_S for s in seconds), seconds
    assert sum(seconds) >= 4 * SPIN_S and result["metrics"]["ms_per_instance"] >= 1000 * SPIN_S
    table = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and "123456" not in table.stdout + table.stderr
    assert "ms" in table.stdout  # the table does show a time (the trusted one)
