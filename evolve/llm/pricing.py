"""Per-token prices for the OpenAI-compatible backend, from litellm's price map.

Why not ``import litellm`` and call ``cost_per_token``: importing litellm takes
seconds, and the OpenAI-compatible backend mostly talks to local servers whose
cost is zero. litellm ships the same price table as a JSON file inside its
package; we read that file directly (located without importing the package), or
use ``litellm.model_cost`` when litellm is already imported anyway. A model
missing from the map costs 0.0 -- we never guess a price.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

_PRICE_FILE = "model_prices_and_context_window_backup.json"

# Providers whose models run on the user's own hardware: never priced, even if
# a local model happens to share a name with a hosted one.
LOCAL_PROVIDERS = frozenset(
    {"hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "llamafile", "openai_like"}
)


_READING = threading.Lock()


def _bundled_price_map() -> dict[str, Any]:
    """The bundled table, read once per process: the first replies of a run come in on
    several proposal threads at once, and each parse of its 3.5 MB holds the GIL ~20 ms."""
    with _READING:
        return _read_price_file()


@lru_cache(maxsize=1)
def _read_price_file() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / _PRICE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def price_map() -> dict[str, Any]:
    litellm = sys.modules.get("litellm")
    live = getattr(litellm, "model_cost", None) if litellm is not None else None
    return live if isinstance(live, dict) and live else _bundled_price_map()


def cost_usd(provider: str | None, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Dollar cost of one call for the OpenAI-compatible backend; 0.0 if unknown."""
    if provider in LOCAL_PROVIDERS:
        return 0.0
    prices = price_map()
    entry = prices.get(f"{provider}/{model}") if provider else None
    entry = entry if isinstance(entry, dict) else prices.get(model)
    if not isinstance(entry, dict):
        return 0.0
    listed = entry.get("litellm_provider")
    # Only price a model served by the provider the spec named (or "openai" if
    # none was named): "openai/llama-3" on a local server is not a hosted model.
    if listed is not None and listed != (provider or "openai"):
        return 0.0
    try:
        rate_in = float(entry.get("input_cost_per_token") or 0.0)
        rate_out = float(entry.get("output_cost_per_token") or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return prompt_tokens * rate_in + completion_tokens * rate_out
