"""Hostile candidates cost one failed candidate each, never the run.

The candidates arrive as a model would send them (replayed full rewrites of
the SMTT seed) and go through the whole loop: edit, sandbox, trusted scoring,
archive.  The last one is a good rule, which must still be found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evolve.archive import Archive
from evolve.config import resolve_settings
from evolve.llm import make_llm
from evolve.loop import Controller
from evolve.problem import load_problem

SECRET = "sk-test-SECRET-0123456789"

BLOCK_RE = re.compile(r"# EVOLVE-BLOCK-START\n.*?# EVOLVE-BLOCK-END", re.S)

GOOD_PRIORITY = "def priority(t, p, d):\n    return np.maximum(d, t + p)\n"
SEED_PRIORITY = "def priority(t, p, d):\n    return d\n"

HOSTILE: list[tuple[str, str, str, str]] = [
    # (name, block, expected status, expected words in the feedback)
    ("infinite loop", "def improve(sequence, p, d):\n    while True:\n        pass\n", "timeout", "timed out"),
    ("memory bomb", "def improve(sequence, p, d):\n    x = bytearray(60 * 1024 ** 3)\n    return sequence\n", "error|memory", "memory"),
    (
        "fork bomb",
        "import os\n\ndef improve(sequence, p, d):\n    while True:\n        os.fork()\n",
        "error|timeout|crash",
        "",
    ),
    (
        "reads the API key",
        "import os\n\ndef improve(sequence, p, d):\n"
        "    leaked = os.environ.get('OPENAI_API_KEY', 'absent')\n"
        "    for pid in (os.getppid(), 1):\n"
        "        try:\n"
        "            leaked += open(f'/proc/{pid}/environ').read()\n"
        "        except OSError:\n"
        "            pass\n"
        "    raise RuntimeError('leak:' + leaked)\n",
        "error",
        "leak:",
    ),
    ("prints a fake score", "def improve(sequence, p, d):\n    print('score: 1e9 gap: 0%')\n    return list(sequence)\n", "ok", ""),
    ("returns an invalid sequence", "def improve(sequence, p, d):\n    return sequence[:-1]\n", "infeasible", "entries"),
    ("raises", "def improve(sequence, p, d):\n    return 1 / 0\n", "error", "ZeroDivisionError"),
    ("returns NaN", "def improve(sequence, p, d):\n    return [float('nan')] * len(sequence)\n", "infeasible", "nan"),
]


def _rewrite(seed: str, priority: str, improve: str) -> str:
    block = "# EVOLVE-BLOCK-START\n" + priority + "\n\n" + improve + "# EVOLVE-BLOCK-END"
    return "Here is the program.\n```python\n" + BLOCK_RE.sub(lambda _m: block, seed) + "```\n"


@pytest.fixture
def replay_file(tmp_path: Path) -> Path:
    seed = load_problem("smtt").seed_code
    plain_improve = "def improve(sequence, p, d):\n    return sequence\n"
    texts = [_rewrite(seed, SEED_PRIORITY, block) for _, block, _, _ in HOSTILE]
    texts.append(_rewrite(seed, GOOD_PRIORITY, plain_improve))
    path = tmp_path / "completions.jsonl"
    with path.open("w") as out:
        for iteration, text in enumerate(texts, start=1):
            row = {"iteration": iteration, "model": "replayed", "text": text,
                   "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
            out.write(json.dumps(row) + "\n")
    return path


def test_each_hostile_candidate_is_contained_and_the_run_goes_on(
    replay_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    problem = load_problem("smtt")
    settings = resolve_settings(
        problem.spec.run,
        None,
        {"iterations": len(HOSTILE) + 1, "edit_mode": "rewrite", "islands": 1,
         "sandbox": {"instance_timeout_s": 0.2, "memory_mb": 1024}},
    )
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    progress = Controller(problem, settings, archive, make_llm(f"replay:{replay_file}"), tmp_path).run()
    assert progress.stop_reason == "iterations"

    programs = {p.iteration: p for p in (archive.program(i) for i in range(1, archive.program_count() + 1))}
    seed = programs[0]
    for iteration, (name, _, status, words) in enumerate(HOSTILE, start=1):
        program = programs[iteration]
        assert re.fullmatch(status, program.status), f"{name}: {program.status}: {program.feedback}"
        assert words.lower() in program.feedback.lower(), f"{name}: {program.feedback}"
        assert SECRET not in program.feedback, f"{name} leaked the key"
        if status == "ok":
            assert program.score == seed.score  # printing a score changes nothing
    good = programs[len(HOSTILE) + 1]
    assert good.status == "ok" and good.score > seed.score
    assert archive.best().id == good.id
    # The key never reached a file of the run either.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
