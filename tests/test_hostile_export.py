"""What `evolve export` writes above the program is comments, whatever the archive's texts hold.

The export is the one path by which a program leaves the sandbox to run with the user's
rights: the header says it is inert. A replay file's "model" is any JSON string, and the
archive kept it as the programs' model; the header printed it raw, so a name holding a line
break put a line of code above the program (fourteenth red team: `import os; ...` ran when the
exported rule was imported). `evolve review` printed the same name's escape sequences raw.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "evolve.cli"]
REPLY = "<<<<<<< SEARCH\n    return x * 1.0\n=======\n    return -x\n>>>>>>> REPLACE\n"


def payload(marker: Path) -> str:
    return f"gpt-x\nimport pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n#"


def record(path: Path, model: str) -> Path:
    path.write_text(json.dumps({"iteration": 1, "model": model, "text": REPLY, "prompt_tokens": 1,
                                "completion_tokens": 1, "cost_usd": 0.0}) + "\n")
    return path


def evolve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_replay_files_model_name_with_a_line_break_or_escape_is_a_one_line_error(toy_dir: Path,
                                                                                    tmp_path: Path) -> None:
    for k, model in enumerate([payload(tmp_path / "marker"), "gpt-y\x1b]0;pwned\x07\x1b[2J"]):
        replies = record(tmp_path / f"r{k}.jsonl", model)
        done = evolve("run", str(toy_dir), "--llm", f"replay:{replies}", "--iterations", "1", "--out", f"run{k}",
                      "--no-preflight", cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"replay file {replies} line 1: 'model'" in lines[0] and "\x1b" not in lines[0]
        assert not (tmp_path / f"run{k}").exists()
    ok = evolve("run", str(toy_dir), "--llm", f"replay:{record(tmp_path / 'fine.jsonl', 'openai/gpt-4.1 (ünïcode)')}",
                "--iterations", "1", "--out", "fine", "--no-preflight", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr  # the control: a plain name is replayed


def test_an_exported_header_is_comments_whatever_the_archive_holds(toy_dir: Path, tmp_path: Path) -> None:
    made = evolve("run", str(toy_dir), "--llm", f"replay:{record(tmp_path / 'r.jsonl', 'replayed')}",
                  "--iterations", "1", "--out", "run", "--no-preflight", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    marker = tmp_path / "marker"
    with sqlite3.connect(tmp_path / "run" / "archive.sqlite") as db:  # an archive of an older version, or edited
        changed = db.execute("UPDATE programs SET model = ? WHERE model IS NOT NULL",
                             (payload(marker) + "\x1b]0;pwned\x07\r# \x85\u2028",)).rowcount
    assert changed >= 1
    done = evolve("export", "run", "-o", "rule.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "rule.py").read_text()
    header, _, code = text.partition("\n\n")
    assert "gpt-x" in header and "pwned" in header  # the control: the name is shown
    for line in header.split("\n"):
        assert line.startswith("#") and "\r" not in line and "\x1b" not in line, repr(line)
    assert code.startswith("import numpy as np")
    ran = subprocess.run([sys.executable, "-c", "import rule; print(rule.order([3, 1, 2]))"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "[0, 2, 1]", ran.stderr
    assert not marker.exists()
