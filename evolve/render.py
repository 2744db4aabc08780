"""Rich rendering of results for the CLI: evaluations, metrics, reviews, comparisons.

Tables fit the terminal: wide per-group columns are cut into several tables.
The live display of a running search is ``evolve.display``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.markup import escape
from rich.measure import Measurement
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from evolve.display import console
from evolve.evaluation import Evaluation
from evolve.formats import digits_to_tell_apart, fmt, pct, side_of
from evolve.llm import OFFLINE
from evolve.review import RunReview
from evolve.sandbox.outcome import printable
from evolve.scoring import natural_key

if TYPE_CHECKING:  # numpy-free import of the CLI
    from evolve.compare import Comparison
    from evolve.holdout import Holdout


def evaluation_table(title: str, evaluation: Evaluation) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("instance", "group", "objective", "reference", "kind", "gap", "status"):
        table.add_column(column, justify="right" if column in {"objective", "reference", "gap"} else "left")
    for r in evaluation.instances:
        table.add_row(
            r.name, r.group, fmt(r.objective, 8), fmt(r.reference, 8), r.reference_kind,
            pct(100 * r.gap) if r.gap is not None else "-",
            "ok" if r.feasible else f"[red]{escape(r.error or '')}[/]",  # candidate text: no markup
        )
    return table


def metrics_table(
    rows: list[tuple[str, str, float | None, dict[str, float]]], headline: tuple[str, ...] = ()
) -> Table:
    """One row per program: name, status, score, the problem's headline metrics
    (its verifier's ``headline_metrics``), gaps overall and per instance group."""
    return _metrics_table(rows, headline, _groups(rows), with_summary=True)


def metrics_tables(
    rows: list[tuple[str, str, float | None, dict[str, float]]],
    headline: tuple[str, ...] = (),
    title: str = "",
    width: int | None = None,
    against: str = "",
) -> list[Table]:
    """``metrics_table`` cut to the terminal: when the per-group columns do not fit,
    the summary comes first and the group columns follow in as many tables as needed,
    each repeating the program column (JSSP has 19 instance groups)."""
    width = width or console.width
    groups = _groups(rows)
    whole = _metrics_table(rows, headline, groups, with_summary=True, against=against)
    whole.title = title
    if _width(whole) <= width or not groups:  # no group columns: nothing to move (was an empty table)
        return [whole]
    summary = _metrics_table(rows, headline, [], with_summary=True, against=against)
    summary.title = title
    chunks: list[list[str]] = [[]]
    for group in groups:
        trial = _metrics_table(rows, (), [*chunks[-1], group], with_summary=False)
        if chunks[-1] and _width(trial) > width:
            chunks.append([])
        chunks[-1].append(group)
    tables = [summary]
    for k, chunk in enumerate(chunks, 1):
        table = _metrics_table(rows, (), chunk, with_summary=False)
        table.title = f"gap per instance group ({k}/{len(chunks)})" if len(chunks) > 1 else "gap per instance group"
        tables.append(table)
    return tables


def _groups(rows: list[tuple[str, str, float | None, dict[str, float]]]) -> list[str]:
    return sorted({k[13:-1] for _, _, _, m in rows for k in m if k.startswith("gap_mean_pct[")}, key=natural_key)


def _metrics_table(
    rows: list[tuple[str, str, float | None, dict[str, float]]],
    headline: tuple[str, ...],
    groups: list[str],
    with_summary: bool,
    against: str = "",
) -> Table:
    table = Table(title_justify="left")
    timed = "ms_per_instance" not in headline and any("ms_per_instance" in m for _, _, _, m in rows)
    summary = ("status", "score", *headline, "gap mean", *(["ms/inst"] if timed else []), "gap ratio") \
        if with_summary else ()
    for column in ("program", *summary, *groups):
        table.add_column(column, justify="left" if column in {"program", "status"} else "right")
    if with_summary:  # the two gaps differ by design: say how (a newcomer asked)
        table.caption = ("gap mean: the mean of the instances' gaps; gap ratio: (sum of objectives - sum of "
                         "references) / sum of references" + ("; ms/inst: CPU per instance" if timed else "")
                         # serving: every gap is to FCFS's latency, and a good policy's is negative
                         + (f"; every gap is against {against} (negative: below it)" if against else ""))
        table.caption_justify = "left"
    for name, status, score, m in rows:
        cells = [status if status == "ok" else f"[red]{status}[/]", fmt(score), *[fmt(m.get(h)) for h in headline],
                 pct(m.get("gap_mean_pct")), *([ms(m.get("ms_per_instance"))] if timed else []),
                 pct(m.get("gap_ratio_pct"))] if with_summary else []
        table.add_row(name, *cells, *[gap_and_time(m, g) for g in groups])
    return table


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} ms"


def gap_and_time(metrics: dict[str, float], group: str) -> str:
    """A group's mean gap, with its time per instance next to it when it was measured."""
    gap = pct(metrics.get(f"gap_mean_pct[{group}]"))
    time = metrics.get(f"ms_per_instance[{group}]")
    return gap if time is None else f"{gap} · {ms(time)}"


def _width(table: Table) -> int:
    """The width the table needs to show every cell unwrapped (not capped at the console's)."""
    return Measurement.get(console, console.options.update(max_width=10_000), table).maximum


def print_metrics(
    rows: list[tuple[str, str, float | None, dict[str, float]]], headline: tuple[str, ...] = (), title: str = "",
    against: str = "",
) -> None:
    for table in metrics_tables(rows, headline, title, against=against):
        console.print(table)


def headline_of(verifier: object) -> tuple[str, ...]:
    return tuple(getattr(verifier, "headline_metrics", ()) or ())


def show_review(review: RunReview, show_diff: bool = True) -> None:
    seed, best = review.seed, review.best
    header = (
        f"[bold]{review.problem}[/]  {review.run_dir}\n"
        f"iterations {review.iterations}/{review.target}, programs {review.programs}\n"
        f"seed  #{seed.id if seed else '-'}: score {fmt(seed.score if seed else None)}  {review.gap_words(seed)}\n"
        f"best  #{best.id if best else '-'}: score {fmt(best.score if best else None)}  {review.gap_words(best)}"
        + (f"\n      {escape(review.selection.describe())}" if review.selection is not None else "")
        + (f"\n      {escape(review.refit.describe())}" if review.refit is not None else "")
    )
    console.print(Panel(header, title="run", expand=False))
    if review.stale:
        console.print(f"[yellow]note: {escape(review.stale)}[/]", highlight=False)
    for table in _leaderboard(review):
        console.print(table)
    if review.lineage:
        console.print(_lineage_table(review))
    console.print(_failure_table(review))
    console.print(_usage_lines(review))
    diff = review.diff()
    if show_diff and diff:
        console.print(Panel(Syntax(printable(diff), "diff", theme="ansi_dark"), title="best vs seed",  # the model's text
                            expand=False))
    elif show_diff:
        console.print("[dim]best is the seed: no diff[/]")


def _leaderboard(review: RunReview) -> list[Table]:
    """The leaderboard; its key-metric columns go to a second table when the terminal is narrow."""
    extra = [k for k in (review.key_metrics(review.leaderboard[0]) if review.leaderboard else {}) if k != "gap_pct"]
    whole = _leaderboard_table(review, extra, with_run=True)
    if not extra or _width(whole) <= console.width:
        return [whole]
    metrics = _leaderboard_table(review, extra, with_run=False)
    metrics.title = "leaderboard: key metrics"
    return [_leaderboard_table(review, [], with_run=True), metrics]


def _leaderboard_table(review: RunReview, extra: list[str], with_run: bool) -> Table:
    board = Table(title="leaderboard (train split)", title_justify="left")
    labels = {"gap_ratio_pct": "gap ratio", "ms_per_instance": "ms/inst"}
    gap = f"vs {review.gap_against}" if review.gap_against else "gap"  # -12.65%: below it
    run_columns = ("score", gap, "iter", "island", "parent", "model") if with_run else ()
    for column in ("#", "id", *run_columns[:2], *[labels.get(k, k) for k in extra], *run_columns[2:]):
        board.add_column(column, justify="right" if column not in {"model"} else "left")
    digits = digits_to_tell_apart([p.score for p in review.leaderboard])
    for rank, p in enumerate(review.leaderboard, 1):
        metrics = review.key_metrics(p)
        cells = [pct(metrics[k]) if k.endswith("_pct") else fmt(metrics[k], 3) for k in extra]
        if with_run:
            gap = side_of(metrics["gap_pct"]) if review.gap_against else pct(metrics["gap_pct"])
            board.add_row(str(rank), str(p.id), fmt(p.score, digits), gap, *cells, str(p.iteration),
                          str(p.island), str(p.parent_id if p.parent_id is not None else "-"), p.model or "seed")
        else:
            board.add_row(str(rank), str(p.id), *cells)
    return board


def _lineage_table(review: RunReview) -> Table:
    table = Table(title=f"lineage of the best (#{review.lineage[-1].id}): seed first", title_justify="left")
    for column in ("gen", "id", "iter", "model", "score", "change", "edit"):
        table.add_column(column, justify="left" if column in {"model", "edit"} else "right")
    for step in review.lineage:
        delta = "" if step.delta is None else f"{step.delta:+.4g}"
        colour = "green" if (step.delta or 0) > 0 else "red" if (step.delta or 0) < 0 else "dim"
        table.add_row(
            str(step.generation), str(step.id), str(step.iteration), step.model or "seed", fmt(step.score),
            f"[{colour}]{delta}[/]", Text(step.summary),
        )
    return table


def _failure_table(review: RunReview) -> Table | str:
    total = sum(review.attempts.values())
    if not review.failures:
        return f"failures: none in {total} proposals"
    table = Table(title=f"failures by kind ({total} proposals)", title_justify="left")
    for column in ("kind", "count", "share", "most frequent reason"):
        table.add_column(column, justify="right" if column in {"count", "share"} else "left")
    for failure in review.failures:
        reason = failure.reasons[0][0] if failure.reasons else ""
        if len(failure.reasons) > 1:
            reason += f"  (+{len(failure.reasons) - 1} other reasons)"
        share = f"{100 * failure.count / total:.0f}%" if total else "-"
        table.add_row(failure.label, str(failure.count), share, Text(reason))
    return table


def _usage_lines(review: RunReview) -> Group:
    a, u = review.attempts, review.usage
    lines = [
        f"proposals {sum(a.values())}: evaluated {a.get('evaluated', 0)}, edit failures {a.get('edit_error', 0)}, "
        f"LLM errors {a.get('llm_error', 0)}, duplicates {a.get('duplicate', 0)}",
        f"tokens {int(u['prompt_tokens'])} in / {int(u['completion_tokens'])} out, cost ${u['cost_usd']:.4f}",
    ]
    if review.usage_by_model and all(m.model in OFFLINE for m in review.usage_by_model):
        # The offline search's token figures are its code's size estimated, not model use (the
        # archive and --json keep them as recorded).
        lines[1] = "tokens: none, no model used (offline search), cost $0"
    if len(review.usage_by_model) > 1:
        lines += [
            f"  {m.model}: {m.proposals} proposals, {m.prompt_tokens} in / {m.completion_tokens} out, ${m.cost_usd:.4f}"
            for m in review.usage_by_model
        ]
    return Group(*lines)


VERDICT_STYLE = {"better": "green", "worse": "red", "not significant": "yellow", "identical": "dim",
                 "nothing to compare": "red"}
GENERALISATION_STYLE = {
    "generalises": "green", "inconclusive": "yellow", "overfit": "bold red", "fails on test": "bold red",
    "no improvement": "dim",
}


def p_value(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def p_phrase(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def comparison_table(comparisons: list[Comparison], title: str) -> Table:
    """One section per opponent: the whole split first, then each instance group."""
    table = Table(title=title, title_justify="left")
    a = comparisons[0].a if comparisons else "A"
    delta = "Δ score" if comparisons and comparisons[0].basis == "score" else "Δ pp"
    for column in ("vs", "group", f"{a} gap", "their gap", delta, "W/T/L", "p", "verdict"):
        table.add_column(column, justify="left" if column in {"vs", "group", "verdict"} else "right")
    for c in comparisons:
        for k, g in enumerate([c.overall, *c.groups]):
            failed = f" ({g.failed_a}/{g.failed_b} failed)" if g.failed_a or g.failed_b else ""
            table.add_row(
                c.b if k == 0 else "", g.group, pct(g.gap_a_pct), pct(g.gap_b_pct),
                "-" if g.mean_diff_pct is None else f"{g.mean_diff_pct:+.2f}",
                f"{g.wins}/{g.ties}/{g.losses}{failed}", p_value(g.test.p_value),
                f"[{VERDICT_STYLE[g.verdict]}]{g.verdict_text}[/]",
                style="bold" if k == 0 else None,
                end_section=k == len(c.groups),
            )
    return table


def delta_legend(comparisons: list[Comparison]) -> str:
    if comparisons and comparisons[0].basis == "score":
        return ("Δ score: mean per-instance difference of what each instance adds to the score, in points; "
                "wins, losses and p are on it too (positive: the best is better).")
    return "Δ pp: mean per-instance gap difference (positive: the best is better)."


def show_holdout(holdout: Holdout, against: str = "") -> None:
    rows = [(n, e.status, e.score, e.metrics) for n, e in holdout.evaluations.items()]
    print_metrics(rows, (), f"{holdout.split} split: {holdout.instances} held-out instances, never seen by the search",
                  against=against)
    console.print(comparison_table(
        holdout.comparisons,
        f"{holdout.best} against each program, paired per instance (Wilcoxon signed-rank, two-sided)",
    ))
    console.print(f"[dim]W/T/L: instances where the best is better / equal / worse. {delta_legend(holdout.comparisons)}"
                  " verdict at p < 0.05, per row (not corrected for multiple groups).[/]")
    strongest = holdout.strongest_baseline()
    versus = holdout.comparison(strongest) if strongest else None
    if versus is not None:
        g = versus.overall
        console.print(
            f"best vs the strongest baseline on {holdout.split} ([bold]{strongest}[/]): gap {pct(g.gap_a_pct)} vs "
            f"{pct(g.gap_b_pct)}, {g.wins} wins / {g.ties} ties / {g.losses} losses, {p_phrase(g.test.p_value)}: "
            f"[{VERDICT_STYLE[g.verdict]}]{g.verdict_text}[/]"
        )
    if holdout.other_class:
        console.print(f"[dim]not this problem's class of program, so never the strongest baseline: "
                      f"{', '.join(holdout.other_class)} (problem.toml other_class_baselines)[/]")
    gen = holdout.generalisation
    console.print(f"generalisation: [{GENERALISATION_STYLE[gen.verdict]}]{gen.verdict.upper()}[/]: {gen.message}")


def show_comparison(comparison: Comparison, split: str, objective: str) -> None:
    basis = objective if comparison.basis == "gap" else "on what each instance adds to the score"
    console.print(comparison_table(
        [comparison], f"{comparison.a} vs {comparison.b} on {split}, paired per instance ({basis})"
    ))
    if comparison.basis == "score":
        console.print(f"[dim]{delta_legend([comparison])}[/]")
    g = comparison.overall
    if g.verdict == "nothing to compare":
        console.print(f"verdict: [red]nothing to compare[/]: both programs failed on all {g.instances} instances")
        return
    console.print(
        f"{comparison.a} is [{VERDICT_STYLE[g.verdict]}]{g.verdict}[/] than {comparison.b}{g.verdict_text[len(g.verdict):]}"
        if g.verdict in ("better", "worse") else f"verdict: [{VERDICT_STYLE[g.verdict]}]{g.verdict}[/]",
        f"({g.wins} wins / {g.ties} ties / {g.losses} losses, {p_phrase(g.test.p_value)}, {g.test.method} test)",
    )
