"""Step-latency cost models: named hardware/model profiles and user-supplied ones.

A step that computes ``P`` prefill tokens and ``D`` decode tokens (one per
decoding request), whose decoding requests hold ``K`` KV tokens in total, takes

    time = b0 + b1 * P + b2 * D + b3 * K        (microseconds)

This linear form is the one Vidur and Sarathi-Serve use for a first-order
model of an iteration: a fixed cost (weights streamed once per step), a
per-token compute cost and a per-token memory cost for attention over the KV
cache.  ``b3`` is the time to stream one token's K and V from HBM at the GPU's
peak bandwidth: Llama-3.1-8B keeps 2 (K, V) x 32 layers x 8 KV heads x 128
dims x 2 bytes (bf16) = 128 KiB per token; at 3.35 TB/s (H100 SXM) that is
0.0391 us, at 2.039 TB/s (A100 80GB SXM) 0.0643 us (docs/serving.md compares
the resulting step times with published measurements).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.errors import UserError


@dataclass(frozen=True)
class Profile:
    """A calibrated cost model for one (GPU, model, parallelism) combination."""

    name: str
    step_base_us: float  # b0
    prefill_us_per_token: float  # b1
    decode_us_per_token: float  # b2
    kv_read_us_per_token: float  # b3
    kv_blocks: int
    source: str
    # vLLM's defaults for an OpenAI API server on this GPU (V1, arg_utils.get_batch_defaults)
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 1024

    def seconds(self) -> tuple[float, float, float, float]:
        return (self.step_base_us * 1e-6, self.prefill_us_per_token * 1e-6,
                self.decode_us_per_token * 1e-6, self.kv_read_us_per_token * 1e-6)


_FIT_SOURCE = ("coefficients fitted to vLLM step traces of Llama-3.1-8B-Instruct, tensor parallel 1, "
               "as given in evolve issue #5; ~29,200 KV blocks of 16 tokens (80 GB GPU, bf16 KV)")

KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # Llama-3.1-8B, bf16: K and V, 32 layers, 8 KV heads of 128


def kv_read_us(bandwidth_tb_s: float) -> float:
    """Microseconds to read one token's KV cache at this HBM bandwidth."""
    return KV_BYTES_PER_TOKEN / (bandwidth_tb_s * 1e12) * 1e6


PROFILES: dict[str, Profile] = {
    "h100-llama3.1-8b": Profile("h100-llama3.1-8b", 5752.7, 17.25, 6.00, kv_read_us(3.35), 29200,
                                "H100 80GB SXM (3.35 TB/s): " + _FIT_SOURCE),
    "a100-80gb-llama3.1-8b": Profile(
        "a100-80gb-llama3.1-8b", 16441.5, 47.84, 18.21, kv_read_us(2.039), 29200,
        "A100 80GB SXM (2.039 TB/s): " + _FIT_SOURCE, 2048, 256
    ),
}
PROFILE_FIELDS = ("step_base_us", "prefill_us_per_token", "decode_us_per_token", "kv_read_us_per_token",
                  "kv_blocks", "source", "max_num_batched_tokens", "max_num_seqs")


def load_profile(spec: str, base_dir: Path | None = None) -> Profile:
    """A built-in profile by name, or a TOML file with the fields of ``Profile``.

    A file looks like::

        step_base_us = 5752.7
        prefill_us_per_token = 17.25
        decode_us_per_token = 6.0
        kv_read_us_per_token = 0.0   # optional
        kv_blocks = 29200
        source = "where the numbers come from"
        max_num_batched_tokens = 8192   # optional: the engine defaults for this GPU
        max_num_seqs = 1024             # optional
    """
    if spec in PROFILES:
        return PROFILES[spec]
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    if path.suffix != ".toml" or not path.is_file():
        raise UserError(f"verifier.options.profile: unknown profile {spec!r} (expected one of "
                        f"{', '.join(PROFILES)}, or a .toml file with {', '.join(PROFILE_FIELDS)})")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"{path}: cannot read the profile ({err})") from None
    for key in data:
        if key not in PROFILE_FIELDS:
            raise UserError(f"{path}: unknown key {key!r} (expected one of {', '.join(PROFILE_FIELDS)})")
    values: dict[str, float] = {}
    for key in PROFILE_FIELDS[:4]:
        raw = data.get(key, 0.0 if key == "kv_read_us_per_token" else None)
        if raw is None:
            raise UserError(f"{path}: missing key {key!r} (microseconds, a number >= 0)")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw < 1e9:
            raise UserError(f"{path}: key {key!r}: expected a number of microseconds >= 0, got {raw!r}")
        values[key] = float(raw)
    ints: dict[str, int] = {}
    for key, default in (("kv_blocks", None), ("max_num_batched_tokens", 8192), ("max_num_seqs", 1024)):
        raw = data.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 10**8:
            raise UserError(f"{path}: key {key!r}: expected an integer from 1 to 10^8, got {raw!r}")
        ints[key] = raw
    if values["step_base_us"] + values["prefill_us_per_token"] + values["decode_us_per_token"] <= 0:
        raise UserError(f"{path}: a step must take time: b0, b1 and b2 are all zero")
    source = data.get("source", str(path))
    if not isinstance(source, str):
        raise UserError(f"{path}: key 'source': expected a string, got {source!r}")
    return Profile(path.stem, values["step_base_us"], values["prefill_us_per_token"],
                   values["decode_us_per_token"], values["kv_read_us_per_token"], ints["kv_blocks"], source,
                   ints["max_num_batched_tokens"], ints["max_num_seqs"])
