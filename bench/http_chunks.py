"""The plain model client's CPU for a reply sent in N one-byte chunks (a hostile or broken server).

A local server on 127.0.0.1 answers one request with a JSON completion whose every byte is its own
chunk; the script prints the client's CPU for reading it. The reader summed the parts it had at
every chunk (quadratic in their count) until the lead's fix; now the cost is linear.

    python bench/http_chunks.py [--chunks 20000 40000 80000]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evolve.llm.http_chat import ChatEndpoint  # noqa: E402


def serve_once(listener: socket.socket, reply: bytes) -> None:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += conn.recv(65536)
        conn.sendall(reply)


def cpu_for(chunks: int) -> float:
    body = json.dumps({"choices": [{"message": {"content": "x" * max(chunks - 60, 1)}}]}).encode()
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
             + b"".join(b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n")
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=serve_once, args=(listener, reply), daemon=True)
    thread.start()
    endpoint = ChatEndpoint(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "EMPTY")
    start = time.thread_time()
    endpoint.post({"model": "m", "messages": []}, timeout_s=600)
    spent = time.thread_time() - start
    endpoint.close()
    listener.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[20000, 40000, 80000])
    args = parser.parse_args()
    for chunks in args.chunks:
        print(f"{chunks:>8} one-byte chunks: {cpu_for(chunks):.3f} s of the client's CPU")


if __name__ == "__main__":
    main()
