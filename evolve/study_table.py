"""``evolve review STUDY``: the seeds, their median and spread, the baselines, per group.

One table when it fits the console; otherwise the summary (iterations, train and test
figures, wins against the strongest baseline) first and the test gap per instance group
after it, in as many tables as the width needs, each repeating the row labels (a
five-seed smtt study needs ~180 columns, and at 80 every number was cut to "1.…").
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from evolve.display import console
from evolve.study import StudyReview


@dataclass
class Row:
    label: str
    cells: dict[str, str]  # column -> text
    style: str = ""


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def study_rows(review: StudyReview) -> tuple[list[str], list[str], list[Row]]:
    """(summary columns, group columns, rows) of the study's table."""
    tested = any(r.test for r in review.runs)
    groups = review.groups if tested else []
    versus = "W/T/L vs strongest"
    summary = ["iters", "train mean", "train median", *(["test mean", "test median", versus] if tested else [])]
    test_keys = {"test mean": review.gap_key, "test median": "gap_median_pct",
                 **{g: f"gap_mean_pct[{g}]" for g in groups}}
    rows: list[Row] = []
    for run in review.runs:
        cells = {"iters": str(run.iterations), "train mean": _num(run.train.get(review.gap_key)),
                 "train median": _num(run.train.get("gap_median_pct"))}
        if tested:
            cells.update({column: _num(run.test.get(key)) if run.test else "-" for column, key in test_keys.items()})
            wtl = run.versus or {}
            cells[versus] = (f"{wtl.get('wins', '-')}/{wtl.get('ties', '-')}/{wtl.get('losses', '-')}"
                             if run.test_ok else "failed")
        rows.append(Row(f"seed {run.seed}", cells))
    train_keys = {"train mean": review.gap_key, "train median": "gap_median_pct"}
    for label in ("median", "min-max"):
        cells = {}
        for split, keys in (("train", train_keys), ("test", test_keys if tested else {})):
            for column, key in keys.items():
                found = review.figure(split, key)
                if found is None:
                    cells[column] = "-"
                elif label == "median":
                    cells[column] = _num(found.median)
                else:
                    cells[column] = f"{min(found.values):.2f}-{max(found.values):.2f}"
        rows.append(Row(label, cells, "bold"))
    if tested:
        for name, metrics in review.baselines.items():
            label = name + (" (strongest)" if name == review.strongest else "")
            rows.append(Row(label, {column: _num(metrics.get(key)) for column, key in test_keys.items()}, "dim"))
    return summary, groups, rows


def _table(title: str, columns: list[str], rows: list[Row]) -> Table:
    view = Table(title=title or None, title_justify="left")
    view.add_column("", justify="left", no_wrap=True)
    for column in columns:
        view.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        if not any(row.cells.get(column) for column in columns):
            continue  # a baseline has no train figures
        view.add_row(row.label, *(row.cells.get(column, "") for column in columns), style=row.style or None)
    return view


def study_tables(review: StudyReview, width: int | None = None) -> list[Table]:
    from evolve.render import _width

    width = width or console.width
    summary, groups, rows = study_rows(review)
    # Units that stay together: the train figures, the test figures, then each group.
    units = [summary[:3], summary[3:], *[[g] for g in groups]]
    units = [unit for unit in units if unit]
    whole = _table("", [*summary[:5], *groups, *summary[5:]], rows)
    if _width(whole) <= width:
        return [whole]
    chunks: list[list[str]] = [[]]
    for unit in units:
        if chunks[-1] and _width(_table("", [*chunks[-1], *unit], rows)) > width:
            chunks.append([])
        chunks[-1].extend(unit)
    tables = []
    for k, chunk in enumerate(chunks, 1):
        if k == 1:
            name = ""
        elif set(chunk) <= set(groups):
            name = "test gap % per instance group"
        else:
            name = "study, continued"
        tables.append(_table(f"{name} ({k}/{len(chunks)})" if k > 1 else name, chunk, rows))
    return tables


def show_study(review: object) -> None:
    assert isinstance(review, StudyReview)
    # The title is a line of its own: a table's title is cut to the table's width, and the path must stay whole.
    console.print(f"study {review.dir}: {review.problem}, {len(review.runs)} seeds (gap %, lower is better)",
                  highlight=False)
    for note in review.stale:
        console.print(f"[yellow]note: {escape(note)}[/]", highlight=False)
    for table in study_tables(review):
        console.print(table)
    chosen = [r for r in review.runs if r.chosen_on != "train"]
    if chosen:
        who = "every seed" if len(chosen) == len(review.runs) else "seeds " + ", ".join(str(r.seed) for r in chosen)
        console.print(f"{who}: the best was chosen on the {chosen[0].chosen_on} split among the seed's best on "
                      "train (select_on); train ranked everything inside the search")
