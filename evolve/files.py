"""Reading and writing users' files with one-line errors, checked before any work starts."""

from __future__ import annotations

from pathlib import Path

from evolve.errors import UserError


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of ``path`` (without a byte-order mark, which Windows editors write and TOML
    refuses); a missing, unreadable or binary file is a ``UserError``."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a {what}") from None
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read {what} ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: {what} is not UTF-8 text (byte {err.start})") from None


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` by a rename, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_program(path: Path) -> str:
    return read_text(path, "program")


def check_output(path: Path, what: str = "output file") -> Path:
    """Fail now, not after the work, if ``path`` cannot be written: its folder must exist."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a {what} path")
    parent = path.parent
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist (create it first)")
    existed = path.exists()
    try:  # a folder that exists but takes no files (read-only, /proc): a traceback after the work
        with path.open("a"):
            pass
    except OSError as err:
        raise UserError(f"{path}: cannot write the {what} there ({err.strerror})") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path
