"""The feedback's gap by name facet (``tf0.4``, ``rdd0.2``): which facets count, their means, and a
real SMTT evaluation's feedback and prompt with them."""

from __future__ import annotations

from statistics import fmean

from shipped_evaluator import shipped_evaluator

from evolve.archive import Program
from evolve.edits import code_hash
from evolve.instance_facets import FACET_PREFIX, facet_lines
from evolve.prompt_programs import TimeLimits, program_view
from evolve.verifier import InstanceResult


def result(name: str, group: str, gap: float | None) -> InstanceResult:
    return InstanceResult(name=name, group=group, feasible=gap is not None, objective=1.0, reference=1.0,
                          reference_kind="optimal", gap=gap)


def smtt_like() -> list[InstanceResult]:
    rows = []
    for n in (20, 50):
        for k, (tf, rdd) in enumerate([(0.2, 0.2), (0.2, 0.6), (0.6, 0.2), (0.6, 0.6)] * 2):
            rows.append(result(f"train-n{n}-tf{tf}-rdd{rdd}-{k}", f"n={n}", tf * rdd + n / 1000))
    return rows


def test_each_facet_every_name_carries_gets_its_mean_gap_per_value() -> None:
    rows = smtt_like()
    lines = facet_lines(rows)
    assert [line.split(":")[0] for line in lines[:2]] == ["gap by tf", "gap by rdd"]  # n20 is the groups again
    by_tf = fmean(100 * (r.gap or 0) for r in rows if "-tf0.2-" in r.name)
    assert lines[0] == f"gap by tf: 0.2 {by_tf:.2f}%, 0.6 {fmean(100 * (r.gap or 0) for r in rows if '-tf0.6-' in r.name):.2f}%"
    assert all(line.startswith(FACET_PREFIX) for line in lines)


def test_the_first_two_facets_are_crossed_with_each_cells_mean_and_count() -> None:
    """A rule may lose only where tight due dates meet a narrow range: neither facet's own line
    shows it (an agent playing the model asked for the tf x rdd gaps)."""
    rows = smtt_like()
    rows.append(result("train-n20-tf0.6-rdd0.6-97", "n=20", None))  # failed: no gap, not counted
    lines = facet_lines(rows)
    assert lines[2:] == ["gap by tf0.2 x rdd: 0.2 7.50% (4), 0.6 15.50% (4)",
                         "gap by tf0.6 x rdd: 0.2 15.50% (4), 0.6 39.50% (4)"]
    cell = [100 * (r.gap or 0) for r in rows if "-tf0.6-rdd0.6-" in r.name and r.gap is not None]
    assert f"0.6 {fmean(cell):.2f}% ({len(cell)})" in lines[3]
    # a cell with no scored instance is left out, not shown as 0
    rows = [r for r in smtt_like() if "-tf0.2-rdd0.6-" not in r.name]
    assert facet_lines(rows)[2] == "gap by tf0.2 x rdd: 0.2 7.50% (4)"
    # one facet: nothing to cross
    assert len(facet_lines([r for r in smtt_like() if "-rdd0.2-" in r.name])) == 1


def test_no_line_without_a_facet_that_sorts_the_instances_into_classes() -> None:
    classic = [result(f"ta{k:02d}", "ta15x15", 0.1 * k) for k in range(1, 11)]  # one instance per value
    assert facet_lines(classic) == []
    rows = smtt_like()
    rows.append(result("train-n20-tf0.9-rdd0.2-99", "n=20", 0.5))  # tf0.9 has a single instance
    assert [line.split(":")[0] for line in facet_lines(rows)] == ["gap by rdd"]  # one facet: not crossed
    rows = smtt_like()
    rows.append(result("train-n20-x-99", "n=20", 0.5))  # a name without the facets: none is shared
    assert facet_lines(rows) == []
    rows = smtt_like()
    rows.append(result("train-n20-tf5.0-rdd0.2-98", "n=20", None))  # failed: no gap, not counted
    assert len(facet_lines(rows)) == 4  # tf, rdd and tf x rdd's two rows
    many = [result(f"train-k{v}-{i}", "all", 0.01 * v) for v in range(12) for i in range(2)]
    assert facet_lines(many) == []  # 12 values: more than a line should list


def test_a_real_smtt_evaluation_says_where_a_rule_loses_and_an_inspiration_leaves_it_out() -> None:
    with shipped_evaluator("smtt") as (problem, evaluator):
        train = problem.instances("train")
        instances = [i for i in train if i.group == "n=20"][:25] + [i for i in train if i.group == "n=50"][:25]
        evaluation = evaluator.run_split(problem.seed_code, instances, "quick")
    assert evaluation.ok, evaluation.feedback
    lines = evaluation.feedback.splitlines()
    tf = next(line for line in lines if line.startswith("gap by tf: "))
    assert [part.split()[0] for part in tf.removeprefix("gap by tf: ").split(", ")] == \
        ["0.2", "0.4", "0.6", "0.8", "1.0"]
    assert any(line.startswith("gap by rdd: ") for line in lines)
    assert not any(line.startswith("gap by n:") for line in lines)
    crossed = [line for line in lines if " x rdd: " in line]
    assert [line.split(" x ")[0] for line in crossed] == [f"gap by tf{v}" for v in ("0.2", "0.4", "0.6", "0.8", "1.0")]
    assert sum(int(cell.rsplit("(", 1)[1].rstrip(")")) for line in crossed for cell in line.split(": ")[1].split(", ")) \
        == sum(1 for r in evaluation.instances if r.gap is not None)
    program = Program(code=problem.seed_code, code_hash=code_hash(problem.seed_code), parent_id=None, island=0,
                      iteration=0, generation=0, origin="seed", model=None, status="ok", score=-1.0,
                      stage="train", metrics=evaluation.metrics, instances=[], feedback=evaluation.feedback,
                      features=None, eval_seconds=1.0, id=1)
    view = program_view(program, problem, TimeLimits("wall", "wall limit", {}))
    assert tf in view.results.splitlines()  # the current program shows it ...
    assert crossed[0] in view.results.splitlines()
    assert "gap by" not in view.summary and "per group:" in view.summary  # ... an inspiration does not
