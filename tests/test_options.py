"""Verifier options: declared once as pydantic models; errors name the key and where it came from."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.errors import UserError
from evolve.evaluators.jssp.model import SCHEMES
from evolve.evaluators.jssp.verifier import JsspOptions
from evolve.evaluators.moe.options import MoeOptions
from evolve.evaluators.serving.options import RouterTable
from evolve.evaluators.smtt.verifier import SmttOptions
from evolve.options import OptionError, VerifierOptions, read_options
from evolve.problem import load_problem

REPO = Path(__file__).resolve().parents[1]


def smtt_with_options(tmp_path: Path, table: str) -> Path:
    """A copy of the smtt problem whose problem.toml has this [verifier.options] table."""
    folder = tmp_path / "smtt_copy"
    shutil.copytree(REPO / "problems" / "smtt", folder, ignore=shutil.ignore_patterns("__pycache__", "data"))
    (folder / "data").symlink_to(REPO / "problems" / "smtt" / "data")
    toml = folder / "problem.toml"
    text = toml.read_text()
    assert "[verifier.options]" not in text
    toml.write_text(text.replace('entry = "evolve.evaluators.smtt:SmttVerifier"',
                                 f'entry = "evolve.evaluators.smtt:SmttVerifier"\n\n[verifier.options]\n{table}\n'))
    return folder


def test_read_options_types_defaults_and_first_bad_key() -> None:
    opts = read_options(SmttOptions, {"reference_time_limit_s": 3})
    assert opts.reference_time_limit_s == 3.0 and isinstance(opts.reference_time_limit_s, float)
    assert opts.reference_workers == 1
    with pytest.raises(OptionError) as info:
        read_options(SmttOptions, {"reference_workers": "2"})
    assert info.value.key == "reference_workers"
    assert str(info.value) == ("problem.toml [verifier.options] reference_workers: Input should be a valid "
                               "integer (got '2')")


def test_a_bad_value_in_problem_toml_names_the_file_section_and_key(tmp_path: Path) -> None:
    folder = smtt_with_options(tmp_path, "reference_workers = 0")
    with pytest.raises(UserError) as info:
        load_problem(str(folder)).verifier  # noqa: B018
    assert str(info.value) == (f"{folder.resolve()}/problem.toml [verifier.options] reference_workers: "
                               "Input should be greater than or equal to 1 (got 0)")
    folder = smtt_with_options(tmp_path / "b", "colour = 1")
    with pytest.raises(UserError, match=r"problem.toml \[verifier.options\] colour: unknown key \(expected one of "
                                        r"reference_time_limit_s, reference_workers\)"):
        load_problem(str(folder)).configured({"reference_workers": 2})


def test_a_bad_override_names_the_option_not_the_file(tmp_path: Path) -> None:
    folder = smtt_with_options(tmp_path, "reference_workers = 2")
    problem = load_problem(str(folder))
    with pytest.raises(UserError) as info:
        problem.configured({"reference_time_limit_s": "fast"})
    assert str(info.value) == "--option reference_time_limit_s: Input should be a valid number (got 'fast')"
    with pytest.raises(UserError, match=r"^options reference_workers: Input should be a valid integer"):
        problem.configured({"reference_workers": 1.5}, source="options")
    assert problem.configured({"reference_workers": 3}).verifier.budget.workers == 3  # type: ignore[attr-defined]


def test_a_scaffolded_verifiers_option_error_names_the_override_not_its_file(tmp_path: Path) -> None:
    """The scaffold's verifier names its problem.toml by path; an override's bad value said
    '--option: /.../problem.toml: verifier.options.max_weight: ...', blaming the file."""
    from evolve.scaffold import scaffold

    folder = tmp_path / "late-jobs"
    scaffold("late-jobs", folder)
    problem = load_problem(str(folder))
    with pytest.raises(UserError) as info:
        problem.configured({"max_weight": "heavy"})
    assert str(info.value) == "--option max_weight: expected int, got 'heavy'"
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text().replace("max_weight = 10", 'max_weight = "ten"'))
    with pytest.raises(UserError) as info:
        load_problem(str(folder)).configured({})
    assert str(info.value) == f"{toml}: verifier.options.max_weight: expected int, got 'ten'"  # the file's own


def test_a_cross_field_error_points_at_the_override_it_involves() -> None:
    with pytest.raises(UserError) as info:
        load_problem("serving").configured({"max_num_seqs": 100_000})
    assert str(info.value).startswith("--option max_num_batched_tokens: 8192 is smaller than max_num_seqs (100000)")


def test_cli_names_the_option_in_a_one_line_error_with_exit_2() -> None:
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "baselines", "jssp", "--split", "quick", "--option",
                           "reference_workers=many"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 2
    assert done.stderr == ("error: --option reference_workers: Input should be a valid integer "
                           "(got 'many')\n")


@pytest.mark.parametrize(("model", "doc"), [(SmttOptions, "smtt"), (JsspOptions, "jssp"), (MoeOptions, "moe"),
                                            (RouterTable, "serving")])
def test_docs_name_every_option_of_the_schema(model: type[VerifierOptions], doc: str) -> None:
    text = (REPO / "docs" / f"{doc}.md").read_text()
    assert [key for key in model.model_fields if not re.search(rf"`{key}`", text)] == []


def test_the_jssp_scheme_choices_are_the_builders() -> None:
    assert JsspOptions.model_fields["scheme"].annotation.__args__ == SCHEMES  # type: ignore[union-attr]
