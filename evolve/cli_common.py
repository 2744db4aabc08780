"""What every ``evolve`` command shares: the typer app, error handling, flags."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from evolve.display import err_console
from evolve.errors import UserError

app = typer.Typer(
    help="Discover scheduling heuristics with LLMs: evolve programs, scored by trusted verifiers.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

F = TypeVar("F", bound=Callable[..., Any])
RUNS_ROOT = Path("runs")

# Options several commands share.
OptionFlag = Annotated[
    list[str] | None,
    typer.Option("--option", help="Verifier option KEY=VALUE (repeatable), e.g. scheme=active."),
]
SchemeFlag = Annotated[str | None, typer.Option(help="Construction scheme, where the problem has one (= --option scheme=...).")]
NoPreflightFlag = Annotated[
    bool,
    typer.Option("--no-preflight", help="Skip the one-request check of each model before the run "
                 "(provider and credentials are still checked)."),
]
InstanceFlag = Annotated[list[str] | None, typer.Option("--instance", help="Only this instance (repeatable).")]
InstancesFlag = Annotated[
    Path | None, typer.Option("--instances", "--trace", help="Score on instances (or a trace) from this file.")
]


def split_of(split: str | None, instances: Path | None, default: str) -> str:
    """``--split``, or ``default``; with ``--instances`` too it is an error (the file replaces the
    split, and a --split given with it was silently ignored)."""
    if split is not None and instances is not None:
        raise UserError(f"--split {split} and --instances {instances}: give one of them (the file's instances replace "
                        "the split)")
    return split if split is not None else default


def verifier_options(option: list[str] | None, scheme: str | None) -> dict[str, Any]:
    """``--option KEY=VALUE`` flags (and ``--scheme``) as a dict."""
    from evolve.problem import parse_options

    options = parse_options(option or [])
    if scheme is not None:
        options["scheme"] = scheme
    return options


def for_terminal(text: str) -> str:
    """Program text (the model's) as printed: on a terminal with its control characters written
    out (an ESC sequence in a comment could clear the screen, retitle the window); piped, exact."""
    from evolve.sandbox.outcome import printable

    return printable(text) if sys.stdout.isatty() else text


def user_errors(func: F) -> F:
    """A user's mistake is one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            # escape: messages quote user input and brackets ('.[ray]') that are not markup
            err_console.print(f"[red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def example(*lines: str) -> str:
    return "[bold]Examples[/]\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


@contextmanager
def step_progress(what: str, quiet: bool = False) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar on stderr for a long step (evaluating programs on a split):
    stdout stays clean for ``--json``.  Yields the ``(done, total, name)`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(f"{escape(what)}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                   TimeElapsedColumn(), console=err_console, transient=True,
                   # Outside a terminal a transient bar shows nothing and leaves a blank line on
                   # stderr (before a one-line error, too).
                   disable=quiet or not err_console.is_terminal)
    task = bar.add_task(what, total=None, last="")

    def update(done: int, total: int, name: str) -> None:
        bar.update(task, completed=done, total=total, last=escape(f"{name} done") if name else "")

    with bar:
        yield update


def _click_errors() -> Any:
    try:  # typer >= 0.20 ships its own copy of click
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def run_cli() -> None:
    """Run the app; click's own usage errors (unknown flag, missing argument, a bad
    value) are one line on stderr and exit 2, like every other input mistake."""
    errors = _click_errors()
    no_args = getattr(errors, "NoArgsIsHelpError", ())
    try:
        code = app(standalone_mode=False)
    except no_args as err:  # `evolve` alone, or a group without a command: its help
        print(err.ctx.get_help() if err.ctx else "", flush=True)
        sys.exit(0)
    except errors.UsageError as err:
        where = f" (see: {err.ctx.command_path} --help)" if err.ctx else ""
        message = " ".join(err.format_message().split())
        err_console.print(f"[red]error:[/] {escape(message)}{escape(where)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except errors.ClickException as err:
        err_console.print(f"[red]error:[/] {escape(' '.join(err.format_message().split()))}", highlight=False)
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
