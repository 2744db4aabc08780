"""A plug-in problem whose own code is broken (seed, verifier module, constructor,
instances) stops `evolve` with one line naming the file and line, exit 2, no traceback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.scaffold import scaffold


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plugin") / "late-jobs"
    scaffold("late-jobs", folder)
    return folder


def broken(template: Path, tmp_path: Path, file: str, old: str, new: str) -> Path:
    folder = tmp_path / "late-jobs"
    shutil.copytree(template, folder)
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return folder


def run_cli(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(folder), "--iterations", "2", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, cwd=tmp_path, timeout=300)


VERIFIER = "late_jobs_verifier.py"
CASES = {
    "verifier_syntax_error": (VERIFIER, "import json\n", "import json\ndef oops(:\n",
                              r"importing late_jobs_verifier raised SyntaxError: .* \(at .*late_jobs_verifier\.py:\d+\)"),
    "verifier_fails_at_import": (VERIFIER, "import json\n", "import json\n1 / 0\n",
                                 r"importing late_jobs_verifier raised ZeroDivisionError: division by zero "
                                 r"\(at .*late_jobs_verifier\.py:\d+, in <module>\)"),
    "constructor_raises": (VERIFIER, 'self.max_weight = int(options.get("max_weight", 10))',
                           'self.max_weight = int(options["weight_cap"])',
                           r"building verifier late_jobs_verifier:LateJobsVerifier raised KeyError: 'weight_cap' "
                           r"\(at .*late_jobs_verifier\.py:\d+, in __init__\)"),
    "instances_raises": (VERIFIER, "first, count = SPLITS[split]", "first, count = SPLITS[split]; 1 / 0",
                         r"the verifier's instances\('quick'\) raised ZeroDivisionError: division by zero "
                         r"\(at .*late_jobs_verifier\.py:\d+, in instances\)"),
    # It was a traceback (AttributeError deep in the engine) once the first instance was used.
    "instances_returns_other_things": (VERIFIER, "            out.append(self._instance(f\"{split}-n{n}-{k}\", p, w))\n",
                                       "            out.append((p, w))\n",
                                       r"problem 'late-jobs': the verifier's instances\('quick'\) returned a list "
                                       r"holding tuple \(array\(\[.*; expected a list of evolve\.verifier\.Instance"),
    # Names key every result, table and paired test: two alike were taken silently.
    "instances_with_one_name": (VERIFIER, 'self._instance(f"{split}-n{n}-{k}", p, w)', 'self._instance(f"{split}", p, w)',
                                r"problem 'late-jobs': split 'quick': instance name 'quick' appears twice \(instances 0 "
                                r"and 1\); expected unique names"),
    # problem.toml's verifier table: the regex was the message, a missing folder was ignored, and a
    # name that is not a class failed "building" it at a line of ours
    "entry_without_class": ("problem.toml", 'entry = "late_jobs_verifier:LateJobsVerifier"',
                            'entry = "late_jobs_verifier"',
                            r"problem\.toml: key 'verifier\.entry': 'late_jobs_verifier' is not 'module:ClassName'"),
    "path_not_a_folder": ("problem.toml", 'entry = "late_jobs_verifier:LateJobsVerifier"',
                          'entry = "late_jobs_verifier:LateJobsVerifier"\npath = "src"',
                          r"problem\.toml: verifier\.path = 'src': .*/late-jobs/src is not a folder; expected the "
                          r"folder that holds the verifier's module"),
    "entry_not_a_class": ("problem.toml", 'entry = "late_jobs_verifier:LateJobsVerifier"',
                          'entry = "late_jobs_verifier:SIZES"',
                          r"problem\.toml: verifier\.entry 'late_jobs_verifier:SIZES' is a tuple, not a class"),
    "seed_does_not_parse": ("seed.py", "    return", "    retrun",
                            r"seed\.py:\d+: the seed program does not parse: invalid syntax"),
    # a null byte has no line: it was "seed.py:None: the seed program does not parse"
    "seed_with_a_null_byte": ("seed.py", "    return", "    return\x00",
                              r"seed\.py: the seed program does not parse: source code string cannot contain null"),
    # score() raising was "3 of 3 instances failed:" and nothing after the colon (the reasons were on
    # the next lines), and the reason named no file: it read as the seed's fault
    "score_raises": (VERIFIER, 'p, w = instance.data["p"], instance.data["w"]', 'p, w = instance.data["q"], None',
                     r"seed\.py: the seed program fails on the quick split \(infeasible\): 3 of 3 instances failed, "
                     r"the first: quick-n10-0: solution could not be scored: the verifier's score\(\) raised KeyError: "
                     r"'q' \(at .*late_jobs_verifier\.py:\d+, in score\)$"),
    "verifier_with_a_null_byte": (VERIFIER, "import json\n", "import json\x00\n",
                                  r"importing late_jobs_verifier raised SyntaxError: source code string cannot "
                                  r"contain null bytes( \(at [^)]*late_jobs_verifier\.py\))?$"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_plugin_code_is_one_line_naming_file_and_line(template: Path, tmp_path: Path, case: str) -> None:
    file, old, new, expected = CASES[case]
    folder = broken(template, tmp_path, file, old, new)
    result = run_cli(folder, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert re.search(expected, errors[0]), errors[0]
    assert not (tmp_path / "run").exists()  # a run that cannot start leaves no folder
