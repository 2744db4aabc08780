"""Refitting the reported best above its gate on unfloored gaps of the fit split (``refit_on``)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolve.archive import Archive, Program
from evolve.cli import app
from evolve.config import resolve_settings
from evolve.errors import UserError
from evolve.evaluators.smtt.generator import RULE_TRAIN_REPLICATES, split_instances
from evolve.gp.codegen import parse
from evolve.gp.constants import above_gate_paths, below_gate_paths
from evolve.gp.program import rule_tree, with_rule
from evolve.gp.screen import Screen
from evolve.gp.tree import get, replace
from evolve.problem import load_problem
from evolve.refit import REFIT, refit
from evolve.review import review_run
from evolve.selection import REFIT_META, clear_selection, refit_of, refit_reported, reported_best

SMTT_INPUTS = {"t", "p", "d", "remaining_work", "jobs_left", "n", "p_max", "p_mean", "p_min", "d_min",
               "d_mean", "d_max"}
GATE = parse("n - 75", SMTT_INPUTS)
MDDC = ("np.maximum(1.1 * p + t, d) * (1 + np.minimum(p / (t + p_max), 1) ** 2 / (1 + np.minimum(p / (t + p_max), "
        "1) ** 2)) + p / (t + p_mean)")
PHI = "np.maximum((t + remaining_work - d_max) / remaining_work, 0)"


def test_only_the_coefficients_that_act_above_the_gate_are_refitted() -> None:
    split = parse(f"np.where(n - 75 > 0, {MDDC} + 1.5 * ({PHI} * p), np.maximum(d, t + 1.04 * p) + 0.2 * p)",
                  SMTT_INPUTS)
    assert [(at, get(split, at)[1]) for at in above_gate_paths(split, (GATE,))] == [((2, 2, 1), 1.5)]
    gated = parse("np.maximum(d, t + 1.1 * p) + np.where(n - 75 > 0, 0.4, 0.2) * p"
                  " + np.where(n - 75 > 0, 0.3, 0.7) * d", SMTT_INPUTS)
    assert sorted(get(gated, at)[1] for at in above_gate_paths(gated, (GATE,))) == [0.3, 0.4]
    assert above_gate_paths(parse(MDDC, SMTT_INPUTS), (GATE,)) == []  # no gate: nothing to refit


def test_refit_below_fits_every_constant_of_the_side_below_the_gate_and_nothing_above() -> None:
    split = parse(f"np.where(n - 75 > 0, {MDDC} + 1.5 * ({PHI} * p), np.maximum(d, t + 1.04 * p) + 0.2 * p)",
                  SMTT_INPUTS)
    assert sorted(get(split, at)[1] for at in below_gate_paths(split, (GATE,))) == [0.2, 1.04]
    assert all(at[0] == 3 for at in below_gate_paths(split, (GATE,)))  # the side below, never T nor c1
    gated = parse("np.maximum(d, t + 1.1 * p) + np.where(n - 75 > 0, 0.4, 0.2) * p"
                  " + np.where(n - 75 > 0, 0.3, 0.7) * d", SMTT_INPUTS)
    assert sorted(get(gated, at)[1] for at in below_gate_paths(gated, (GATE,))) == [0.2, 0.7]
    assert below_gate_paths(parse(MDDC, SMTT_INPUTS), (GATE,)) == []


def test_the_fit_split_is_new_instances_at_every_size_with_shipped_references() -> None:
    fit = split_instances("fit")
    sizes = {group: sum(g.group == group for g in fit) for group in {g.group for g in fit}}
    assert sizes == {"n=20": 500, "n=50": 100, "n=100": 200, "n=200": 300, "n=500": 50}
    others = {(g.p.tobytes(), g.d.tobytes()) for split in ("train", "valid", "test", "quick")
              for g in split_instances(split, RULE_TRAIN_REPLICATES)}
    assert not {(g.p.tobytes(), g.d.tobytes()) for g in fit} & others
    instances = load_problem("smtt_rule").instances("fit")  # every reference is shipped
    assert [i.name for i in instances] == [g.name for g in fit]
    assert {i.reference.kind for i in instances} <= {"best_known", "optimal"}
    with pytest.raises(UserError, match="unknown split 'fit'"):  # smtt's search has no fit split
        load_problem("smtt").instances("fit")


def _archive_with(path: Path, code: str) -> tuple[Archive, Program]:
    """An archive whose one program is ``code``, best on train (score 0) whatever it scores there."""
    archive = Archive(path, create=True)
    program = Program(code=code, code_hash="chosen", parent_id=None, island=1, iteration=15, generation=4,
                      origin="llm", model="gp", status="ok", score=0.0, stage="train", metrics={},
                      instances=[], feedback="", features=None, eval_seconds=0.0)
    archive.add_program(program)
    return archive, program


def test_a_refit_moves_only_c1_reports_the_child_and_a_new_loop_clears_it(tmp_path: Path) -> None:
    problem = load_problem("smtt_rule")
    rule = problem.spec.rule[0]
    # MDDC split at the gate with the late share's surcharge far too strong above it.
    tree = parse(f"np.where(n - 75 > 0, {MDDC} + 6.0 * ({PHI} * p), {MDDC})", SMTT_INPUTS)
    code = with_rule(problem.seed_code, rule, tree)
    archive, chosen = _archive_with(tmp_path / "archive.sqlite", code)
    settings = resolve_settings({}, None, {"refit_on": "fit", "refit_sweeps": 2})
    try:
        done = refit_reported(problem, settings, archive)
        assert done is not None and done.split == "fit" and done.after > done.before
        child = archive.program(done.program_id)
        assert child.parent_id == chosen.id and child.origin == REFIT and child.status == "ok"
        assert child.score is not None  # scored on train through the sandbox, as every program
        refitted = rule_tree(child.code, rule)
        moved = [at for at in above_gate_paths(tree, (GATE,)) if get(refitted, at) != get(tree, at)]
        assert moved == [(2, 2, 1)] and 0 < get(refitted, (2, 2, 1))[1] < 6.0
        assert refitted == replace(tree, (2, 2, 1), get(refitted, (2, 2, 1)))  # nothing else changed
        # The screen's figure is the one the fit split's gaps give, against the references.
        assert Screen(problem, "fit", floor=False)({"priority": refitted}) == pytest.approx(done.after)
        assert reported_best(archive).id == done.program_id and refit_of(archive) == done
        clear_selection(archive)  # the loop runs again: the chosen program and its refit are gone
        assert archive.get_meta(REFIT_META) is None and reported_best(archive).id == chosen.id  # best on train
    finally:
        archive.close()


def test_refit_below_moves_the_side_below_the_gate_after_c1_and_the_default_leaves_it(tmp_path: Path) -> None:
    problem = load_problem("smtt_rule")
    rule = problem.spec.rule[0]
    # Above the gate c1 far too strong; below it MDD with a surcharge on long jobs far too strong.
    tree = parse(f"np.where(n - 75 > 0, {MDDC} + 6.0 * ({PHI} * p), np.maximum(d, t + p) + 4.0 * p)", SMTT_INPUTS)
    code = with_rule(problem.seed_code, rule, tree)
    below = below_gate_paths(tree, (GATE,))
    for refit_below in (None, "fit+train"):
        archive, chosen = _archive_with(tmp_path / f"below-{refit_below is not None}.sqlite", code)
        settings = resolve_settings({}, None, {"refit_on": "fit", "refit_sweeps": 2, "refit_below": refit_below})
        try:
            done = refit(problem, settings, archive, chosen)
            assert done is not None and done.after > done.before
            refitted = rule_tree(archive.program(done.program_id).code, rule)
            assert 0 < get(refitted, (2, 2, 1))[1] < 6.0  # c1 refitted either way
            moved = [at for at in below if get(refitted, at) != get(tree, at)]
            # The figure reported is the fit split's, whatever the side below was fitted on.
            assert Screen(problem, "fit", floor=False)({"priority": refitted}) == pytest.approx(done.after)
            if refit_below:
                assert moved and "below the gate" in done.changes and "above the gate" in done.changes
            else:
                assert moved == [] and refitted[3] == tree[3]  # the default: the side below as the search left it
            assert refitted[2][1] == tree[2][1] and refitted[1] == tree[1]  # T and the gate never change
        finally:
            archive.close()


def test_a_rule_without_a_gate_is_not_refitted(tmp_path: Path) -> None:
    problem = load_problem("smtt_rule")
    code = with_rule(problem.seed_code, problem.spec.rule[0], parse(MDDC, SMTT_INPUTS))
    archive, chosen = _archive_with(tmp_path / "archive.sqlite", code)
    try:
        settings = resolve_settings({}, None, {"refit_on": "fit"})
        assert refit(problem, settings, archive, chosen) is None and archive.program_count() == 1
    finally:
        archive.close()


def test_refit_settings_are_strict_and_a_problem_without_a_fit_split_fails_before_the_search(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="refit_on"):
        resolve_settings({}, None, {"refit_on": "test"})
    with pytest.raises(UserError, match="refit_sweeps"):
        resolve_settings({}, None, {"refit_sweeps": "4"})
    config = tmp_path / "c.toml"
    config.write_text('refit_on = "fit"\n')
    done = CliRunner().invoke(app, ["run", "smtt", "--config", str(config), "--out", str(tmp_path / "r")])
    assert done.exit_code == 2 and "refit_on = 'fit'" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "r" / "archive.sqlite").exists()


def test_a_finished_run_reports_its_refit_in_best_py_and_review(tmp_path: Path) -> None:
    """The bench script refits a run made without ``refit_on``: what review and best.py show then."""
    problem = load_problem("smtt_rule")
    tree = parse(f"np.where(n - 75 > 0, {MDDC} + 6.0 * ({PHI} * p), {MDDC})", SMTT_INPUTS)
    code = with_rule(problem.seed_code, problem.spec.rule[0], tree)
    run = tmp_path / "run"
    run.mkdir()
    archive, _ = _archive_with(run / "archive.sqlite", code)
    archive.close()
    (run / "config.json").write_text(json.dumps({"problem": "smtt_rule", "problem_dir": str(problem.dir),
                                                 "settings": {"refit_sweeps": 1}}))
    done = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "bench" / "smtt_refit.py"), str(run),
                           "--sweeps", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(run / "archive.sqlite")
    (child_code,) = db.execute("SELECT code FROM programs WHERE origin = 'refit'").fetchone()
    db.close()
    assert (run / "best.py").read_text() == child_code and "refitted above the gate" in done.stdout
    review = review_run(run)
    assert review.best is not None and review.best.code == child_code
    assert review.to_json()["refit"]["split"] == "fit"
