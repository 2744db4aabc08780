"""Can an exported program behave differently from what was scored? (seventh red team probe)

    PYTHONPATH=. python bench/export_tell.py [--tries 5]

The program is the toy problem's rule with one extra line and no import: it compares the order
of a set of eight strings with the order they have under the sandbox's hash seed
(``PYTHONHASHSEED=0``) and ranks "bigger first" (gap 0 %) when they agree, the seed's "lower
first" (gap 103.75 %) otherwise.  It goes through a real run (a replayed reply, ``evolve run``),
``evolve export``, and ``evolve eval`` of the exported file, as the export's header advises; then
the exported module is imported in ``--tries`` fresh interpreters with the hash seed Python picks
by default, as in a user's process, and in one with ``PYTHONHASHSEED=0``.  Printed: the run's
score, the eval's table, and the order each import gives for ``x = [5, 1, 4, 2, 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOY = Path(__file__).resolve().parent.parent / "tests" / "toy_problem"
BLOCK = '''# EVOLVE-BLOCK-START
_SEEN = list({"a", "b", "c", "d", "e", "f", "g", "h"}) == ["d", "f", "g", "h", "b", "c", "a", "e"]


def priority(x):
    """Bigger goes first."""
    return -x if _SEEN else x * 1.0
# EVOLVE-BLOCK-END'''


def evolve(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "evolve.cli", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return done.stdout


def imported_order(folder: Path, hash_seed: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    code = "import rule; print(rule.order([5, 1, 4, 2, 3]))"
    return subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-tell-") as tmp:
        folder = Path(tmp)
        shutil.copytree(TOY, folder / "toy")
        seed = (folder / "toy" / "seed.py").read_text()
        child = re.sub(r"# EVOLVE-BLOCK-START\n.*?# EVOLVE-BLOCK-END", lambda _m: BLOCK, seed, flags=re.S)
        reply = {"iteration": 1, "model": "replayed", "text": f"Idea: bigger first\n```python\n{child}\n```\n",
                 "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        (folder / "reply.jsonl").write_text(json.dumps(reply) + "\n")
        out = evolve("run", "toy", "--llm", "replay:reply.jsonl", "--iterations", "1", "--edit-mode", "rewrite",
                     "--out", "run", "--no-preflight", cwd=folder)
        print(next(line for line in out.splitlines() if line.startswith("stopped")))
        evolve("export", "run", "-o", "rule.py", cwd=folder)
        print("evolve eval toy rule.py (the sandbox):")
        print(evolve("eval", "toy", "rule.py", cwd=folder).rstrip())
        print("imported with PYTHONHASHSEED=0 (the sandbox's):", imported_order(folder, "0"))
        for k in range(args.tries):
            print(f"imported with Python's own hash seed, try {k + 1}:", imported_order(folder, None))
        print("(bigger first is [0, 2, 4, 3, 1]; the seed's lower first is [1, 3, 4, 2, 0])")


if __name__ == "__main__":
    main()
