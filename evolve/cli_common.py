"""What every ``evolve`` command shares: the typer app, error handling, flags."""

from __future__ import annotations

import functools
from collections.abc import Callable
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


def _verifier_options(option: list[str] | None, scheme: str | None) -> dict[str, Any]:
    from evolve.problem import parse_options

    options = parse_options(option or [])
    if scheme is not None:
        options["scheme"] = scheme
    return options


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


def _read_program(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise UserError(f"{path}: cannot read program ({err.strerror})") from None
