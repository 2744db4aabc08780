"""A model's program text that the engine's own readers choke on costs one candidate, never the run.

The controller reads every child before any sandbox sees it: it hashes it (``ast.unparse``),
keys its behaviour (the GP's parser, ``evolve/gp/semantics.py``) and, for audited problems, asks
whether it is one pure expression (``evolve/pure_rule.py``).  Two texts a model can write broke
those readers, and with them the whole run: an integer literal too large for a float (400
digits: ``float()`` raises ``OverflowError``) and an expression nested a few hundred levels
deep (a sum of 500 terms: ``RecursionError`` in ``ast.unparse``; of 5,000: in ``ast.parse``).
The constant tuner read the same literal with ``math.isfinite`` (``OverflowError`` again).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from llm_server import FakeLLMServer, http_error, ok

from evolve.archive import LLM_ERROR, Archive
from evolve.config import resolve_settings
from evolve.edits import EditError, apply_edit
from evolve.gp.semantics import BehaviourKeys
from evolve.llm import make_llm
from evolve.loop import Controller
from evolve.problem import load_problem
from evolve.pure_rule import is_pure_rule
from evolve.tuning import tunable_constants

BLOCK_RE = re.compile(r"# EVOLVE-BLOCK-START\n.*?# EVOLVE-BLOCK-END", re.S)

HUGE_LITERAL = "d + 0 * " + "9" * 400  # the value of d: a legal rule, audited
SUM_500 = " + ".join(["d"] * 500)
SUM_5000 = " + ".join(["d"] * 5000)
GOOD = "np.maximum(d, t + p)"


def _program(expression: str) -> str:
    seed = load_problem("smtt_rule").seed_code
    block = f"# EVOLVE-BLOCK-START\ndef priority(t, p, d):\n    return {expression}\n# EVOLVE-BLOCK-END"
    return BLOCK_RE.sub(lambda _m: block, seed)


def _reply(expression: str) -> str:
    return "Here is the program.\n```python\n" + _program(expression) + "```\n"


def test_a_constant_too_large_for_a_float_is_simply_not_pure_and_keyed_as_code() -> None:
    code = _program(HUGE_LITERAL)
    assert not is_pure_rule(code, "priority")
    keys = BehaviourKeys(load_problem("smtt_rule").spec.rule)
    key = keys.key(code)  # read as code, not as a tree: a key all the same
    assert key is not None and key != keys.key(_program("d"))
    assert tunable_constants(code) == []  # no weight to fit (0 is none either)


@pytest.mark.parametrize("expression", [SUM_500, SUM_5000])
def test_a_program_nested_too_deeply_is_an_edit_error_naming_the_depth(expression: str) -> None:
    seed = load_problem("smtt_rule").seed_code
    with pytest.raises(EditError, match="nest"):
        apply_edit(seed, _reply(expression), "rewrite")


def test_texts_the_engine_cannot_read_cost_one_candidate_and_the_run_goes_on(tmp_path: Path) -> None:
    problem = load_problem("smtt_rule")
    texts = [_reply(e) for e in (HUGE_LITERAL, SUM_500, SUM_5000, GOOD)]
    replies = tmp_path / "completions.jsonl"
    replies.write_text("".join(json.dumps({"iteration": i, "model": "replayed", "text": text, "prompt_tokens": 0,
                                           "completion_tokens": 0, "cost_usd": 0.0}) + "\n"
                               for i, text in enumerate(texts, start=1)))
    settings = resolve_settings(problem.spec.run, None, {"iterations": len(texts), "edit_mode": "rewrite",
                                                         "islands": 1, "cascade": {"enabled": False}})
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    progress = Controller(problem, settings, archive, make_llm(f"replay:{replies}"), tmp_path).run()
    assert progress.stop_reason == "iterations"
    huge, sum500, sum5000, good = (archive.attempt(i) for i in range(1, len(texts) + 1))
    assert huge is not None and huge.program_id is not None
    seed = archive.seed()
    assert seed is not None and archive.program(huge.program_id).score == seed.score  # d + 0: EDD, audited
    for deep in (sum500, sum5000):
        assert deep is not None and deep.program_id is None and "nest" in (deep.error or ""), deep
    assert good is not None and good.program_id is not None
    best = archive.best()
    assert best is not None and best.id == good.program_id


# A reply's lines are matched against patterns (its idea line, fences, "rest unchanged" comments)
# by the controller, for the edit and again for every later prompt that lists the attempt. Runs
# that overlap (spaces, then spaces or a word) backtracked quadratically on a long line that fails
# at its end: a line of 16,000 spaces took 7.3 s of the controller's CPU in the idea pattern, and
# a comment line of 32,000 characters of dots some 14 s in the elision one. Models do emit such
# runs (a whitespace loop until max_tokens), and whitespace is cheap in tokens.
LONG = 100_000  # four such lines: a reply is kept whole up to 1 MiB (evolve/records.py), and its child,
# two of them, under the 256 KiB a program may have (blocks.MAX_PROGRAM_CHARS); quadratic, 16,000 spaces took 7.3 s
STALLING_REPLY = (" " * LONG + "x\n" + " " * LONG + "```" + " " * LONG + "`\n"
                  "Idea: the latest deadline last\n<<<<<<< SEARCH\n    return x * 1.0\n=======\n"
                  "    # " + "..." * (LONG // 3) + "\n    # " + "same " * (LONG // 5) + "\n    return x * 1.0 + 0.0\n"
                  ">>>>>>> REPLACE\n")


def test_long_runs_in_a_reply_cost_the_controller_linear_time(toy_dir: Path, tmp_path: Path) -> None:
    replies = tmp_path / "completions.jsonl"
    replies.write_text("".join(json.dumps({"iteration": i, "model": "replayed", "text": STALLING_REPLY,
                                           "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}) + "\n"
                               for i in (1, 2, 3)))
    # Linear: well under a second of matching. Quadratic, it ran for hours.
    result = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--llm", f"replay:{replies}",
                             "--iterations", "3", "--out", str(tmp_path / "run"), "--no-preflight"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    archive = Archive(tmp_path / "run" / "archive.sqlite", readonly=True)
    assert archive.attempt(1).program_id is not None  # the edit applied (no elision: no word after the dots)


def test_a_lone_surrogate_in_a_servers_reply_costs_one_candidate_not_the_run(toy_dir: Path, tmp_path: Path) -> None:
    """JSON may escape half a surrogate pair ("\\ud800"), and a JavaScript proxy writes one for half
    an emoji: the reply's text then cannot be encoded, and compile() raised UnicodeEncodeError out
    of the edit, which stopped the run with a traceback."""
    edit = "<<<<<<< SEARCH\n    return x * 1.0\n=======\n    return -x  # bigger first {}\n>>>>>>> REPLACE\n"
    with FakeLLMServer(default=ok("Idea: reversed\n" + edit.format(""))) as server:
        server.enqueue(ok("Idea: bigger \ud83d first\n" + edit.format("\ude00")))
        problem = load_problem(str(toy_dir))
        settings = resolve_settings(problem.spec.run, None, {"iterations": 2, "islands": 1})
        archive = Archive(tmp_path / "archive.sqlite", create=True)
        record = tmp_path / "record.jsonl"
        llm = make_llm("openai/test", api_base=server.base_url, record=record)
        progress = Controller(problem, settings, archive, llm, tmp_path).run()
    assert progress.stop_reason == "iterations"
    first = archive.attempt(1)
    assert first is not None and first.completion is not None and "\ufffd" in first.completion
    assert first.program_id is not None and "\ufffd" in archive.program(first.program_id).code
    # --record wrote it (its UTF-8 line had raised, and the reply was lost as a model error)
    assert [json.loads(line)["iteration"] for line in record.read_text().splitlines()] == [1, 2]


SURROGATE_RAISE = 'import sys\n    sys.stderr.write(chr(0xDC80) * 3)\n    raise ValueError("bad " + chr(0xD800))'


def test_a_candidates_lone_surrogate_costs_one_candidate_not_the_run(toy_dir: Path, tmp_path: Path) -> None:
    """An exception message holding half a surrogate pair crosses as JSON ("\\ud800") and parsed to
    a code point no UTF-8 encodes: the archive's write raised UnicodeEncodeError and the run stopped
    with a traceback (exit 1). Now it is written out, as control characters are."""
    raising = f"Idea: boom\n<<<<<<< SEARCH\n    return x * 1.0\n=======\n    {SURROGATE_RAISE}\n>>>>>>> REPLACE\n"
    good = "Idea: bigger first\n<<<<<<< SEARCH\n    return x * 1.0\n=======\n    return -x\n>>>>>>> REPLACE\n"
    replies = tmp_path / "completions.jsonl"
    replies.write_text("".join(json.dumps({"iteration": i, "model": "replayed", "text": text, "prompt_tokens": 0,
                                           "completion_tokens": 0, "cost_usd": 0.0}) + "\n"
                               for i, text in enumerate([raising, good], start=1)))
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--llm", f"replay:{replies}",
                           "--iterations", "2", "--out", str(tmp_path / "run"), "--no-preflight"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    archive = Archive(tmp_path / "run" / "archive.sqlite", readonly=True)
    first = archive.attempt(1)
    assert first is not None and first.program_id is not None
    failed = archive.program(first.program_id)
    assert failed.status == "error" and "bad \\ud800" in failed.feedback


@pytest.mark.parametrize("problem, code", [
    ("smtt", "def schedule(p, d):\n    return [chr(0xD800)] * len(p)\n"),  # a session reply's strings
    ("smtt", f"def schedule(p, d):\n    {SURROGATE_RAISE}\n"),  # a session call's error
])
def test_evolve_eval_writes_a_lone_surrogate_out(tmp_path: Path, problem: str, code: str) -> None:
    program = tmp_path / "program.py"
    program.write_text(code)
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", problem, str(program), "--split", "quick"],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "UnicodeEncodeError" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 1, done.stderr[-2000:]  # the program failed, and evolve eval said so
    assert "\\ud800" in done.stdout


def test_a_lone_surrogate_in_a_servers_error_costs_one_attempt_not_the_run(toy_dir: Path, tmp_path: Path) -> None:
    """A server's error body is read as JSON too, and its message reaches the failed attempt's row."""
    good = "Idea: reversed\n<<<<<<< SEARCH\n    return x * 1.0\n=======\n    return -x\n>>>>>>> REPLACE\n"
    with FakeLLMServer(default=ok(good)) as server:
        server.enqueue(*[http_error(400, message="bad \ud800 request")] * 3)
        problem = load_problem(str(toy_dir))
        settings = resolve_settings(problem.spec.run, None, {"iterations": 3, "islands": 1})
        archive = Archive(tmp_path / "archive.sqlite", create=True)
        llm = make_llm("openai/test", api_base=server.base_url, retry_base_delay_s=0.01)
        progress = Controller(problem, settings, archive, llm, tmp_path).run()
    assert progress.stop_reason == "iterations"
    first = archive.attempt(1)
    assert first is not None and first.outcome == LLM_ERROR and "bad \\ud800 request" in (first.error or "")


# The same half pair as raw bytes: the sandbox side writes JSON in ASCII (escapes), but the
# candidate shares that process and can forge its replies and lines (UTF-8 ED A0 80 is a lone
# surrogate that only "surrogatepass" decodes). The escape check above let it through, and a moe
# program's forged reply stopped `evolve eval` and `evolve run` with a traceback at the print and
# the archive's write (fourteenth red team).
def forged_moe_program(reply: bytes) -> str:
    """A moe program whose every reply is the JSON ``reply``: it replaces the reply encoder of the
    sandbox side, which runs in its own process."""
    return f'''import sys

_child, _channel = sys.modules["evolve.sandbox.session_child"], sys.modules["evolve.sandbox.channel"]
_child.encode = lambda value: (_channel.JSON, b"", {reply!r})


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    return None
'''


RAW_HALF_PAIR_REPLY = forged_moe_program(b'{"returned": "\xed\xa0\x80 half a pair"}')

RAW_HALF_PAIR_LINE = '''import sys

_child = sys.modules["evolve.sandbox.child"]
_child._encode = lambda solution, error: b'{"solution": "\\xed\\xa0\\x80 half a pair", "error": null}'


def f(x):
    return x
'''


def test_half_a_surrogate_pair_as_raw_bytes_in_a_session_reply_costs_one_candidate(tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(RAW_HALF_PAIR_REPLY)
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "moe", str(program), "--split", "quick"],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "UnicodeEncodeError" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 1, done.stderr[-2000:]  # the program failed, and evolve eval said so
    assert "malformed reply from the sandbox" in done.stdout


def test_half_a_surrogate_pair_as_raw_bytes_in_a_batch_line_is_malformed() -> None:
    from evolve.sandbox import Sandbox, SandboxLimits
    from evolve.verifier import Instance

    tests = str(Path(__file__).resolve().parent)
    with Sandbox("sandbox_fixtures:EchoVerifier", SandboxLimits(timeout_s=5.0, memory_mb=512), slot=18,
                 extra_sys_path=[tests]) as sb:
        forged = sb.run(RAW_HALF_PAIR_LINE, "f", [Instance("a", "g", {"x": 1})])
        honest = sb.run(RAW_HALF_PAIR_LINE.replace("_child._encode =", "_unused ="), "f",
                        [Instance("a", "g", {"x": 1})])
    assert honest.status == "ok" and honest.runs[0].solution == 1  # the control
    assert forged.status == "ok" and len(forged.runs) == 1
    run = forged.runs[0]
    assert run.solution is None and "malformed" in (run.error or ""), run
    json.dumps(run.error, ensure_ascii=False).encode()  # no lone surrogate anywhere


def test_code_too_large_to_parse_is_an_edit_error_before_any_parse(toy_dir: Path, tmp_path: Path) -> None:
    """A model's code is parsed as Python in the trusted process, several times: the parser holds
    about 1 KB per literal, and a 9.5 MiB list of numbers took 12 s and 4.7 GB (a 64 MiB reply, as
    the HTTP clients and files: read, would have taken the machine's memory; fourteenth red team).
    Code longer than MAX_PROGRAM_CHARS is not parsed, in every form a reply can take."""
    from evolve.edits import MAX_PROGRAM_CHARS, edit_child

    parent = (toy_dir / "seed.py").read_text()
    table = "1, " * (MAX_PROGRAM_CHARS // 3 + 10)
    function = f"def priority(x):\n    w = [{table}]\n    return x * w[0]\n"
    forms = {
        "diff": f"<<<<<<< SEARCH\n    return x * 1.0\n=======\n    w = [{table}]\n    return x * w[0]\n>>>>>>> REPLACE\n",
        "definitions": f"```python\n{function}```\n",
        "program": f"```python\n{parent.replace('    return x * 1.0', f'    w = [{table}]')}```\n",
        "unfenced": function,
    }
    for form, reply in forms.items():  # unfenced code that long is not read as code at all
        said = "holds no SEARCH/REPLACE block" if form == "unfenced" else f"at most {MAX_PROGRAM_CHARS:,} are read"
        with pytest.raises(EditError, match=said):
            edit_child(parent, reply, "rewrite" if form != "diff" else "diff")
    runaway = forms["diff"].replace(f"w = [{table}]\n    return x * w[0]", "return -x") + "x" * (3 << 19)
    assert "return -x" in edit_child(parent, runaway, "diff").code  # the control: prose is not parsed
    replies = tmp_path / "completions.jsonl"
    replies.write_text(json.dumps({"iteration": 1, "model": "replayed", "text": forms["diff"], "prompt_tokens": 0,
                                   "completion_tokens": 0, "cost_usd": 0.0}) + "\n")
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--llm", f"replay:{replies}",
                           "--iterations", "1", "--out", str(tmp_path / "run"), "--no-preflight"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    attempt = Archive(tmp_path / "run" / "archive.sqlite", readonly=True).attempt(1)
    assert attempt is not None and attempt.program_id is None and "are read" in (attempt.error or "")


def test_a_program_grown_past_the_bound_by_small_edits_is_an_edit_error() -> None:
    from evolve.edits import MAX_PROGRAM_CHARS, edit_child

    table = "1, " * (MAX_PROGRAM_CHARS // 3 - 100)
    parent = f"import numpy as np\n\n# EVOLVE-BLOCK-START\nW = [{table}]\n\n\ndef priority(x):\n    return x * 1.0\n# EVOLVE-BLOCK-END\n"
    assert len(parent) < MAX_PROGRAM_CHARS
    grow = "<<<<<<< SEARCH\n    return x * 1.0\n=======\n    return x * W[0] + " + " + ".join(["1.0"] * 200) + "\n>>>>>>> REPLACE\n"
    with pytest.raises(EditError, match=f"the edited program is .* characters; at most {MAX_PROGRAM_CHARS:,} are read"):
        edit_child(parent, grow, "diff")
    assert "W[0] + 1.0" in edit_child(parent, grow.replace(" + ".join(["1.0"] * 200), "1.0"), "diff").code  # control
