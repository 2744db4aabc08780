"""``evolve new-problem``: a working problem folder to start from.

The templates (``evolve/templates/new_problem/*.tmpl``) are a complete small
problem: it passes its own tests and ``evolve run FOLDER --llm stub`` improves
its seed at once, so a user changes a working example instead of filling in
blanks.  Placeholders: ``__NAME__`` (problem name), ``__IDENT__`` (the name as
a Python identifier), ``__MODULE__`` (the verifier module, trusted), ``__SIDE__``
(the module with ``solve``, the sandbox side), ``__CLASS__``.
"""

from __future__ import annotations

import re
from pathlib import Path

from evolve.errors import UserError

TEMPLATES = Path(__file__).resolve().parent / "templates" / "new_problem"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # as ProblemSpec.name


def identifiers(name: str) -> dict[str, str]:
    if not NAME.match(name):
        raise UserError(
            f"problem name '{name}': use lowercase letters, digits, '-' and '_', starting with a letter or digit"
        )
    ident = name.replace("-", "_")
    if ident[0].isdigit():
        ident = f"p_{ident}"
    camel = "".join(part.capitalize() for part in ident.split("_") if part)
    return {"__NAME__": name, "__IDENT__": ident, "__MODULE__": f"{ident}_verifier", "__CLASS__": f"{camel}Verifier",
            "__SIDE__": f"{ident}_candidate_side"}


def target_name(template: Path, names: dict[str, str]) -> Path:
    relative = template.relative_to(TEMPLATES).with_suffix("")  # drop .tmpl
    if relative == Path("verifier.py"):
        return Path(f"{names['__MODULE__']}.py")
    if relative == Path("candidate_side.py"):
        return Path(f"{names['__SIDE__']}.py")
    if relative == Path("tests/test_problem.py"):
        return Path("tests") / f"test_{names['__IDENT__']}.py"
    return relative


def scaffold(name: str, folder: Path) -> list[Path]:
    """Create the problem in ``folder`` (new or empty); returns the files written."""
    names = identifiers(name)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder}: already exists and is not an empty folder (choose another --dir)")
    templates = sorted(p for p in TEMPLATES.rglob("*.tmpl") if p.is_file())
    if not templates:
        raise UserError(f"{TEMPLATES}: the new-problem templates are missing from this installation")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a folder under /proc, a read-only or not writable place: was a traceback
        raise UserError(f"{folder}: cannot create the problem folder ({err.strerror or err})") from None
    written = []
    for template in templates:
        text = template.read_text()
        for placeholder, value in names.items():
            text = text.replace(placeholder, value)
        path = folder / target_name(template, names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
