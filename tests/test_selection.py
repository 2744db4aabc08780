"""A validation split chooses the reported best (``select_on``): which program, and who says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evolve
from evolve.archive import Archive
from evolve.cli import app
from evolve.config import resolve_settings
from evolve.errors import UserError
from evolve.evaluators.smtt.generator import RULE_TRAIN_REPLICATES, split_instances
from evolve.problem import load_problem
from evolve.review import review_run
from evolve.selection import SELECTION_META, Candidate, choose, selection_of


def test_the_validation_split_decides_and_train_breaks_its_ties() -> None:
    first, second, third = Candidate(7, -1.0, -3.0), Candidate(4, -1.2, -2.0), Candidate(9, -1.3, -2.0)
    assert choose([first, second, third]) == 4  # best on valid although second on train
    assert choose([first, Candidate(4, -1.2, -3.0)]) == 7  # a tie on valid goes to train's order
    assert choose([Candidate(7, -1.0, None), second]) == 4  # failing on valid disqualifies
    assert choose([Candidate(7, -1.0, None), Candidate(4, -1.2, None)]) == 7  # all fail: train's best


def _valid_scores(problem_dir: Path, archive: Archive, among: int) -> dict[int, float | None]:
    """The top programs on train scored on the validation split by `evolve eval`'s path."""
    return {int(p.id): evolve.evaluate(str(problem_dir), p.code, split="valid").score  # type: ignore[arg-type]
            for p in archive.top(among)}


# A rule that recognises the toy's quick and train instances by their sizes (optimal there,
# the worst order elsewhere), and an honest one, slightly worse on train, good everywhere.
FITS_TRAIN = "return -x if len(x) in (5, 8, 6, 10, 12, 20) else x"
HONEST = "return -(x // 4)"


def _replay(path: Path, bodies: list[str]) -> Path:
    seed = (Path(__file__).parent / "toy_problem" / "seed.py").read_text()
    with path.open("w") as out:
        for iteration, body in enumerate(bodies, 1):
            code = seed.replace("return x * 1.0", body)
            out.write(json.dumps({"iteration": iteration, "model": "replay", "text": f"```python\n{code}```\n",
                                  "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}) + "\n")
    return path


def test_a_rule_that_fits_train_is_not_reported_when_the_validation_split_disagrees(
        toy_dir: Path, tmp_path: Path) -> None:
    replies = _replay(tmp_path / "replies.jsonl", [FITS_TRAIN, HONEST])
    run = evolve.run(str(toy_dir), iterations=2, out=tmp_path / "run", islands=1, llm=f"replay:{replies}",
                     edit_mode="rewrite", select_on="valid", select_among=3)
    archive = Archive(run.dir / "archive.sqlite", readonly=True)
    try:
        train_best = archive.best()
        top = archive.top(3)
        selection = selection_of(archive)
        scores = _valid_scores(toy_dir, archive, 3)
    finally:
        archive.close()
    assert train_best is not None and FITS_TRAIN in train_best.code  # the search's own ranking
    assert selection is not None and selection.split == "valid" and selection.among == 3
    # The validation scores are those `evolve eval --split valid` gives, and the best of them wins.
    assert [c.program_id for c in selection.candidates] == [p.id for p in top]
    assert [c.score for c in selection.candidates] == [scores[int(p.id)] for p in top]
    chosen = max(top, key=lambda p: scores[int(p.id)])  # type: ignore[arg-type]
    assert HONEST in chosen.code and selection.program_id == chosen.id
    # Everything that reports the run's best reports that one, and says which split chose it.
    assert (run.dir / "best.py").read_text() == chosen.code
    assert run.best.id == chosen.id
    review = review_run(run.dir)
    assert review.best is not None and review.best.id == chosen.id and review.chosen_on == "valid"
    document = review.to_json()
    assert document["best_chosen_on"] == "valid" and document["selection"]["train_best_id"] == train_best.id
    shown = CliRunner().invoke(app, ["review", str(run.dir)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "chosen on the valid split" in shown.output


def test_a_resumed_run_chooses_again_and_an_unfinished_one_reports_its_train_best(
        toy_dir: Path, tmp_path: Path) -> None:
    problem = load_problem(str(toy_dir))
    straight = evolve.run(problem, iterations=10, seed=2, out=tmp_path / "a", islands=2, llm="mutate",
                          select_on="valid", select_among=3)
    evolve.run(problem, iterations=5, seed=2, out=tmp_path / "b", islands=2, llm="mutate",
               select_on="valid", select_among=3)
    archive = Archive(tmp_path / "b" / "archive.sqlite")
    try:
        assert selection_of(archive) is not None
        # As the loop starting again leaves it (a run killed before its end keeps it so).
        archive.set_meta(SELECTION_META, None)
        assert review_run(tmp_path / "b").chosen_on == "train"
    finally:
        archive.close()
    resumed = evolve.resume(tmp_path / "b", iterations=10)
    assert resumed.best.id == straight.best.id
    ours, theirs = (Archive(r.dir / "archive.sqlite", readonly=True) for r in (resumed, straight))
    try:
        assert selection_of(ours) == selection_of(theirs)
    finally:
        ours.close()
        theirs.close()


def test_selecting_on_test_is_refused_with_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="select_on"):
        resolve_settings({}, None, {"select_on": "test"})
    config = tmp_path / "c.toml"
    config.write_text('select_on = "test"\n')
    done = CliRunner().invoke(app, ["run", "smtt_rule", "--config", str(config), "--out", str(tmp_path / "r")])
    assert done.exit_code == 2 and "select_on" in done.output and "Traceback" not in done.output


def test_smtt_validation_split_is_new_instances_with_shipped_references() -> None:
    seen = {split: {(g.p.tobytes(), g.d.tobytes()) for g in split_instances(split, RULE_TRAIN_REPLICATES)}
            for split in ("train", "test")}
    valid = split_instances("valid")
    assert len(valid) == 275
    assert not {(g.p.tobytes(), g.d.tobytes()) for g in valid} & (seen["train"] | seen["test"])
    instances = load_problem("smtt_rule").instances("valid")  # every reference is shipped
    assert [i.name for i in instances] == [g.name for g in valid]
    assert json.dumps(sorted({i.reference.kind for i in instances})) in ('["best_known", "optimal"]', '["optimal"]')


def test_a_problem_without_a_validation_split_fails_before_the_search(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('select_on = "valid"\n')
    done = CliRunner().invoke(app, ["run", "smtt", "--config", str(config), "--out", str(tmp_path / "r")])
    assert done.exit_code == 2 and "unknown split 'valid'" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "r" / "archive.sqlite").exists() or Archive(
        tmp_path / "r" / "archive.sqlite", readonly=True).program_count() == 0


def test_a_study_reports_each_seeds_chosen_best_and_the_split_that_chose_it(toy_dir: Path, tmp_path: Path) -> None:
    replies = _replay(tmp_path / "replies.jsonl", [FITS_TRAIN, HONEST])
    study = evolve.run_study(str(toy_dir), "0-1", out=tmp_path / "study", iterations=2, islands=1,
                             llm=f"replay:{replies}", edit_mode="rewrite", select_on="valid", select_among=3)
    review = evolve.review_study(study)
    document = review.to_json()
    for seed_run in document["runs"]:
        archive = Archive(Path(seed_run["run_dir"]) / "archive.sqlite", readonly=True)
        try:
            selection = selection_of(archive)
            assert selection is not None and seed_run["best_id"] == selection.program_id
            assert HONEST in archive.program(selection.program_id).code
        finally:
            archive.close()
        assert seed_run["best_chosen_on"] == "valid"
    shown = CliRunner().invoke(app, ["review", str(study)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "every seed: the best was chosen on the valid split" in shown.output
