"""The verifiers' secret: where the built-in instances' randomness comes from.

A candidate that knew an instance's seed could rebuild it: a serving trace's
future arrivals and true output lengths, or the MoE windows its placement will
be judged on.  So the seeds are not in the code: each instance's random streams
derive from 128 bits of entropy committed in ``<problem>/data/seeds.json``,
which is outside the sandbox's filesystem view and read only here, in the
trusted process (this module is never imported into the candidate's worker:
tests/test_sandbox_sides.py).  The file is committed, so figures are the same
on every installation.

Each instance gets its own key, HMAC-SHA-256(secret, label), so knowing the
random streams of one (the quick and train ones are seen by the search) tells
nothing about another's (the test split's).  Used by the serving, MoE, JSSP,
smtt and smtt_rule verifiers.  Trusted side only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import numpy as np

from evolve.errors import UserError

SEEDS_FILE = Path("data") / "seeds.json"
MAKE_ONE = "python -c \"import json, secrets; print(json.dumps({'entropy': secrets.token_hex(16)}))\" > "


def load_secret(problem_dir: Path, seeded: str) -> bytes:
    """The bytes of ``problem_dir/data/seeds.json`` (field ``entropy``: at least 32 hex digits).

    ``seeded`` names what the secret seeds, for the error (e.g. "the serving verifier seeds its
    built-in traces")."""
    path = Path(problem_dir) / SEEDS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing; {seeded} from a secret there, "
                        f"make one with: {MAKE_ONE}{path}") from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read the seeds file ({err})") from None
    entropy = data.get("entropy") if isinstance(data, dict) else None
    try:
        secret = bytes.fromhex(entropy) if isinstance(entropy, str) else b""
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise UserError(f"{path}: field 'entropy': expected at least 32 hex digits (128 bits), got {entropy!r}")
    return secret


def streams(secret: bytes, label: str, count: int) -> list[np.random.Generator]:
    """``count`` independent generators for the instance called ``label``, keyed by the secret."""
    key = hmac.new(secret, label.encode(), hashlib.sha256).digest()[:16]
    root = np.random.SeedSequence(int.from_bytes(key, "little"))
    return [np.random.default_rng(child) for child in root.spawn(count)]


def file_label(path: Path) -> str:
    """A CSV trace's label: the digest of the whole file, true output lengths included."""
    return "file " + hashlib.sha256(Path(path).read_bytes()).hexdigest()
