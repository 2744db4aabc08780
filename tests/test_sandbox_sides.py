"""Each verifier's sandbox side: what the warm worker of every shipped problem holds, and no more.

The worker's modules are what every candidate's process starts with, and after
isolation nothing else of our code can be imported.  So the trusted side
(references, reports, pictures, solvers, the verifier itself) must never be
among them.  Sizes: bench/worker_rss.py prints them; docs/sandbox.md states them.
"""

from __future__ import annotations

import pytest

from evolve.problem import discover, load_problem
from evolve.sandbox import Sandbox, SandboxLimits
from evolve.sandbox.side import side_of, whole_module_warning
from evolve.verifier import Instance

# What of evolve.evaluators each problem's worker may hold: its sandbox side.
SANDBOX_SIDES = {
    "jssp": {"jssp", "jssp.candidate_side", "jssp.builder"},
    "moe": {"moe", "moe.candidate_side"},
    "serving": {"serving", "serving.candidate_side"},
    "serving_router": {"serving", "serving.candidate_side"},
    "smtt": {"smtt", "smtt.candidate_side", "smtt.dispatch"},
    "smtt_rule": {"smtt", "smtt.candidate_side", "smtt.dispatch"},
}
NEVER = ("ortools", "matplotlib", "pandas", "scipy", "litellm", "openai", "ray", "pydantic", "sqlite3")
ENGINE_ALLOWED = ("evolve.sandbox", "evolve.verifier", "evolve.errors")
RSS_BOUND_MIB = 100  # numpy's warm worker is ~35-45 MiB here; OR-Tools alone would add ~60
LIMITS = SandboxLimits(timeout_s=10.0)


@pytest.fixture(scope="module")
def workers() -> dict[str, tuple[frozenset[str], int | None]]:
    """(modules, RSS kB) of each shipped problem's warm worker, started as a run starts it."""
    found = {}
    for name, problem in sorted(discover().items()):
        if problem.origin == "builtin":
            with Sandbox(problem.spec.verifier.entry, LIMITS, slot=30, extra_sys_path=problem.sys_path) as sb:
                found[name] = (sb.worker_modules, sb.worker_rss_kb)
    return found


def test_every_shipped_problem_is_checked(workers) -> None:
    assert set(workers) == set(SANDBOX_SIDES)


@pytest.mark.parametrize("name", sorted(SANDBOX_SIDES))
def test_the_warm_worker_holds_only_the_sandbox_side(workers, name: str) -> None:
    modules, rss_kb = workers[name]
    ours = {m.removeprefix("evolve.evaluators.") for m in modules if m.startswith("evolve.evaluators.")}
    assert ours == SANDBOX_SIDES[name]
    engine = {m for m in modules if m.startswith("evolve.") and not m.startswith(("evolve.evaluators", *ENGINE_ALLOWED))}
    assert not engine, f"engine modules in the candidate's process: {sorted(engine)}"
    heavy = {m for m in modules if m.split(".")[0] in NEVER}
    assert not heavy, f"{name}: the worker imports {sorted(heavy)}"
    assert rss_kb is not None and rss_kb / 1024 < RSS_BOUND_MIB, f"{name}: worker RSS {rss_kb} kB"


@pytest.mark.parametrize("name", sorted(SANDBOX_SIDES))
def test_the_warm_worker_holds_no_module_only_its_view_needed(workers, name: str) -> None:
    """The allowed packages' files are found with importlib.metadata (and email, zipfile) by the
    trusted process: in the worker they would only grow every candidate's fork."""
    modules, _ = workers[name]
    setup_only = {m for m in modules if m.split(".")[0] == "email" or m.startswith("importlib.metadata")}
    assert not setup_only, f"{name}: the worker holds {sorted(setup_only)}"


def test_the_sandbox_side_is_where_solve_and_respond_are_defined() -> None:
    smtt = side_of(type(load_problem("smtt_rule").verifier))
    assert (smtt.solve, smtt.respond) == ("evolve.evaluators.smtt.candidate_side:solve_rule",
                                         "evolve.evaluators.smtt.candidate_side:respond_rule")
    moe = side_of(type(load_problem("moe").verifier))
    assert moe.solve is None and moe.modules == ("evolve.verifier", "evolve.evaluators.moe.candidate_side")


def test_a_candidate_cannot_import_the_trusted_side_or_find_it_loaded() -> None:
    problem = load_problem("smtt")
    source = '''
import sys

def schedule(p, d):
    found = sorted(m for m in sys.modules if "references" in m or "verifier" in m.split(".")[-1:])
    try:
        import evolve.evaluators.smtt.references as refs
        found.append("imported " + str(len(refs.load_shipped())))
    except Exception as exc:
        found.append(type(exc).__name__)
    raise ValueError(repr(found))
'''
    instance = problem.instances("quick")[0]
    with Sandbox(problem.spec.verifier.entry, LIMITS, slot=31, extra_sys_path=problem.sys_path) as sb:
        if not sb.facts["filesystem"][0]:
            pytest.skip(f"no filesystem view here: {sb.facts['filesystem'][1]}")
        outcome = sb.run(source, "schedule", [instance])
    # evolve.verifier holds the record types only; no reference module, nothing importable.
    assert outcome.runs[0].error == "ValueError: ['evolve.verifier', 'ModuleNotFoundError'] (line 11)", outcome


def test_a_verifier_whose_solve_sits_in_its_own_module_still_works() -> None:
    """Plug-ins written before the split (solve inline in the verifier class) run unchanged:
    their sandbox side is then the verifier's module."""
    with Sandbox("sandbox_fixtures:EchoVerifier", LIMITS, slot=32) as sb:
        assert "sandbox_fixtures" in sb.worker_modules
        outcome = sb.run("def f(x):\n    return x + 1\n", "f", [Instance("a", "g", {"x": 1})])
    assert outcome.runs[0].solution == 2


def test_a_verifier_without_a_sandbox_side_of_its_own_is_named_in_one_warning_line() -> None:
    with Sandbox("sandbox_fixtures:EchoVerifier", LIMITS, slot=33) as sb:
        line = whole_module_warning("sandbox_fixtures:EchoVerifier", sb.side)
    assert line is not None and "\n" not in line and "all of sandbox_fixtures" in line
    for name in SANDBOX_SIDES:
        problem = load_problem(name)
        entry = problem.spec.verifier.entry
        assert whole_module_warning(entry, side_of(type(problem.verifier))) is None, name
