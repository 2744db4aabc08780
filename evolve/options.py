"""A verifier's ``[verifier.options]``: declared once as a typed pydantic model, errors that say where.

A verifier declares its options as a subclass of ``VerifierOptions`` (typed
fields with defaults, ranges, choices; a comment or ``description`` says what
each does) and reads the table it is given with ``read_options``.  A bad key or
value raises ``OptionError`` naming the key.  The engine (``Problem.verifier``)
knows where each key came from and says so in the one-line error: ``--option KEY``
for an override on the command line (or the API's ``options``), ``PATH
[verifier.options] KEY`` for ``problem.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from evolve.errors import UserError

FILE_SECTION = "problem.toml [verifier.options]"


class VerifierOptions(BaseModel):
    """Base of every verifier's options: unknown keys, wrong types, NaN and infinity are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class OptionError(UserError):
    """A bad ``[verifier.options]`` key or value; ``where`` is filled in by whoever knows.

    ``related`` names the other keys a cross-field check read: when one of them was
    the override, the override is what the error points at.
    """

    def __init__(self, key: str | None, problem: str, where: str = FILE_SECTION,
                 related: tuple[str, ...] = ()) -> None:
        self.key, self.problem, self.where, self.related = key, problem, where, related
        super().__init__(f"{where} {key}: {problem}" if key else f"{where}: {problem}")

    @property
    def keys(self) -> tuple[str, ...]:
        return ((self.key,) if self.key else ()) + self.related

    def at(self, where: str) -> OptionError:
        return OptionError(self.key, self.problem, where, self.related)


T = TypeVar("T", bound=VerifierOptions)


def read_options(model: type[T], options: Mapping[str, Any] | None) -> T:
    """``options`` checked against ``model``; OptionError naming the first bad key."""
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as err:
        first = err.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else None
        if first["type"] == "extra_forbidden":
            raise OptionError(key, f"unknown key (expected one of {', '.join(model.model_fields)})") from None
        message = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        if len(first["loc"]) > 1:  # inside a list: which item
            message = f"item {first['loc'][1]}: {message}"
        raise OptionError(key, f"{message} (got {first.get('input')!r})") from None

