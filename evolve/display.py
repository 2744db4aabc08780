"""Rich rendering for the CLI: progress, evaluation tables, review."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from evolve.evaluation import Evaluation
from evolve.loop import Progress as RunProgress
from evolve.review import RunReview
from evolve.scoring import natural_key

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
            "ok" if r.feasible else f"[red]{r.error}[/]",
        )
    return table


def metrics_table(rows: list[tuple[str, str, float | None, dict[str, float]]]) -> Table:
    """One row per program: name, status, score, key metrics (incl. per-group gaps)."""
    groups = sorted({k for _, _, _, m in rows for k in m if k.startswith("gap_mean_pct[")}, key=natural_key)
    table = Table(title_justify="left")
    for column in ("program", "status", "score", "gap mean", "gap ratio", *[g[13:-1] for g in groups]):
        table.add_column(column, justify="left" if column in {"program", "status"} else "right")
    for name, status, score, m in rows:
        table.add_row(
            name, status if status == "ok" else f"[red]{status}[/]", fmt(score),
            pct(m.get("gap_mean_pct")), pct(m.get("gap_ratio_pct")), *[pct(m.get(g)) for g in groups],
        )
    return table


def show_review(review: RunReview, show_diff: bool = True) -> None:
    seed, best = review.seed, review.best
    header = (
        f"[bold]{review.problem}[/]  {review.run_dir}\n"
        f"iterations {review.iterations}/{review.target}, programs {review.programs}\n"
        f"seed  #{seed.id if seed else '-'}: score {fmt(seed.score if seed else None)}  gap {pct(review.gap(seed))}\n"
        f"best  #{best.id if best else '-'}: score {fmt(best.score if best else None)}  gap {pct(review.gap(best))}"
    )
    console.print(Panel(header, title="run", expand=False))
    board = Table(title="leaderboard", title_justify="left")
    for column in ("#", "id", "score", "gap", "iteration", "island", "parent", "model"):
        board.add_column(column)
    for rank, p in enumerate(review.leaderboard, 1):
        board.add_row(
            str(rank), str(p.id), fmt(p.score), pct(review.gap(p)), str(p.iteration), str(p.island),
            str(p.parent_id if p.parent_id is not None else "-"), p.model or "seed",
        )
    console.print(board)
    console.print(_counts_table(review))
    diff = review.diff()
    if show_diff and diff:
        console.print(Panel(Syntax(diff, "diff", theme="ansi_dark"), title="best vs seed", expand=False))
    elif show_diff:
        console.print("[dim]best is the seed: no diff[/]")


def _counts_table(review: RunReview) -> Group:
    a, s, u = review.attempts, review.statuses, review.usage
    lines = [
        f"proposals {sum(a.values())}: evaluated {a.get('evaluated', 0)}, edit failures {a.get('edit_error', 0)}, "
        f"LLM errors {a.get('llm_error', 0)}, duplicates {a.get('duplicate', 0)}",
        "evaluations: " + ", ".join(f"{k} {v}" for k, v in sorted(s.items())) if s else "evaluations: none",
        f"tokens {int(u['prompt_tokens'])} in / {int(u['completion_tokens'])} out, cost ${u['cost_usd']:.4f}",
    ]
    return Group(*lines)


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: map them to None for the stable --json contract."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
