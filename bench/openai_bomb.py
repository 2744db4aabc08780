"""A gzip bomb from a model server, through the openai client: the controller's peak RSS and CPU.

A raw socket on 127.0.0.1 answers one completion with a gzip body inflating to MIB MiB of zeros
(about MIB KiB on the wire); the backend is forced onto the openai client (``plain_http=False``,
as where a proxy is configured).

    OPENAI_API_KEY=x PYTHONPATH=. python bench/openai_bomb.py 1000
"""

from __future__ import annotations

import resource
import socket
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
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, rest = data.split(b"\r\n\r\n", 1)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(rest) < length:
                    rest += conn.recv(65536)
                conn.sendall(reply)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)  # until the client closes

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


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
