"""The live display of a run: a rich progress bar, or plain log lines outside a terminal
(results are drawn by ``evolve.render``)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from evolve.formats import fmt, gap_words
from evolve.progress import Progress as RunProgress

# soft_wrap: paths and commands stay copy-pasteable. emoji=False: user and candidate text
# ("rule:x:.py", a model "o4-mini:x") is printed as written, never as an emoji.
console = Console(soft_wrap=True, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)


FAILURE_KINDS_SHOWN = ("model", "edit", "evaluation")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def failure_counts(p: RunProgress) -> str:
    counts = ", ".join(f"{kind} {p.failures_by_kind.get(kind, 0)}" for kind in FAILURE_KINDS_SHOWN)
    return f"{p.failures} ({counts})" if p.failures else "0"


class _RunBar(Progress):
    """The progress row, then the last failure of each kind (one line each, cut to the width)."""

    def __init__(self, *columns: Any, **kwargs: Any) -> None:
        self.notes: list[str] = []  # before super(): it renders once while building
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Any:
        yield self.make_tasks_table(self.tasks)
        for note in self.notes:
            yield Text(note, style="dim", no_wrap=True, overflow="ellipsis")


def rate(evals_per_s: float) -> str:
    """Evaluations per second, never "0.0" for a run that evaluates: a slow one (one evaluation
    every 38 s, a large problem or a loaded machine) shows two significant digits, 0.026."""
    return f"{evals_per_s:.1f}" if evals_per_s >= 0.95 or evals_per_s == 0 else f"{evals_per_s:.2g}"


class RunDisplay:
    """Progress of a run: a live bar in a terminal, plain log lines otherwise.

    The bar shows iteration, evals/s, best score and gap, failures by kind,
    tokens, cost, elapsed time and ETA, and under it the last failure of each
    kind. Outside a terminal (nohup, a cluster job, CI) a line is printed every
    5 % of the target (at least 10 iterations) or ``interval_s`` seconds, so logs
    show progress while the run goes on.
    """

    def __init__(self, problem: str, out: Console | None = None, interval_s: float = 30.0,
                 model: bool = True, against: str = "") -> None:
        self._problem = problem
        self._against = against  # [objective] reference: "12.65% below FCFS's ...", not "gap -12.65%"
        # No model (the offline search): its estimated "tokens" and $0 would read as model use.
        self._model = model
        self._out = out or console
        self._live = self._out.is_terminal
        self._interval_s = interval_s
        self._last_line_at = 0.0
        self._last_line_done = -1
        self._shown_failures: dict[str, str] = {}
        self._final_logged = False
        self._bar = _RunBar(
            TextColumn(f"[bold]{escape(problem)}[/]"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} eval/s"),
            TextColumn("best [bold green]{task.fields[best]}[/] ({task.fields[gap]})"),
            TextColumn("fail {task.fields[failures]}"),
            *([TextColumn("tok {task.fields[tokens]}"), TextColumn("${task.fields[cost]}")] if model else []),
            TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"),
            console=self._out,
            transient=False,
        )
        self._task = self._bar.add_task("run", total=None, rate="0.0", best="-", gap=gap_words(None, against), failures="0",
                                        tokens=0, cost="0.00", eta="-")

    def __enter__(self) -> RunDisplay:
        if self._live:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._bar.stop()

    def update(self, p: RunProgress) -> None:
        if not self._live:
            self._log(p)
            return
        self._bar.notes = [
            f"  last {kind} failure: {p.last_failure[kind]}"
            for kind in FAILURE_KINDS_SHOWN if kind in p.last_failure
        ]
        self._bar.update(
            self._task,
            total=p.target,
            completed=p.done,
            rate=rate(p.evals_per_s),
            best=fmt(p.best_score),
            gap=gap_words(p.best_gap, self._against),
            failures=failure_counts(p),
            tokens=_tokens(p.prompt_tokens + p.completion_tokens),
            cost=f"{p.cost_usd:.2f}",
            eta=duration(p.eta_s) if p.stop is None else "-",
        )

    def _log(self, p: RunProgress) -> None:
        now = time.monotonic()
        every = max(10, p.target // 20)
        final = p.stop is not None and not self._final_logged and p.done != self._last_line_done
        due = (
            self._last_line_done < 0  # the first call: the run has started
            or final
            or now - self._last_line_at >= self._interval_s
            or p.done // every > self._last_line_done // every
        )
        if not due:
            return
        self._final_logged = self._final_logged or final
        self._last_line_at, self._last_line_done = now, p.done
        share = f" ({100 * p.done / p.target:.0f}%)" if p.target else ""
        line = (
            f"[{time.strftime('%H:%M:%S')}] {self._problem} {p.done}/{p.target}{share} | "
            f"best {fmt(p.best_score)} ({gap_words(p.best_gap, self._against)}) | failures {failure_counts(p)}"
            f" | duplicates {p.duplicates} | {rate(p.evals_per_s)} eval/s | "
            + (f"tok {_tokens(p.prompt_tokens + p.completion_tokens)} ${p.cost_usd:.2f} | " if self._model else "")
            + f"elapsed {duration(time.time() - p.started)} eta {duration(p.eta_s)}"
        )
        self._out.print(line, markup=False, highlight=False, soft_wrap=True)
        for kind in FAILURE_KINDS_SHOWN:
            reason = p.last_failure.get(kind)
            if reason and reason != self._shown_failures.get(kind):
                self._shown_failures[kind] = reason
                self._out.print(f"  last {kind} failure: {reason[:300]}", markup=False,
                                highlight=False, soft_wrap=True)


def _tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)
