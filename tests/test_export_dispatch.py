"""`evolve export` of a rule-only problem appends the verifier's own dispatcher ([export] append):
the exported module, run by an interpreter that cannot import evolve (only numpy on its path),
builds schedules whose objective equals the verifier's for the same program (real runs, real
sandbox, real subprocesses)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import evolve
from evolve.errors import UserError
from evolve.problem import load_problem

REPO = Path(__file__).resolve().parent.parent

# Loads the exported module from the current folder with numpy as the only package on the path.
LOAD = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
try:
    import evolve
except ImportError:
    pass
else:
    raise SystemExit("evolve is importable")
spec = importlib.util.spec_from_file_location("rule", "rule.py")
rule = importlib.util.module_from_spec(spec)
sys.modules["rule"] = rule  # as `import rule` does (dataclasses look their module up there)
spec.loader.exec_module(rule)
assert not {k.split(".")[0] for k in sys.modules} & {"evolve", "evaluators", "problems"}
"""
CHECK = LOAD + """
out = {}
for case in json.load(open("instances.json")):
    if "p" in case:
        out[case["name"]] = rule.total_tardiness(case["p"], case["d"], rule.schedule(case["p"], case["d"]))
    else:
        out[case["name"]] = rule.schedule(case["jobs"], scheme=case["scheme"])[1]
assert not {k.split(".")[0] for k in sys.modules} & {"evolve", "evaluators", "problems"}
print(json.dumps(out))
"""


def evolve_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "COLUMNS": "160"}, timeout=300)


def numpy_only(folder: Path) -> Path:
    """A folder holding numpy (and its bundled libraries) and nothing else."""
    site = Path(np.__file__).resolve().parent.parent
    folder.mkdir()
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (folder / name).symlink_to(site / name)
    return folder


def exported(problem: str, tmp_path: Path, *run_args: str) -> Path:
    run = tmp_path / "run"
    # The seed, archived and exported: no iteration is needed (one cost ~10 s of the suite per use).
    result = evolve_cli("run", problem, "--iterations", "0", "--out", str(run), *run_args)
    assert result.returncode == 0, result.stderr
    result = evolve_cli("export", str(run), "-o", str(tmp_path / "rule.py"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "rule.py"


def standalone(tmp_path: Path, cases: list[dict]) -> dict[str, float]:
    (tmp_path / "instances.json").write_text(json.dumps(cases))
    site = numpy_only(tmp_path / "site")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", CHECK, str(site)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def verified(problem: str, rule: Path, **options: str) -> dict[str, float]:
    evaluation = evolve.evaluate(problem, rule, split="quick", **options)
    assert evaluation.ok, evaluation.feedback
    return {r.name: r.objective for r in evaluation.instances}


def test_an_exported_smtt_rule_schedules_as_the_verifier_does(tmp_path: Path) -> None:
    rule = exported("smtt_rule", tmp_path)
    text = rule.read_text()
    assert "# appended:  after the program, verbatim: evolve.evaluators.smtt.dispatch, export_schedule.py" in text
    assert "def dispatch(rule" in text and "def schedule(p, d)" in text
    cases = [{"name": i.name, "p": i.data["p"].tolist(), "d": i.data["d"].tolist()}
             for i in load_problem("smtt_rule").instances("quick")]
    assert len(cases) >= 3
    assert standalone(tmp_path, cases) == verified("smtt_rule", rule)
    # `python rule.py` alone runs a demo instance.
    demo = subprocess.run([sys.executable, "-I", "rule.py"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert demo.returncode == 0, demo.stderr
    assert sorted(json.loads(demo.stdout)["sequence"]) == list(range(20))


@pytest.mark.parametrize("scheme", ["non_delay", "active"])
def test_an_exported_jssp_rule_schedules_as_the_verifier_does(tmp_path: Path, scheme: str) -> None:
    rule = exported("jssp", tmp_path, "--scheme", scheme)
    text = rule.read_text()
    assert "evolve.evaluators.jssp.builder, export_schedule.py" in text and "def build_schedule(" in text
    if scheme == "active":
        assert "# options:   the run's verifier options: scheme = 'active'" in text
    cases = []
    for instance in load_problem("jssp").instances("quick"):
        shop = instance.data
        jobs = [[[int(shop["machines"][j, k]), int(shop["durations"][j, k])] for k in range(int(length))]
                for j, length in enumerate(shop["lengths"])]
        cases.append({"name": instance.name, "jobs": jobs, "scheme": scheme})
    assert len(cases) >= 3
    assert standalone(tmp_path, cases) == verified("jssp", rule, scheme=scheme)


def test_a_program_defining_a_dispatcher_name_is_exported_without_the_dispatcher(tmp_path: Path) -> None:
    from evolve.export_sources import appended_sources, clashes

    sources = appended_sources(load_problem("smtt_rule"))
    code = "import numpy as np\n\ndef choose(x):\n    return x\n\ndef priority(t, p, d):\n    return choose(d)\n"
    assert clashes(code, sources) == ["choose"]
    assert clashes("import numpy as np\nfrom typing import Any\n\ndef priority(p):\n    return p\n", sources) == []
    # Module-level names bound inside blocks (seventh red team): a helper defined in a `try` was not
    # seen, and the dispatcher's `choose` replaced it in the export (the rule then raised TypeError).
    guarded = "try:\n    def choose(x):\n        return x\nexcept Exception:\n    pass\n\ndef priority(t, p, d):\n    return choose(d)\n"
    assert clashes(guarded, sources) == ["choose"]
    assert clashes("if True:\n    from math import floor as integral\n", sources) == ["integral"]
    assert clashes("for _key in range(3):\n    pass\n", sources) == ["_key"]
    assert clashes("def priority(t, p, d):\n    choose = 3\n    return d\n", sources) == []  # a local


def test_an_unknown_export_source_is_a_one_line_error(tmp_path: Path) -> None:
    from evolve.export_sources import appended_sources

    problem = load_problem("smtt_rule")
    spec = problem.spec.model_copy(update={"export": problem.spec.export.model_copy(update={"append": ["nope.py"]})})
    with pytest.raises(UserError, match=r"problem.toml \[export\] append: 'nope.py': no such file"):
        appended_sources(type(problem)(spec=spec, dir=problem.dir, origin="builtin"))


def test_an_appended_source_needing_future_annotations_runs_in_the_export(tmp_path: Path) -> None:
    """evaluators/jssp/model.py annotates methods with its own class (``-> JobShop``), legal only
    under ``from __future__ import annotations``: the export states that import first."""
    import shutil

    folder = tmp_path / "jssp_model"
    shutil.copytree(REPO / "problems" / "jssp", folder, ignore=shutil.ignore_patterns("__pycache__"))
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text().replace('append = ["evolve.evaluators.jssp.builder"',
                                             'append = ["evolve.evaluators.jssp.model", "evolve.evaluators.jssp.builder"'))
    assert "evolve.evaluators.jssp.model" in toml.read_text()
    rule = exported(str(folder), tmp_path)
    text = rule.read_text()
    assert "class JobShop" in text and text.count("from __future__ import annotations") == 1
    body = ast.parse(text).body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value.value, str)  # the seed's docstring
    assert isinstance(body[1], ast.ImportFrom) and body[1].module == "__future__"
    cases = []
    for instance in load_problem(str(folder)).instances("quick"):
        shop = instance.data
        jobs = [[[int(shop["machines"][j, k]), int(shop["durations"][j, k])] for k in range(int(length))]
                for j, length in enumerate(shop["lengths"])]
        cases.append({"name": instance.name, "jobs": jobs, "scheme": "non_delay"})
    assert standalone(tmp_path, cases) == verified(str(folder), rule)


def test_future_imports_go_first_after_the_docstring_once() -> None:
    from evolve.export_sources import with_future

    code = '"""Doc."""\nimport numpy as np\n\ndef priority(x):\n    return x\n'
    assert with_future(code, set()) == code
    merged = with_future('"""Doc."""\nfrom __future__ import annotations\nimport numpy as np\n', {"annotations"})
    assert merged == '"""Doc."""\nfrom __future__ import annotations\nimport numpy as np\n'
    plain = with_future("import numpy as np\n", {"annotations"})
    assert plain.splitlines()[0] == "from __future__ import annotations"
    compile(plain, "x", "exec")


def test_a_source_with_a_null_byte_is_named_without_a_line_it_does_not_have() -> None:
    """A null byte has no line: the error read 'does not parse (line None: ...)'."""
    from evolve.errors import UserError
    from evolve.export_sources import imported_modules

    with pytest.raises(UserError) as info:
        imported_modules("x = 1\x00", "f.py")
    assert str(info.value) == "f.py: does not parse (source code string cannot contain null bytes)"
    with pytest.raises(UserError, match=r"^f.py: does not parse \(line 1: "):
        imported_modules("x = (", "f.py")

