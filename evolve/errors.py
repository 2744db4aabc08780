"""Errors that reach users as one line, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in user input (a file, a flag, a config key).

    The message is one line that names the file, field or value and what was
    expected; the CLI prints it and exits non-zero.
    """
