"""The live display of a run: a rich progress bar (results are drawn by ``evolve.render``)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evolve.formats import fmt, pct
from evolve.loop import Progress as RunProgress

console = Console(soft_wrap=True)  # paths and commands stay copy-pasteable
err_console = Console(stderr=True, soft_wrap=True)


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
