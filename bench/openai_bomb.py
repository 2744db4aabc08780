"""A gzip bomb from a model server, through the openai client: the controller's peak RSS and CPU.

A raw socket on 127.0.0.1 answers one completion with a gzip body inflating to MIB MiB of zeros
(about MIB KiB on the wire); the backend is forced onto the openai client (``plain_http=False``,
as where a proxy is configured).

    OPENAI_API_KEY=x PYTHONPATH=. python bench/openai_bomb.py 1000
"""

from __future__ import annotations

import http.server
import resource
import sys
import threading
import time
import zlib

from evolve.llm import LLMError
from evolve.llm.base import ProposalRequest
from evolve.llm.openai_compat import OpenAICompatLLM
from evolve.llm.retry import RetryPolicy


def bomb(mib: int) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join([*(deflate.compress(block) for _ in range(mib)), deflate.flush()])


def serve_once(reply: bytes) -> str:
    """A server that reads one request (http.server) and answers it with ``reply``, byte for byte."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.wfile.write(reply)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def main(mib: int) -> None:
    body = bomb(mib)
    reply = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    llm = OpenAICompatLLM("openai/m", api_base=serve_once(reply), timeout_s=60, plain_http=False,
                          retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    llm._get_client()  # importing openai is not the reply's cost
    rss0, cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
    try:
        print("completed:", llm.complete(ProposalRequest(messages=[{"role": "user", "content": "x"}], iteration=0, seed=0,
                                                           mode="diff", parent_code="")).text[:60])
    except LLMError as exc:
        print(f"LLMError ({exc.kind}): {str(exc)[:120]}")
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{len(body) >> 10} KiB on the wire; peak RSS {rss0 >> 10} -> {rss1 >> 10} MiB; "
          f"{time.process_time() - cpu0:.2f} s of CPU")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
