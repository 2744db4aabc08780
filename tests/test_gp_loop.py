"""The GP in the loop: duplicates cost no iteration, runs repeat and resume exactly, islands restart."""

from __future__ import annotations

from pathlib import Path

from evolve.archive import DUPLICATE, Archive
from evolve.config import GPSettings, resolve_settings
from evolve.gp import BehaviourKeys
from evolve.gp.islands import EPOCHS_META, IslandPolicy
from evolve.llm import make_llm
from evolve.loop import Controller
from evolve.problem import load_problem

RULE = '''
[rule]
function = "priority"
inputs = [{ name = "x", kind = "array", doc = "the numbers; the lowest priority goes first" }]
'''


def _toy_with_rule(toy_dir: Path) -> Path:
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text() + RULE)
    return toy_dir


def _run(toy_dir: Path, folder: Path, iterations: int, **overrides: object) -> tuple[Archive, object]:
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"iterations": iterations, "seed": 5, **overrides})
    folder.mkdir(exist_ok=True)
    archive = Archive(folder / "archive.sqlite", create=not (folder / "archive.sqlite").exists())
    llm = make_llm(settings.llm, seed=settings.seed, rules=problem.spec.rule, gp=settings.gp)
    progress = Controller(problem, settings, archive, llm, folder).run()
    return archive, progress


def _history(archive: Archive) -> list[tuple[str, int | None, float | None, int]]:
    programs = [archive.program(i) for i in range(1, archive.program_count() + 1)]
    return [(p.code_hash, p.parent_id, p.score, p.iteration) for p in programs]


def test_default_llm_is_the_gp_and_duplicates_are_asked_again_without_spending_iterations(
        toy_dir: Path, tmp_path: Path) -> None:
    archive, progress = _run(_toy_with_rule(toy_dir), tmp_path / "run", 30)
    assert progress.stop_reason == "iterations" and archive.attempt_count() == 30
    assert progress.duplicates_skipped > 0
    problem = load_problem(str(toy_dir))
    keys = BehaviourKeys(problem.spec.rule)
    evaluated = [archive.program(i).code for i in range(1, archive.program_count() + 1)]
    assert len({keys.key(code) for code in evaluated}) == len(evaluated)  # no two behave alike
    models = {archive.program(i).model for i in range(2, archive.program_count() + 1)}
    assert models == {"gp"}
    # The toy's optimum (largest number first) is one rule away from the seed.
    best = archive.best()
    assert best is not None and best.score is not None and best.score > archive.seed().score  # type: ignore[union-attr]


def test_a_gp_run_repeats_exactly_and_a_resumed_one_matches_it(toy_dir: Path, tmp_path: Path) -> None:
    toy = _toy_with_rule(toy_dir)
    straight, _ = _run(toy, tmp_path / "a", 24)
    again, _ = _run(toy, tmp_path / "b", 24)
    assert _history(straight) == _history(again)
    _run(toy, tmp_path / "c", 11)
    resumed, _ = _run(toy, tmp_path / "c", 24)
    assert _history(resumed) == _history(straight)


def test_a_stalled_island_restarts_and_the_restart_is_persisted(toy_dir: Path, tmp_path: Path) -> None:
    toy = _toy_with_rule(toy_dir)
    settings = {"gp": {"init": 1, "restart_after": 2, "children": 2}}
    straight, _ = _run(toy, tmp_path / "r", 40, **settings)
    epochs = straight.get_meta(EPOCHS_META)
    assert epochs is not None and any(start > island + 1 for island, start in enumerate(epochs))
    # The resumed run reads the epochs back and plans as the live one did (runs repeat exactly:
    # test_a_gp_run_repeats_exactly_and_a_resumed_one_matches_it).
    _run(toy, tmp_path / "t", 17, **settings)
    resumed, _ = _run(toy, tmp_path / "t", 40, **settings)
    assert _history(resumed) == _history(straight)
    assert straight.outcome_counts().get(DUPLICATE, 0) <= 40


def test_island_policy_plans_a_random_start_broods_and_restarts(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a.sqlite", create=True)
    policy = IslandPolicy(GPSettings(init=2, children=3, restart_after=4), islands=2)
    plans = [policy.plan(0, it, archive) for it in (1, 3, 5)]
    assert [p.fresh for p in plans] == [True, True, False] and not any(p.restart for p in plans)
    policy.launched(5, parent_id=42)
    brood = policy.plan(0, 7, archive)
    assert not brood.fresh and brood.parent_id == 42
    # Nothing better for init + restart_after attempts of island 0: it restarts.
    assert policy.plan(0, 1 + 2 * 6, archive).restart
    epochs = policy.restarted(0, 13)
    assert epochs == [13, 2] and policy.plan(0, 15, archive).fresh
    assert 0 in policy.settling(15) and 1 not in policy.settling(15)
