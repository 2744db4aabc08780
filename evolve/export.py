"""A program of a run as a standalone module to paste into a real scheduler.

The code is kept verbatim (it is what the verifier scored); a comment header
states the problem and its function contract, the scores, the run and the
lineage, and which third-party modules the code imports.  The module must not
import evolve: it has to work where evolve is not installed.
"""

from __future__ import annotations

import shlex
import sys
import textwrap
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from evolve.archive import Archive, Program
from evolve.errors import UserError
from evolve.export_sources import (
    FRAMEWORK_MODULES,
    Appended,
    appended_sources,
    clashes,
    imported_modules,
    with_future,
)
from evolve.formats import pct, side_of
from evolve.review import lineage_steps, problem_of
from evolve.runs import load_run
from evolve.sandbox.outcome import printable
from evolve.scoring import headline_gap, natural_key
from evolve.selection import reported_best

RULE = "# " + "-" * 76


def export_program(run_dir: Path, program_id: int | None = None, filename: str = "rule.py") -> str:
    """The standalone module text of program ``program_id`` (default: the best)."""
    info = load_run(run_dir)
    archive = Archive(info.archive_path, readonly=True)
    try:
        program = archive.program(program_id) if program_id is not None else reported_best(archive)
        if program is None or program.id is None:
            raise UserError(f"{run_dir}: the run has no evaluated program yet")
        try:
            problem = problem_of(info)
            spec, score_kind = problem.spec, problem.spec.objective.score
        except UserError:
            problem, spec, score_kind = None, None, "gap_mean"
        steps = lineage_steps(archive, program, score_kind)
    finally:
        archive.close()
    where = f"{run_dir} program #{program.id}"
    modules = imported_modules(program.code, where)
    internal = sorted(modules & FRAMEWORK_MODULES)
    if internal:
        raise UserError(f"{where}: imports {', '.join(internal)}: it would not run without evolve")
    appended = appended_sources(problem) if problem is not None else []
    clash = clashes(program.code, appended)
    if clash:
        appended = []
    modules |= {m for a in appended for m in imported_modules(a.text, a.label)}
    third_party = sorted(m for m in modules if m not in sys.stdlib_module_names)

    lines = [RULE, f"# Exported by evolve {_version()} on {time.strftime('%Y-%m-%d %H:%M')}"]
    lines.append(f"# run:       {run_dir.resolve()}")
    if spec is not None:
        # A scaffold's title starts with its name already ("my-problem: ..."): say it once.
        named = spec.title.startswith(f"{info.problem}:") or spec.title == info.problem
        lines.append(f"# problem:   {spec.title if named else f'{info.problem}: {spec.title}'}")
        lines += _wrapped("function:  ", " ".join(spec.function.signature.split()))  # may span lines
        lines += _wrapped("contract:  ", " ".join(spec.function.contract.split()))
        lines.append(f"# objective: {spec.objective.name} ({spec.objective.direction})")
    else:
        lines.append(f"# problem:   {info.problem}")
    if info.settings.verifier_options:  # what the run changed; the appended dispatcher defaults to problem.toml's
        lines += _wrapped("options:   ", "the run's verifier options: "
                          + ", ".join(f"{k} = {v!r}" for k, v in sorted(info.settings.verifier_options.items())))
    lines.append(
        f"# program:   #{program.id}, iteration {program.iteration}, island {program.island}, "
        f"generation {program.generation}, {program.origin}" + (f" ({program.model})" if program.model else "")
    )
    lines += _score_lines(program, score_kind, spec.objective.reference if spec is not None else "")
    lines.append("# lineage (seed first; score change; the edit):")
    for step in steps:
        change = "" if step.delta is None else f" ({step.delta:+.4g})"
        lines.append(f"#   #{step.id} {step.model or 'seed'}: score {_num(step.score)}{change}  {step.summary}")
    if appended:
        lines += _wrapped("appended:  ", "after the program, verbatim: " + ", ".join(a.label for a in appended)
                          + " (the problem's [export] append: what the verifier runs around the rule)")
    elif clash:
        lines += _wrapped("appended:  ", "nothing: the program defines " + ", ".join(clash)
                          + ", which the problem's [export] append sources define too")
    lines.append(f"# requires:  {', '.join(third_party) or 'the Python standard library only'} (does not import evolve)")
    # A plug-in folder's name is not a problem `evolve eval` can find by name: give its folder.
    where = str(problem.dir) if problem is not None and problem.origin == "path" else info.problem
    lines.append(f"# check it on held-out data: evolve eval {shlex.quote(where)} {filename} --split test")
    # The scores above were measured in evolve's sandbox, and so is that check; imported, the code
    # runs with your rights, and code can tell the two apart with nothing a reader would flag
    # (the order of a set of strings under the sandbox's hash seed: docs/sandbox.md, seventh team).
    lines += _wrapped("trust:     ", "scored in evolve's sandbox (the check above runs there too); imported, "
                      "it runs with your rights, and a program can behave differently outside the "
                      "sandbox: read the code before you deploy it")
    lines.append(RULE)
    # Each header line is one comment, whatever the archive's texts hold (a model name, a run's
    # path): a line break in one put code above the program, run when the module was imported
    # (fourteenth red team); control characters are written out, as on a terminal.
    lines = [printable(line).replace("\n", "\\n") for line in lines]
    # The appended sources' `from __future__` imports (annotations naming their own classes) must
    # be the module's first statement: stated once, before the program's code.
    code = with_future(program.code, {f for a in appended for f in a.future})
    text = "\n".join(lines) + "\n\n" + code.rstrip("\n") + "\n"
    return text + "".join(_section(a) for a in appended)


def _section(source: Appended) -> str:
    return f"\n\n{RULE}\n# appended by evolve export from {source.label} ([export] append)\n{RULE}\n\n{source.text}"


def write_export(text: str, output: Path) -> None:
    compile(text, str(output), "exec")  # the header must not break the module
    if output.is_dir():
        raise UserError(f"{output}: is a folder, expected a module file path")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)  # as report -o does
        output.write_text(text)
    except OSError as err:
        raise UserError(f"{output}: cannot write ({err.strerror})") from None


def _score_lines(program: Program, score_kind: str, against: str = "") -> list[str]:
    if program.score is None:
        return [f"# score:     none: this program failed ({program.status}) on the {program.stage} split"]
    gap = headline_gap(program.metrics, score_kind)
    lines = [
        f"# score:     {_num(program.score)} on the {program.stage} split "
        f"(higher is better; objective.score = {score_kind})"
        + ("" if gap is None else f", {side_of(gap)} {against}" if against else f", gap to the references {gap:.3f}%")
    ]
    groups = sorted((k for k in program.metrics if k.startswith("gap_mean_pct[")), key=natural_key)
    if groups:
        per_group = ", ".join(f"{k[13:-1]} {pct(program.metrics[k])}" for k in groups)
        lines += _wrapped("per group: ", per_group)
    return lines


def _wrapped(label: str, text: str) -> list[str]:
    body = textwrap.wrap(text, 96 - len(label)) or [""]
    return [f"# {label}{body[0]}", *[f"# {' ' * len(label)}{line}" for line in body[1:]]]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _version() -> str:
    try:
        return version("evolve")
    except PackageNotFoundError:
        return "(development tree)"
