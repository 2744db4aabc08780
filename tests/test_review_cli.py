"""review, review --test, compare and export as users type them (real runs, real sandbox)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SMTT_BASELINES = REPO / "problems" / "smtt" / "baselines"


def evolve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=300)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review")
    problem = root / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    out = root / "run"
    result = evolve("run", str(problem), "--iterations", "16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    (root / "run-output.txt").write_text(result.stdout)  # what the run printed (a pipe: plain lines)
    return out


@pytest.mark.parametrize("command", ["compare", "export", "report", "new-problem"])
def test_new_commands_show_examples_in_their_help(command: str) -> None:
    result = evolve(command, "--help")
    assert result.returncode == 0 and "Examples" in result.stdout and "$ evolve" in result.stdout


def test_review_shows_lineage_failures_and_usage(toy_run: Path) -> None:
    result = evolve("review", str(toy_run))
    assert result.returncode == 0, result.stderr
    for text in ("leaderboard", "lineage of the best", "tokens", "best vs seed"):
        assert text in result.stdout


def test_an_offline_run_shows_no_model_tokens_but_keeps_the_recorded_figures(toy_run: Path) -> None:
    result = evolve("review", str(toy_run))
    assert "tokens: none, no model used (offline search)" in result.stdout and " in / " not in result.stdout
    document = json.loads(evolve("review", str(toy_run), "--json").stdout)
    assert document["usage"]["completion_tokens"] > 0  # the archive's records are unchanged
    printed = [line for line in (toy_run.parent / "run-output.txt").read_text().splitlines() if " toy " in line]
    assert printed and all("eval/s" in line and "tok " not in line and "$" not in line for line in printed)


def test_review_json_keeps_its_keys_and_adds_lineage_and_failures(toy_run: Path) -> None:
    document = json.loads(evolve("review", str(toy_run), "--json").stdout)
    assert {"problem", "run_dir", "iterations", "target_iterations", "programs", "seed", "best", "leaderboard",
            "attempts", "statuses", "usage"} <= set(document)
    assert {"lineage", "failures", "usage_by_model", "diff"} <= set(document)
    lineage = document["lineage"]
    assert lineage[0]["origin"] == "seed" and lineage[-1]["id"] == document["best"]["id"]
    # Score changes along the chain add up to the best's improvement over the seed.
    total = sum(step["delta"] for step in lineage[1:])
    assert total == pytest.approx(document["best"]["score"] - document["seed"]["score"])
    assert all(isinstance(f["count"], int) for f in document["failures"].values())


def test_review_test_compares_on_held_out_instances(toy_run: Path) -> None:
    result = evolve("review", str(toy_run), "--test", "--json")
    assert result.returncode == 0, result.stderr
    test = json.loads(result.stdout)["test"]
    assert test["split"] == "test" and test["instances"] == 3
    names = [p["name"] for p in test["programs"]]
    assert names[0].startswith("best #") and names[1:] == ["seed", "descending"]
    versus = {c["b"]: c for c in test["comparisons"]}
    overall = versus["seed"]["overall"]
    assert overall["wins"] + overall["ties"] + overall["losses"] == 3
    assert {g["group"] for g in versus["seed"]["groups"]} == {"n=7", "n=9", "n=30"}
    # 3 instances can never be significant (the smallest two-sided p is 2/8): the rule says so.
    assert test["generalisation"]["verdict"] in {"inconclusive", "no improvement"}
    text = evolve("review", str(toy_run), "--test")
    assert "paired per instance" in text.stdout and "generalisation" in text.stdout


def test_compare_agrees_with_an_independent_count(tmp_path: Path) -> None:
    mdd, edd = SMTT_BASELINES / "mdd.py", SMTT_BASELINES / "edd.py"
    result = evolve("compare", str(mdd), str(edd), "--problem", "smtt", "--split", "train", "--json")
    assert result.returncode == 0, result.stderr
    overall = json.loads(result.stdout)["comparison"]["overall"]
    # Recount outside the sandbox with the baselines' own code and the tardiness formula.
    from evolve.problem import load_problem

    instances = load_problem("smtt").instances("train")
    rules = []
    for path in (mdd, edd):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        rules.append(module.schedule)
    wins = ties = losses = 0
    for instance in instances:
        p, d = instance.data["p"], instance.data["d"]
        values = []
        for rule in rules:
            order = rule(p.copy(), d.copy())
            values.append(sum(max(0, int(c) - int(dd)) for c, dd in zip(p[order].cumsum(), d[order], strict=True)))
        wins += values[0] < values[1]
        ties += values[0] == values[1]
        losses += values[0] > values[1]
    assert (overall["wins"], overall["ties"], overall["losses"]) == (wins, ties, losses)
    assert overall["verdict"] == "better" and overall["p_value"] < 0.05


def test_compare_of_two_programs_that_fail_everywhere_says_so(tmp_path: Path) -> None:
    """Two files that are not programs: the table said '(0 instances)' and the verdict 'identical'."""
    broken = tmp_path / "notes.txt"
    broken.write_text("  instance ft06\n 6 6\n")
    result = evolve("compare", str(broken), str(broken), "--problem", "smtt", "--split", "quick")
    assert result.returncode == 0, result.stderr
    assert "smtt/quick (6 instances)" in result.stdout
    assert "nothing to compare: both programs failed on all 6 instances" in result.stdout
    assert "verdict: identical" not in result.stdout
    # and why, one line each (the table said only "error"; a newcomer could not tell what was wrong)
    reasons = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert reasons == [f"{broken}: error: IndentationError: unexpected indent (line 1)"], result.stderr


def test_compare_json_of_two_programs_that_fail_everywhere_says_so(tmp_path: Path) -> None:
    """The JSON said verdict 'identical' where the text said 'nothing to compare'."""
    broken = tmp_path / "notes.txt"
    broken.write_text("  instance ft06\n 6 6\n")
    result = evolve("compare", str(broken), str(broken), "--problem", "smtt", "--split", "quick", "--json")
    assert result.returncode == 0, result.stderr
    overall = json.loads(result.stdout)["comparison"]["overall"]
    assert (overall["instances"], overall["failed_a"], overall["failed_b"]) == (6, 6, 6)
    assert overall["verdict"] == "nothing to compare"


def test_export_writes_a_standalone_module_with_a_header(toy_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "rule.py"
    result = evolve("export", str(toy_run), "-o", str(target))
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    best = json.loads(evolve("review", str(toy_run), "--json").stdout)["best"]
    assert f"# program:   #{best['id']}" in text and "# problem:   toy" in text and "# lineage" in text
    assert "# requires:  numpy" in text
    # It runs on its own and imports nothing of evolve (isolated mode, from another folder).
    check = (
        "import runpy, sys; m = runpy.run_path('rule.py'); "
        "assert not {k.split('.')[0] for k in sys.modules} & {'evolve', 'evaluators', 'problems'}; "
        "print(m['order']([3, 1, 2]))"
    )
    run = subprocess.run([sys.executable, "-I", "-c", check], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert sorted(json.loads(run.stdout)) == [0, 1, 2]


def test_export_and_report_both_create_a_missing_output_folder(toy_run: Path, tmp_path: Path) -> None:
    module = tmp_path / "new" / "deeper" / "rule.py"
    result = evolve("export", str(toy_run), "-o", str(module))
    assert result.returncode == 0, result.stderr
    assert module.read_text().startswith("#") and "# problem:   toy" in module.read_text()
    page = tmp_path / "pages" / "report.html"
    result = evolve("report", str(toy_run), "--split", "train", "-o", str(page))
    assert result.returncode == 0, result.stderr
    assert page.read_text().lstrip().lower().startswith("<!doctype html")
    # A folder given as the file is still a one-line error, before any work.
    result = evolve("export", str(toy_run), "-o", str(tmp_path / "new"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'new'}: is a folder, expected a module file path"]


def test_export_of_an_unknown_id_is_a_one_line_error(toy_run: Path) -> None:
    result = evolve("export", str(toy_run), "--id", "9999")
    assert result.returncode == 2 and "no program with id 9999" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--top", "--repeats"])
def test_review_top_or_repeats_zero_is_a_one_line_error_naming_the_flag(toy_run: Path, flag: str) -> None:
    result = evolve("review", str(toy_run), flag, "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"'{flag}'" in lines[0] and "greater than or equal to 1" in lines[0]


def test_wide_metric_tables_are_cut_to_the_terminal_width() -> None:
    from rich.console import Console

    from evolve.render import _width, metrics_tables
    from evolve.scoring import natural_key

    groups = [f"ta {n}x{m}" for n in (15, 20, 30, 50, 100) for m in (15, 20)] + ["la", "ft", "abz", "orb", "swv", "yn"]
    metrics = {"gap_mean_pct": 12.5, "gap_ratio_pct": 11.0, **{f"gap_mean_pct[{g}]": 10.0 + k for k, g in enumerate(groups)}}
    rows = [(name, "ok", -12.5, metrics) for name in ("seed", "mwkr", "fdd_mwkr", "best #182")]
    tables = metrics_tables(rows, (), "baselines on jssp/test", width=80)
    assert len(tables) > 2 and all(_width(t) <= 80 for t in tables)
    shown = [c.header for t in tables[1:] for c in t.columns[1:]]
    assert shown == sorted(groups, key=natural_key)  # every group once, in order, each with the program column
    assert all(t.columns[0].header == "program" for t in tables)
    wide = metrics_tables(rows, (), "", width=400)
    assert len(wide) == 1 and Console(width=400).measure(wide[0]).maximum <= 400
    # no groups (moe on a trace file) in a narrow terminal: one table, not a second, empty
    # "gap per instance group" with only the program column
    plain = {"gap_mean_pct": 27.7, "gap_ratio_pct": 27.7, "balancedness": 0.72, "runtime_ms": 1.5}
    assert len(metrics_tables([("seed.py", "ok", 26.1, plain)], ("balancedness", "runtime_ms"), "", width=40)) == 1


def test_a_report_it_cannot_write_is_a_one_line_error_before_any_evaluation(toy_run: Path, tmp_path: Path) -> None:
    """Before, the report evaluated the best, the seed and every baseline (minutes on a real
    problem) and only then found it could not write its file."""
    import sqlite3

    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("run.lock"))
    with sqlite3.connect(run / "archive.sqlite") as db:
        db.execute("DROP TABLE IF EXISTS split_evaluations")
    result = evolve("report", str(run), "-o", "/proc/report.html")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: /proc/report.html: cannot write the report "
                                                  "(No such file or directory)"]
    with sqlite3.connect(run / "archive.sqlite") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "split_evaluations" not in tables  # nothing was evaluated


def test_a_gap_to_a_baseline_reads_as_below_or_above_it_in_the_run_review_and_report(tmp_path: Path) -> None:
    """serving's gaps are to FCFS's latency, which a good policy is below: review and report
    printed "gap -12.65%", which reads as a loss. With ``[objective] reference`` they say what the
    number is: "12.65% below FCFS's mean E2E latency" (here the toy against twice its optimum)."""
    problem = tmp_path / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    toml = problem / "problem.toml"
    toml.write_text(toml.read_text().replace('direction = "minimize"\n', 'direction = "minimize"\n'
                                             'reference = "twice the optimum"\n', 1))
    verifier = problem / "toy_verifier.py"
    verifier.write_text(verifier.read_text().replace('Reference(best, "optimal", "sorting")',
                                                     'Reference(2 * best, "none", "twice the optimum")'))
    out = tmp_path / "run"
    ran = evolve("run", str(problem), "--iterations", "4", "--out", str(out))
    assert ran.returncode == 0, ran.stderr
    reviewed = evolve("review", str(out))
    assert reviewed.returncode == 0, reviewed.stderr
    report = tmp_path / "report.html"
    reported = evolve("report", str(out), "-o", str(report))
    assert reported.returncode == 0, reported.stderr
    html = report.read_text()
    for text in (ran.stdout, reviewed.stdout):
        assert "% below twice the optimum" in text and "gap -" not in text
    assert "against twice the optimum" in html and "% below</b>" in html and "gap -" not in html
    assert "vs twice the optimum" in reviewed.stdout and "vs twice the optimum" in html  # the columns' headers
    scored = evolve("eval", str(problem), str(problem / "seed.py"), "--split", "quick")  # its tables' caption
    assert scored.returncode == 0 and "every gap is against twice the optimum (negative: below it)" in scored.stdout
    plain = evolve("review", str(out), "--json")  # the stable JSON keeps the signed number
    best = json.loads(plain.stdout)["best"]
    assert best["gap_pct"] < 0


def test_best_takes_a_problem_folder_as_run_does(tmp_path: Path) -> None:
    """`evolve run /abs/my-problem` keeps its run under runs/<name>/; `evolve best /abs/my-problem`
    looked under runs//abs/my-problem/ and found nothing."""
    problem = tmp_path / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    ran = evolve("run", str(problem), "--iterations", "2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    for spelling in (str(problem), "./toy_problem", "toy_problem"):
        found = evolve("best", spelling, "--json", cwd=tmp_path)
        assert found.returncode == 0, (spelling, found.stderr)
        document = json.loads(found.stdout)
        assert document["problem"] == "toy" and Path(document["run_dir"]).parent == Path("runs") / "toy"
    missing = evolve("best", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "nowhere: no such folder" in missing.stderr


def test_best_of_an_unknown_name_says_it_is_unknown_not_run_it(tmp_path: Path) -> None:
    """`evolve best nosuch` said "(run: evolve run nosuch)", a command that fails: no runs and no
    problem by that name is now said as such; a shipped problem without runs keeps the advice."""
    unknown = evolve("best", "nosuch", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr
    assert "no runs under runs/nosuch/" in unknown.stderr and "unknown problem 'nosuch'" in unknown.stderr
    assert "evolve run nosuch" not in unknown.stderr
    shipped = evolve("best", "jssp", cwd=tmp_path)
    assert shipped.returncode == 2 and "(run: evolve run jssp)" in shipped.stderr, shipped.stderr
