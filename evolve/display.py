"""Rich rendering for the CLI: progress, evaluation tables, review."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from evolve.evaluation import Evaluation
from evolve.loop import Progress as RunProgress
from evolve.review import RunReview
from evolve.scoring import natural_key

if TYPE_CHECKING:  # numpy-free import of the CLI
    from evolve.compare import Comparison
    from evolve.holdout import Holdout

console = Console(soft_wrap=True)  # paths and commands stay copy-pasteable
err_console = Console(stderr=True, soft_wrap=True)


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value + 0.0:.{digits}g}"  # + 0.0 turns -0.0 into 0


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


class RunDisplay:
    """A live progress bar: iteration, evals/s, best score and gap, failures, tokens, cost."""

    def __init__(self, problem: str) -> None:
        self._bar = Progress(
            TextColumn(f"[bold]{problem}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} eval/s"),
            TextColumn("best [bold green]{task.fields[best]}[/] (gap {task.fields[gap]})"),
            TextColumn("fail {task.fields[failures]}"),
            TextColumn("tok {task.fields[tokens]}"),
            TextColumn("${task.fields[cost]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._bar.add_task("run", total=None, rate="0.0", best="-", gap="-", failures=0, tokens=0, cost="0.00")

    def __enter__(self) -> RunDisplay:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, p: RunProgress) -> None:
        self._bar.update(
            self._task,
            total=p.target,
            completed=p.done,
            rate=f"{p.evals_per_s:.1f}",
            best=fmt(p.best_score),
            gap=pct(p.best_gap),
            failures=p.failures,
            tokens=_tokens(p.prompt_tokens + p.completion_tokens),
            cost=f"{p.cost_usd:.2f}",
        )


def _tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


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
    groups = sorted({k for _, _, _, m in rows for k in m if k.startswith("gap_mean_pct[")}, key=natural_key)
    table = Table(title_justify="left")
    columns = ("program", "status", "score", *headline, "gap mean", "gap ratio", *[g[13:-1] for g in groups])
    for column in columns:
        table.add_column(column, justify="left" if column in {"program", "status"} else "right")
    for name, status, score, m in rows:
        table.add_row(
            name, status if status == "ok" else f"[red]{status}[/]", fmt(score),
            *[fmt(m.get(h)) for h in headline],
            pct(m.get("gap_mean_pct")), pct(m.get("gap_ratio_pct")), *[pct(m.get(g)) for g in groups],
        )
    return table


def headline_of(verifier: object) -> tuple[str, ...]:
    return tuple(getattr(verifier, "headline_metrics", ()) or ())


def show_review(review: RunReview, show_diff: bool = True) -> None:
    seed, best = review.seed, review.best
    header = (
        f"[bold]{review.problem}[/]  {review.run_dir}\n"
        f"iterations {review.iterations}/{review.target}, programs {review.programs}\n"
        f"seed  #{seed.id if seed else '-'}: score {fmt(seed.score if seed else None)}  gap {pct(review.gap(seed))}\n"
        f"best  #{best.id if best else '-'}: score {fmt(best.score if best else None)}  gap {pct(review.gap(best))}"
    )
    console.print(Panel(header, title="run", expand=False))
    console.print(_leaderboard(review))
    if review.lineage:
        console.print(_lineage_table(review))
    console.print(_failure_table(review))
    console.print(_usage_lines(review))
    diff = review.diff()
    if show_diff and diff:
        console.print(Panel(Syntax(diff, "diff", theme="ansi_dark"), title="best vs seed", expand=False))
    elif show_diff:
        console.print("[dim]best is the seed: no diff[/]")


def _leaderboard(review: RunReview) -> Table:
    board = Table(title="leaderboard (train split)", title_justify="left")
    extra = [k for k in (review.key_metrics(review.leaderboard[0]) if review.leaderboard else {}) if k != "gap_pct"]
    labels = {"gap_ratio_pct": "gap ratio", "ms_per_instance": "ms/inst"}
    for column in ("#", "id", "score", "gap", *[labels.get(k, k) for k in extra], "iter", "island", "parent", "model"):
        board.add_column(column, justify="right" if column not in {"model"} else "left")
    for rank, p in enumerate(review.leaderboard, 1):
        metrics = review.key_metrics(p)
        board.add_row(
            str(rank), str(p.id), fmt(p.score), pct(metrics["gap_pct"]),
            *[pct(metrics[k]) if k.endswith("_pct") else fmt(metrics[k], 3) for k in extra],
            str(p.iteration), str(p.island), str(p.parent_id if p.parent_id is not None else "-"), p.model or "seed",
        )
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
    if len(review.usage_by_model) > 1:
        lines += [
            f"  {m.model}: {m.proposals} proposals, {m.prompt_tokens} in / {m.completion_tokens} out, ${m.cost_usd:.4f}"
            for m in review.usage_by_model
        ]
    return Group(*lines)


VERDICT_STYLE = {"better": "green", "worse": "red", "not significant": "yellow", "identical": "dim"}
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
    for column in ("vs", "group", f"{a} gap", "their gap", "Δ pp", "W/T/L", "p", "verdict"):
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


def show_holdout(holdout: Holdout) -> None:
    rows = [(n, e.status, e.score, e.metrics) for n, e in holdout.evaluations.items()]
    table = metrics_table(rows)
    table.title = f"{holdout.split} split: {holdout.instances} held-out instances, never seen by the search"
    console.print(table)
    console.print(comparison_table(
        holdout.comparisons,
        f"{holdout.best} against each program, paired per instance (Wilcoxon signed-rank, two-sided)",
    ))
    console.print(
        "[dim]W/T/L: instances where the best is better / equal / worse. Δ pp: mean per-instance "
        "gap difference (positive: the best is better). verdict at p < 0.05, per row (not corrected "
        "for multiple groups).[/]"
    )
    strongest = holdout.strongest_baseline()
    versus = holdout.comparison(strongest) if strongest else None
    if versus is not None:
        g = versus.overall
        console.print(
            f"best vs the strongest baseline on {holdout.split} ([bold]{strongest}[/]): gap {pct(g.gap_a_pct)} vs "
            f"{pct(g.gap_b_pct)}, {g.wins} wins / {g.ties} ties / {g.losses} losses, {p_phrase(g.test.p_value)}: "
            f"[{VERDICT_STYLE[g.verdict]}]{g.verdict}[/]"
        )
    gen = holdout.generalisation
    console.print(f"generalisation: [{GENERALISATION_STYLE[gen.verdict]}]{gen.verdict.upper()}[/]: {gen.message}")


def show_comparison(comparison: Comparison, split: str, objective: str) -> None:
    console.print(comparison_table(
        [comparison], f"{comparison.a} vs {comparison.b} on {split}, paired per instance ({objective})"
    ))
    g = comparison.overall
    console.print(
        f"{comparison.a} is [{VERDICT_STYLE[g.verdict]}]{g.verdict}[/] than {comparison.b}"
        if g.verdict in ("better", "worse") else f"verdict: [{VERDICT_STYLE[g.verdict]}]{g.verdict}[/]",
        f"({g.wins} wins / {g.ties} ties / {g.losses} losses, {p_phrase(g.test.p_value)}, {g.test.method} test)",
    )


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: map them to None for the stable --json contract."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if type(value).__name__ == "ndarray":  # numpy, without importing it here
        return json_safe(value.tolist())
    return value
