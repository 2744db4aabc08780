"""A candidate's text reaches the researcher's browser as text, never as markup.

Program code, its error and its printout are the candidate's own words, and the report
(``evolve report``) shows all three.  A program written to inject a script into that page
(in a comment of the best program, in an exception message, on stderr) must appear escaped;
a control checks the words did reach the page.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
INJECTED = ("<script>document.title='pwned-code'</script>", "<img src=x onerror=alert('pwned-error')>",
            "<script>alert('pwned-print')</script>")
# A bidirectional override shows code in another order than it runs ("Trojan Source"), and the
# page showed it raw, with control characters (seventh red team); now they are written out.
TROJAN = "# \u202epwned-bidi\u2066 \x1b[2J\x07"
SEED_BLOCK = re.compile(r"# EVOLVE-BLOCK-START\n.*?# EVOLVE-BLOCK-END", re.S)


def reply(seed: str, block: str) -> str:
    return "```python\n" + SEED_BLOCK.sub(lambda _m: "# EVOLVE-BLOCK-START\n" + block + "# EVOLVE-BLOCK-END", seed) + "```\n"


def test_code_errors_and_printouts_are_escaped_in_the_report(tmp_path: Path) -> None:
    problem = tmp_path / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    seed = (problem / "seed.py").read_text()
    blocks = [
        f"def priority(x):\n    print({INJECTED[2]!r})\n    raise RuntimeError({INJECTED[1]!r})\n",
        f"# {INJECTED[0]}\n{TROJAN}\ndef priority(x):\n    return -x * 1.0\n",  # better than the seed: the best
    ]
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"iteration": k, "model": "replayed", "text": reply(seed, b),
                                           "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}) + "\n"
                               for k, b in enumerate(blocks, start=1)))
    run, page_path = tmp_path / "run", tmp_path / "report.html"
    cli = [sys.executable, "-m", "evolve.cli"]
    made = subprocess.run([*cli, "run", str(problem), "--llm", f"replay:{replies}", "--edit-mode", "rewrite",
                           "--iterations", "2", "--out", str(run)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    built = subprocess.run([*cli, "report", str(run), "-o", str(page_path)], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    page = page_path.read_text()
    for text in INJECTED:
        assert text not in page
    for word in ("pwned-code", "pwned-error", "pwned-bidi"):  # the control: the candidate's words are on the page
        assert word in page, word
    assert not [c for c in "\u202e\u2066\x1b\x07" if c in page]


def test_a_one_line_edit_is_summarised_written_out_in_the_report_and_the_live_view(tmp_path: Path) -> None:
    """A lineage step and a live proposal are summarised by their edit when it is one line: the
    summary showed a bidirectional override and escapes raw (the diff below it was written out;
    fourteenth red team)."""
    from evolve.watch import LiveView

    problem = tmp_path / "toy_problem"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    edit = "<<<<<<< SEARCH\n    return x * 1.0\n=======\n    return -x * 1.0  " + TROJAN + "\n>>>>>>> REPLACE\n"
    replies = tmp_path / "replies.jsonl"
    replies.write_text(json.dumps({"iteration": 1, "model": "replayed", "text": edit, "prompt_tokens": 0,
                                   "completion_tokens": 0, "cost_usd": 0.0}) + "\n")
    run, page_path = tmp_path / "run", tmp_path / "report.html"
    cli = [sys.executable, "-m", "evolve.cli"]
    made = subprocess.run([*cli, "run", str(problem), "--llm", f"replay:{replies}", "--iterations", "1",
                           "--out", str(run)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    built = subprocess.run([*cli, "report", str(run), "-o", str(page_path)], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    for page in (page_path.read_text(), LiveView(run).fragment()[1]):
        assert "pwned-bidi" in page  # the control: the edit is shown
        assert not [c for c in "\u202e\u2066\x1b\x07" if c in page]
