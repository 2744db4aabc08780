"""The CLI as users type it (real subprocesses, real SMTT verifier)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "problems" / "smtt" / "seed.py"


def evolve(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def test_problems_lists_smtt_with_baselines() -> None:
    result = evolve("problems")
    assert result.returncode == 0, result.stderr
    assert "smtt" in result.stdout and "mdd" in result.stdout


def test_the_command_line_starts_without_the_engine() -> None:
    """`evolve --help` and every command's parsing need typer and rich only: the tables, the
    evaluation, the GP (numpy) and the settings (pydantic) load when a command uses them."""
    probe = ("import sys, evolve.cli; heavy = ('numpy', 'pydantic', 'evolve.render', 'evolve.evaluation', "
             "'evolve.config', 'evolve.gp', 'evolve.sandbox', 'litellm'); print([m for m in heavy if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
    shown = evolve("--help")
    assert shown.returncode == 0 and "eval" in shown.stdout and "review" in shown.stdout


@pytest.mark.parametrize("command", ["run", "resume", "eval", "baselines", "review", "best", "problems"])
def test_every_command_help_shows_an_example(command: str) -> None:
    result = evolve(command, "--help")
    assert result.returncode == 0 and "Examples" in result.stdout and "$ evolve" in result.stdout


def test_the_command_list_gives_each_command_a_summary_that_does_not_break_mid_sentence() -> None:
    """`evolve --help` lists each command by the first paragraph of its help, line breaks kept:
    'Score one program file ... a feasible' then 'evaluation with no gap ...' on a row of its own
    read as broken text to a newcomer. The summary is one line; details follow a blank line."""
    import typer.main

    from evolve.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert len(commands) >= 15
    for name, command in commands.items():
        summary = (command.help or "").strip().split("\n\n")[0]
        assert summary and "\n" not in summary, (name, summary)
    listing = evolve("--help").stdout
    assert "a feasible" not in listing and "the same sandbox and" in listing  # eval's details stay on its page


def test_eval_json_follows_the_documented_contract() -> None:
    result = evolve("eval", "smtt", str(SEED), "--split", "quick", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {"problem", "split", "score", "metrics", "instances"} <= set(doc)
    assert doc["problem"] == "smtt" and doc["split"] == "quick"
    row = doc["instances"][0]
    assert {"name", "objective", "reference", "reference_kind", "gap", "feasible", "error"} <= set(row)
    assert row["reference_kind"] in {"optimal", "best_known", "bound", "none"}
    assert doc["score"] == pytest.approx(-doc["metrics"]["gap_mean_pct"])


def test_eval_can_pick_single_instances_by_name() -> None:
    names = [row["name"] for row in json.loads(evolve("eval", "smtt", str(SEED), "--split", "quick", "--json").stdout)["instances"]]
    result = evolve("eval", "smtt", str(SEED), "--split", "quick", "--instance", names[1], "--json")
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)["instances"]] == [names[1]]


def test_eval_of_an_infeasible_program_exits_1_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def schedule(p, d):\n    return [0] * len(p)\n")
    result = evolve("eval", "smtt", str(bad), "--split", "quick")
    assert result.returncode == 1
    assert "infeasible" in result.stdout and "twice" in result.stdout


def test_eval_of_a_program_that_does_not_parse_shows_the_error_not_empty_tables(tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("def schedule(p, d) return\n")
    result = evolve("eval", "smtt", str(bad), "--split", "quick")
    assert result.returncode == 1
    assert "no instance was run" in result.stdout and "SyntaxError: expected ':' (line 1)" in result.stdout
    assert "┏" not in result.stdout  # no table of zero instances, no table of dashes


def test_candidate_text_with_brackets_is_printed_verbatim(tmp_path: Path) -> None:
    """Error text comes from the candidate: it must never be read as rich markup."""
    bad = tmp_path / "bad.py"
    bad.write_text("def schedule(p, d):\n    raise ValueError('[bold]x[/] [/oops]')\n")
    result = evolve("eval", "smtt", str(bad), "--split", "quick")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "[/oops]" in result.stdout


def test_eval_writes_solutions_and_reads_an_instances_file(tmp_path: Path) -> None:
    instances = tmp_path / "inst.json"
    instances.write_text(json.dumps({"instances": [{"name": "tiny", "p": [3, 2, 4], "d": [2, 6, 5], "optimum": 3}]}))
    solutions = tmp_path / "sol.json"
    result = evolve("eval", "smtt", str(SEED), "--instances", str(instances), "--json", "--solutions-out", str(solutions))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["instances"][0]["reference"] == 3 and doc["instances"][0]["reference_kind"] == "optimal"
    assert json.loads(solutions.read_text())[0]["name"] == "tiny"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("eval", "smtt", "missing.py"), "missing.py: program not found"),
        (("run", "nope"), "unknown problem 'nope'"),
        # a path that is not there, or a program where the problem goes: they read "unknown problem"
        (("run", "./no-such-problem"), "./no-such-problem: no such folder; expected a problem folder with problem.toml"),
        (("run", str(SEED)), f"{SEED}: a file, not a problem; expected a problem name (jssp, "),
        (("eval", "smtt", str(SEED), "--split", "valid"), "unknown split 'valid'"),
        (("review", "no/such/run"), "not a run folder"),
        (("run", "smtt", "--edit-mode", "patch"), "key 'edit_mode'"),
        (("eval", "smtt", str(SEED), "--split", "quick", "--instance", "nope"), "no instance named 'nope'"),
        (("eval", "smtt", str(SEED), "--option", "noequals"), "expected KEY=VALUE"),
        (("eval", "smtt", str(SEED), "--split", "quick", "--option", "colour=3"), "colour"),
        (("eval", "smtt", str(SEED), "--split", "quick", "--plot", "x.png"), "no picture"),
        # click's own usage errors are one line too
        (("run", "smtt", "--iterationz", "3"), "No such option: --iterationz"),
        (("run",), "Missing argument"),
        (("run", "smtt", "--iterations", "many"), "Invalid value for '--iterations'"),
        (("frobnicate",), "No such command 'frobnicate'"),
        # files that are not what they should be, found before any work
        (("run", "smtt", "--config", "{tmp}"), "is a folder, expected a TOML file"),
        (("run", "smtt", "--config", "{tmp}/latin1.toml"), "latin1.toml: TOML file is not UTF-8 text"),
        # problem.toml's [run] table copied into a config file as it is
        (("run", "smtt", "--config", "{tmp}/run_table.toml"),
         "; a config file holds run settings at its top level: drop the [run] line"),
        # a wrong value in the file was silently replaced by the flag of the same key
        (("run", "smtt", "--config", "{tmp}/five.toml", "--iterations", "1"),
         "five.toml: key 'iterations': Input should be a valid integer (got 'five')"),
        # a wrong flag beside a good file: the file was blamed ("good.toml: key 'iterations'")
        (("run", "smtt", "--config", "{tmp}/good.toml", "--iterations", "-1"),
         "error: command line: key 'iterations': Input should be greater than or equal to 0 (got -1)"),
        # a validation split the problem does not have: the verifier's line named no setting
        (("run", "jssp", "--config", "{tmp}/select.toml", "--iterations", "1"),
         "error: select_on = 'valid': unknown split 'valid' for jssp"),
        (("eval", "smtt", "{tmp}/latin1.py"), "latin1.py: program is not UTF-8 text"),
        (("eval", "smtt", str(SEED), "--solutions-out", "{tmp}/missing/s.json"), "folder {tmp}/missing does not exist"),
        # a folder that takes no files (procfs creates none, even for root): it was a traceback after the work
        (("eval", "smtt", str(SEED), "--split", "quick", "--solutions-out", "/proc/s.json"),
         "/proc/s.json: cannot write the solutions file there (No such file or directory)"),
        (("eval", "serving", str(REPO / "problems" / "serving" / "seed.py"), "--trace", "{tmp}/latin1.csv"),
         "latin1.csv: not UTF-8 text"),
        (("eval", "smtt", str(SEED), "--instances", "{tmp}"), "is a folder, expected a file of instances"),
        # both: the split was silently ignored
        (("eval", "smtt", str(SEED), "--split", "test", "--instances", "{tmp}/i.json"),
         "--split test and --instances {tmp}/i.json: give one of them"),
        (("compare", str(SEED), str(SEED), "--problem", "smtt", "--split", "quick", "--instances", "{tmp}/i.json"),
         "--split quick and --instances {tmp}/i.json: give one of them"),
        (("run", "smtt", "--option", "colour=3"), "--option colour: unknown key (expected one of "),
        (("run", "jssp", "--scheme", "sideways"), "--option scheme: Input should be 'non_delay' or 'active'"),
        (("run", "{tmp}/empty", "--iterations", "2"), "{tmp}/empty: no problem.toml in this folder"),
        (("eval", "smtt", "{tmp}/rule:x:.py"), "{tmp}/rule:x:.py: program not found"),  # as written, no emoji
        # commands with a progress bar on stderr: no blank line left before the error
        (("baselines", "smtt", "--split", "nope"), "unknown split 'nope' (expected one of: quick, train, test)"),
        # only the splits the problem has (valid and fit were listed for every problem)
        (("eval", "smtt_rule", str(SEED), "--split", "nope"),
         "unknown split 'nope' (expected one of: quick, train, test, valid, fit)"),
        (("compare", "{tmp}/a.py", str(SEED), "--problem", "smtt"), "a.py: program not found"),
    ],
)
def test_user_mistakes_are_one_line_errors_with_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "latin1.toml").write_bytes("iterations = 3 # caf\xe9".encode("latin-1"))
    (tmp_path / "run_table.toml").write_text("[run]\niterations = 5\n")
    (tmp_path / "select.toml").write_text('select_on = "valid"\n')
    (tmp_path / "five.toml").write_text('iterations = "five"\n')
    (tmp_path / "good.toml").write_text("islands = 2\n")
    (tmp_path / "latin1.csv").write_bytes("arrived_at,num_prefill_tokens,num_decode_tokens\n0,1\xe9,2\n".encode("latin-1"))
    (tmp_path / "latin1.py").write_bytes("# caf\xe9\ndef schedule(p, d):\n    return list(range(len(p)))\n".encode("latin-1"))
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    message = message.replace("{tmp}", str(tmp_path))
    result = evolve(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, repr(result.stderr)
    assert not (tmp_path / "runs").exists(), "a failed run must not leave a run folder"


def test_baselines_json_scores_every_baseline_and_the_seed() -> None:
    result = evolve("baselines", "smtt", "--split", "quick", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    rows = {row["name"]: row for row in doc["baselines"]}
    assert {"seed", "edd", "spt", "mdd", "eddc", "mddc", "mddc_augmented"} <= set(rows)
    assert all(row["status"] == "ok" for row in rows.values())
    assert rows["mdd"]["score"] > rows["edd"]["score"]  # MDD beats EDD on tardiness


def test_run_then_review_then_best(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "smtt" / "r1"
    result = evolve("run", "smtt", "--iterations", "4", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "offline search: GP" in result.stdout
    assert (out / "archive.sqlite").is_file() and (out / "best.py").is_file()
    # the end of a run points at the held-out comparison, the question a user has next
    assert result.stdout.rstrip().endswith(f"against the baselines on held-out instances: evolve review {out} --test")

    review = evolve("review", str(out), "--json")
    assert review.returncode == 0, review.stderr
    doc = json.loads(review.stdout)
    assert {"problem", "iterations", "programs", "seed", "best"} <= set(doc)
    assert doc["iterations"] == 4 and doc["seed"]["id"] is not None
    assert {"id", "score", "metrics"} <= set(doc["best"])

    text = evolve("review", str(out))
    assert text.returncode == 0 and "leaderboard" in text.stdout

    best = evolve("best", "smtt", "--json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["score"] == doc["best"]["score"]


def test_a_baseline_that_fails_says_why_and_exits_1(toy_dir: Path) -> None:
    """It was an 'error' row in the table and exit 0, with no reason anywhere."""
    (toy_dir / "baselines" / "broken.py").write_text("def order(x:\n")
    (toy_dir / "baselines" / "misnamed.py").write_text("def ordr(x):\n    return list(range(len(x)))\n")
    result = evolve("baselines", str(toy_dir), "--split", "quick")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{toy_dir / 'baselines' / 'broken.py'}: error: SyntaxError: '(' was never closed (line 1)",
        f"{toy_dir / 'baselines' / 'misnamed.py'}: error: program does not define a function 'order'",
    ]
    assert "descending" in result.stdout  # the others are scored and shown as before
