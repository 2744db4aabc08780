"""A plug-in problem's own code failing (its seed, its verifier): one line naming the file,
the line and the exception, like any other input mistake.

Only code of a problem folder or an installed plug-in is treated so; an exception in a
shipped problem's verifier is a bug of evolve and keeps its traceback.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evolve.errors import UserError


def where_raised(err: BaseException) -> str:
    """``ZeroDivisionError: division by zero (at night_shift_verifier.py:60, in instances)``:
    the exception and the innermost frame it was raised in."""
    if isinstance(err, SyntaxError):
        line = f":{err.lineno}" if err.lineno else ""  # none for a null byte
        place = f"{err.filename}{line}" if err.filename else f"line {err.lineno}" if err.lineno else ""
        return f"SyntaxError: {err.msg}" + (f" (at {place})" if place else "")
    frames = traceback.extract_tb(err.__traceback__)
    text = f"{type(err).__name__}: {err}".rstrip(": ")
    if not frames:
        return text
    last = frames[-1]
    return f"{text} (at {last.filename}:{last.lineno}, in {last.name})"


@contextmanager
def plugin_code(what: str, enabled: bool = True) -> Iterator[None]:
    """Run a plug-in's code: an exception it raises becomes a one-line ``UserError``
    starting with ``what`` (e.g. "problem.toml: verifier.entry 'm:C': importing m")."""
    if not enabled:
        yield
        return
    try:
        yield
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's code may raise anything
        raise UserError(f"{what} raised {where_raised(err)}") from None


def check_seed_parses(code: str, path: Path) -> None:
    """A seed that does not parse is an error naming its line, before any run starts."""
    try:
        compile(code, str(path), "exec", dont_inherit=True)
    except SyntaxError as err:
        at = f"{path}:{err.lineno}" if err.lineno else str(path)  # a null byte has no line ("seed.py:None:")
        raise UserError(f"{at}: the seed program does not parse: {err.msg}") from None
    except ValueError as err:  # null bytes
        raise UserError(f"{path}: the seed program does not parse: {err}") from None


def check_seed_blocks(code: str, path: Path) -> None:
    """A seed without a well-formed EVOLVE-BLOCK leaves a search nothing it may change: every
    proposal of the run failed ("the program has no EVOLVE-BLOCK") and the run ended as it began."""
    from evolve.edits import EditError, evolve_blocks

    try:
        blocks = evolve_blocks(code)
    except EditError as err:
        raise UserError(f"{path}: the seed's EVOLVE-BLOCK markers: {err}") from None
    if not blocks:
        raise UserError(f"{path}: the seed has no EVOLVE-BLOCK, so a search could change nothing; put "
                        "'# EVOLVE-BLOCK-START' and '# EVOLVE-BLOCK-END' lines around the code it may change")
