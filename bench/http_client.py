"""CPU per model call of the plain keep-alive client (``evolve/llm/http_chat.py``).

Posts a prompt of the tiny problem's size (~9 KB) to ``bench/loop_overhead.py``'s mock
model (an OpenAI-compatible server in its own process, answering at once) and prints the
client thread's CPU microseconds per call: the JSON body, the request, reading and parsing
the reply (not the server's work). --openai: the openai client's call too, for scale.

    python bench/http_client.py [--calls 3000] [--rounds 5] [--openai]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from loop_overhead import MockServer, machine_line  # noqa: E402

from evolve.llm.http_chat import ChatEndpoint  # noqa: E402

PROMPT = ("x" * 70 + "\n") * 130


def body() -> dict:
    return {"model": "bench", "temperature": 0.8, "max_tokens": 4096, "seed": 0, "messages": [
        {"role": "system", "content": PROMPT[:3000]},
        {"role": "user", "content": PROMPT + "# Current program\n    return x * 1.0\n"}]}


def per_call(call: Callable[[], object], calls: int, rounds: int) -> list[float]:
    """Thread CPU microseconds per call, one figure per round (after 200 calls to warm up)."""
    for _ in range(200):
        call()
    out = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(calls // rounds):
            call()
        out.append(1e6 * (time.thread_time() - start) / (calls // rounds))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--openai", action="store_true", help="the openai client's call too")
    args = parser.parse_args()
    print(machine_line())
    request = body()
    with MockServer() as base_url:
        endpoint = ChatEndpoint(base_url, "EMPTY")
        rows = [("plain client (http_chat)", per_call(lambda: endpoint.post(request, 30), args.calls, args.rounds))]
        endpoint.close()
        if args.openai:
            import openai

            client = openai.OpenAI(api_key="EMPTY", base_url=base_url, max_retries=0, timeout=30)
            rows.append(("openai client", per_call(
                lambda: client.chat.completions.create(**request), args.calls, args.rounds)))
    print(f"\nCPU per call, us (median of {args.rounds} rounds of {args.calls // args.rounds}; "
          f"load now {os.getloadavg()[0]:.2f}):")
    for name, figures in rows:
        print(f"  {name:26s} {statistics.median(figures):7.0f}   (rounds: {', '.join(f'{x:.0f}' for x in figures)})")


if __name__ == "__main__":
    main()
