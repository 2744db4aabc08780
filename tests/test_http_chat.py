"""The plain keep-alive client for OpenAI-compatible servers, over real HTTP on 127.0.0.1.

It must behave exactly as the openai client does under our retry policy (same
results, same exception types, messages and kinds), and keep one connection
alive across calls.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import pytest
from llm_server import (
    Behaviour,
    FakeLLMServer,
    drop,
    hang,
    http_error,
    malformed,
    no_choices,
    no_content,
    ok,
)
from llm_server import empty as empty_reply
from test_llm_backends import KEY, MODEL, api_key, request  # noqa: F401 (api_key: autouse fixture)

from evolve.llm import LLMError
from evolve.llm.http_chat import ChatEndpoint, EndpointConnectionError, EndpointStatusError, usable
from evolve.llm.openai_body import call_timeout
from evolve.llm.openai_compat import OpenAICompatLLM
from evolve.llm.retry import RetryPolicy


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def backend(server: FakeLLMServer, plain: bool, timeout_s: float = 10.0, **kw: object) -> OpenAICompatLLM:
    # A generous timeout except where the script is about timeouts: on a loaded machine a
    # client's first call can take more than half a second, which would read as a timeout.
    return OpenAICompatLLM(MODEL, api_base=server.base_url, timeout_s=timeout_s, plain_http=plain,
                           retry=RetryPolicy(max_retries=1, base_delay_s=0.01), **kw)  # type: ignore[arg-type]


def outcome(llm: OpenAICompatLLM, ahead: bool = False) -> tuple[object, ...]:
    """What a caller can observe of one completion: its fields, or the error's type, text and kind.
    ``ahead``: sent by ``begin``, its answer read by ``result``."""
    try:
        if ahead:
            pending = llm.begin(request())
            assert pending is not None
            c = pending.result()
        else:
            c = llm.complete(request())
    except LLMError as exc:
        return (type(exc).__name__, str(exc), exc.kind)
    return (c.text, c.model, c.prompt_tokens, c.completion_tokens, c.cost_usd)


SCRIPTS: dict[str, list[Behaviour]] = {
    "ok": [ok("def f(): return 1", prompt_tokens=100, completion_tokens=20)],
    "401 echoing the key": [http_error(401, message=f"Incorrect API key provided: {KEY}")],
    "403": [http_error(403)],
    "404 unknown model": [http_error(404, message="The model `x` does not exist.")],
    "400 echoing the key": [http_error(400, message=f"too long (key {KEY})")],
    "422": [http_error(422, message="unprocessable")],
    "429 then ok": [http_error(429, retry_after="0"), ok("after 429")],
    "503 twice": [http_error(503, message=f"overloaded, key={KEY}"), http_error(503)],
    "500 then ok": [http_error(500), ok("recovered")],
    "malformed": [malformed()],
    "JSON but not an object": [malformed('"a string"')],
    "no choices": [no_choices()],
    "no content": [no_content()],
    "empty": [empty_reply(" \n")],
    "dropped twice": [drop(), drop()],
    "dropped then ok": [drop(), ok("after the drop")],
    "timeout twice": [hang(2.0), hang(2.0)],
}


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_plain_client_and_openai_client_give_the_same_result(server: FakeLLMServer, script: str) -> None:
    seen = []
    for plain in (True, False):
        server.enqueue(*SCRIPTS[script])
        seen.append(outcome(backend(server, plain, timeout_s=0.5 if script.startswith("timeout") else 10.0)))
        assert server.pending() == 0, "both clients make the same number of requests"
    if seen[0][-1] == "connection":  # the low-level cause is each client's own exception
        seen = [(kind, re.sub(r"connection error \(\w+\)", "connection error", text), k)
                for kind, text, k in seen]
    assert seen[0] == seen[1]
    assert KEY not in str(seen[0])


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_call_sent_ahead_and_read_later_ends_as_the_call_in_one_piece(server: FakeLLMServer, script: str) -> None:
    """``begin`` then ``result`` (the loop's look-ahead from its own thread): the same result,
    error and retries as ``complete``."""
    seen = []
    for ahead in (False, True):
        server.enqueue(*SCRIPTS[script])
        seen.append(outcome(backend(server, True, timeout_s=0.5 if script.startswith("timeout") else 10.0), ahead))
        assert server.pending() == 0, "the same number of requests"
    assert seen[0] == seen[1]


def test_an_answer_read_after_its_deadline_is_the_answer_and_the_openai_client_is_not_split(
        server: FakeLLMServer) -> None:
    server.enqueue(ok("in time"))
    llm = backend(server, True, timeout_s=0.3)
    pending = llm.begin(request())
    assert pending is not None
    while not pending.answered():
        time.sleep(0.01)
    time.sleep(0.4)  # read past the call's 0.3 s: it came in time
    assert pending.result().text == "in time"
    assert backend(server, False).begin(request()) is None  # callers then call complete()


def test_plain_client_sends_what_the_openai_client_sends(server: FakeLLMServer) -> None:
    for plain in (True, False):
        backend(server, plain, temperature=0.3, max_tokens=256).complete(request())
    mine, theirs = server.requests
    assert mine.path == theirs.path == "/v1/chat/completions"
    assert mine.body == theirs.body
    assert mine.headers["authorization"] == theirs.headers["authorization"] == f"Bearer {KEY}"
    assert mine.headers["content-type"] == "application/json"


def test_plain_client_keeps_one_connection_alive_across_calls(server: FakeLLMServer) -> None:
    llm = backend(server, True)
    for i in range(5):
        llm.complete(request(i))
    assert len({r.client for r in server.requests}) == 1


def test_a_failed_call_does_not_leave_its_connection_for_the_next(server: FakeLLMServer) -> None:
    server.enqueue(hang(1.0, "late reply"), ok("fresh"))
    llm = OpenAICompatLLM(MODEL, api_base=server.base_url, timeout_s=0.3,
                          retry=RetryPolicy(max_retries=0))
    with pytest.raises(LLMError, match="timeout after 0.3s"):
        llm.complete(request())
    # The late reply to the first call must never be read as the second one's.
    assert llm.complete(request(1)).text == "fresh"
    first, second = server.requests
    assert first.client != second.client


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """A server that closes each connection after one reply without saying so (an idle
    keep-alive timeout): the next call must open a new connection, not fail. (A close
    that races the next request fails that request as a retryable connection error, as
    with the openai client.)"""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    body = b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
             + str(len(body)).encode() + b"\r\n\r\n" + body)
    served: list[int] = []
    closed = threading.Semaphore(0)

    def serve_three() -> None:
        for _ in range(3):
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
                served.append(1)
            closed.release()  # closed, after a reply that promised keep-alive

    thread = threading.Thread(target=serve_three, daemon=True)
    thread.start()
    endpoint = ChatEndpoint(f"http://127.0.0.1:{port}/v1", "EMPTY")
    try:
        for _ in range(3):
            assert endpoint.post({"model": "m", "messages": []}, timeout_s=5)["choices"][0]["message"]["content"] == "hi"
            assert closed.acquire(timeout=5)  # the pooled connection is dead before the next call
    finally:
        endpoint.close()
        listener.close()
    thread.join(5)
    assert len(served) == 3


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8000/v1", True),
    ("https://api.example.com/v1", True),
    ("http://h/v1?api-version=1", False),  # the openai client merges queries: leave it to it
    ("ftp://h/v1", False),
])
def test_the_plain_client_is_used_only_where_it_reaches_the_server_as_openai_would(
    url: str, expected: bool
) -> None:
    assert usable(url) is expected


def test_a_proxy_in_the_environment_leaves_completions_to_the_openai_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert not usable("https://api.example.com/v1")
    monkeypatch.setenv("no_proxy", "api.example.com")
    assert usable("https://api.example.com/v1")


def _raw_server(replies: list[bytes | Callable[[socket.socket], None]],
                close_after: set[int] = frozenset()) -> tuple[str, list[int], threading.Thread]:
    """A server on 127.0.0.1 that answers the i-th request with ``replies[i]`` byte for byte, or
    by calling it with the connection (and closes the connection after the replies in
    ``close_after``); the list names, for each request, the connection it came on."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connections: list[int] = []

    def serve() -> None:
        with listener:
            served, accepted = 0, 0
            while served < len(replies):
                conn, _ = listener.accept()
                accepted += 1
                with conn:
                    data = b""
                    while served < len(replies):
                        while b"\r\n\r\n" not in data:
                            more = conn.recv(65536)
                            if not more:
                                break
                            data += more
                        if b"\r\n\r\n" not in data:
                            break  # the client closed the connection
                        head, data = data.split(b"\r\n\r\n", 1)
                        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                          if line.lower().startswith(b"content-length")))
                        while len(data) < length:
                            data += conn.recv(65536)
                        data = data[length:]
                        connections.append(accepted)
                        served += 1
                        reply = replies[served - 1]
                        try:
                            reply(conn) if callable(reply) else conn.sendall(reply)
                        except (BrokenPipeError, ConnectionResetError):
                            break  # the client dropped a reply it refused mid-way (1 MiB of it)
                        if served - 1 in close_after:
                            break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}/v1", connections, thread


def _content(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"content": text}}]}).encode()


def test_replies_of_every_http_framing_are_read_whole_and_keep_alive_only_where_allowed() -> None:
    import gzip

    chunked = _content("chunked")
    zipped = gzip.compress(_content("zipped"))
    replies = [
        # chunked, with a chunk extension and a trailer: the connection stays
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x;ext=1\r\n" % 10 + chunked[:10] + b"\r\n" + b"%x\r\n" % (len(chunked) - 10) + chunked[10:]
        + b"\r\n0\r\nX-Trailer: 1\r\n\r\n",
        # an interim 100 Continue before the reply, gzip-encoded
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
        + str(len(zipped)).encode() + b"\r\n\r\n" + zipped,
        # HTTP/1.0 without a length: the body runs to the close, the next call needs a new connection
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + _content("to the close"),
        b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(_content("new"))).encode() + b"\r\n\r\n" + _content("new"),
    ]
    base, connections, thread = _raw_server(replies, close_after={2})
    endpoint = ChatEndpoint(base, "EMPTY")
    try:
        texts = [endpoint.post({"model": "m", "messages": []}, timeout_s=5)["choices"][0]["message"]["content"]
                 for _ in replies]
    finally:
        endpoint.close()
    thread.join(5)
    assert texts == ["chunked", "zipped", "to the close", "new"]
    assert connections == [1, 1, 1, 2]


@pytest.mark.parametrize("reply, cause", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"choices\": ", "IncompleteRead"),
    (b"SMTP ready\r\n\r\n", "BadStatusLine"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTPException: bad chunk size b'zz'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", "IncompleteRead"),
    # a negative size made the next read run to the close, past the 64 MiB bound
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n" + b" " * (1 << 20), "HTTPException: bad chunk size b'-1'"),
    (b"", "RemoteDisconnected"),
    # a server streaming interim replies or trailer lines kept the call reading as long as it
    # liked (the socket's timeout is per read); a real reply after 17 of them is refused too
    (b"HTTP/1.1 100 Continue\r\n\r\n" * 17 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
     "HTTPException: more than 16 interim"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" + b"X-T: 1\r\n" * 101 + b"\r\n",
     "HTTPException: got more than 100 headers"),
])
def test_a_broken_reply_is_a_connection_error_and_its_connection_is_dropped(reply: bytes, cause: str) -> None:
    good = b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(_content("ok"))).encode() + b"\r\n\r\n" + _content("ok")
    base, connections, thread = _raw_server([reply, good], close_after={0})
    endpoint = ChatEndpoint(base, "EMPTY")
    try:
        with pytest.raises(EndpointConnectionError, match=f"connection error: {cause}"):
            endpoint.post({"model": "m", "messages": []}, timeout_s=5)
        assert endpoint.post({"model": "m", "messages": []}, timeout_s=5)["choices"][0]["message"]["content"] == "ok"
    finally:
        endpoint.close()
    thread.join(5)
    assert connections == [1, 2]


def test_an_error_status_carries_its_headers_case_insensitively() -> None:
    body = b'{"error": {"message": "slow down"}}'
    reply = (b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\nContent-Length: "
             + str(len(body)).encode() + b"\r\n\r\n" + body)
    base, _, thread = _raw_server([reply])
    endpoint = ChatEndpoint(base, "EMPTY")
    try:
        with pytest.raises(EndpointStatusError) as caught:
            endpoint.post({"model": "m", "messages": []}, timeout_s=5)
    finally:
        endpoint.close()
    thread.join(5)
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("Retry-After") == "3"
    assert caught.value.message == "Error code: 429 - slow down"


def test_a_failure_while_connecting_is_the_call_s_connection_error() -> None:
    """A TLS handshake with a server that answers in plain text fails inside the connect: a
    retryable connection error, as any failure of the call after the socket is open; a port
    nobody listens on stays the refused connection that classify calls permanent."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_in_plain_text() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the ClientHello
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_in_plain_text, daemon=True)
    thread.start()
    endpoint = ChatEndpoint(f"https://127.0.0.1:{port}/v1", "EMPTY")
    try:
        with pytest.raises(EndpointConnectionError, match="connection error: SSL"):
            endpoint.post({"model": "m", "messages": []}, timeout_s=5)
    finally:
        endpoint.close()
        listener.close()
    thread.join(5)
    assert not thread.is_alive()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ConnectionRefusedError):
        ChatEndpoint(f"http://127.0.0.1:{port}/v1", "EMPTY").post({"model": "m"}, timeout_s=5)


def _bomb(mib: int) -> bytes:
    """A gzip body that inflates to ``mib`` MiB of zeros (about 1/1000 of that on the wire)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join([*(deflate.compress(block) for _ in range(mib)), deflate.flush()])


@pytest.mark.parametrize("reply", [
    # a gzip body of 1 MiB... inflating to 200 MiB: it was inflated whole, then refused as not JSON
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(_bomb(200)) + _bomb(200),
    # a Content-Length of a terabyte: the reader was asked for all of it
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n{}",
    # a chunk of a terabyte
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne8d4a51000\r\n{}",
], ids=["gzip bomb", "content-length", "chunk"])
def test_a_reply_body_over_the_bound_is_a_connection_error(reply: bytes) -> None:
    """A hostile or broken server's reply costs one failed call, never the controller's memory."""
    good = b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(_content("ok"))).encode() + b"\r\n\r\n" + _content("ok")
    base, _, thread = _raw_server([reply, good], close_after={0})
    endpoint = ChatEndpoint(base, "EMPTY")
    try:
        with pytest.raises(EndpointConnectionError, match="reply body over 64 MiB"):
            endpoint.post({"model": "m", "messages": []}, timeout_s=5)
        assert endpoint.post({"model": "m", "messages": []}, timeout_s=5)["choices"][0]["message"]["content"] == "ok"
    finally:
        endpoint.close()
    thread.join(5)


def test_a_reply_in_many_small_chunks_is_read_whole_and_their_sum_is_bounded() -> None:
    """20,000 one-byte chunks read back whole (their running sum, not a sum per chunk: 80,000 took
    48 s of the controller's CPU before, `python bench/http_chunks.py`), and 65 chunks of 1 MiB
    are refused at the 64 MiB bound like one large body."""
    body = _content("x" * 19_940)
    many = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n")
    mib = b"100000\r\n" + bytes(1 << 20) + b"\r\n"
    over = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + mib * 65 + b"0\r\n\r\n"
    base, _, thread = _raw_server([many, over], close_after={1})
    endpoint = ChatEndpoint(base, "EMPTY")
    try:
        assert endpoint.post({"model": "m", "messages": []}, timeout_s=5)["choices"][0]["message"]["content"] == "x" * 19_940
        with pytest.raises(EndpointConnectionError, match="reply body over 64 MiB"):
            endpoint.post({"model": "m", "messages": []}, timeout_s=5)
    finally:
        endpoint.close()
    thread.join(5)


@pytest.mark.parametrize("reply", [
    # a gzip body of 200 KiB inflating to 200 MiB: httpx inflated it whole (1 MiB of it took the
    # controller to 3 GiB), then it was refused as not JSON
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(_bomb(200)) + _bomb(200),
    # the same as a redirect's body, which httpx reads whole before it follows the redirect
    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /v1/chat/completions\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: %d\r\n\r\n" % len(_bomb(200)) + _bomb(200),
    # 65 MiB of plain bytes: read whole, then refused as not JSON
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (65 << 20) + b" " * (65 << 20),
], ids=["gzip bomb", "redirect's gzip bomb", "65 MiB"])
def test_the_openai_client_bounds_a_reply_body_as_the_plain_client_does(reply: bytes) -> None:
    """Where a proxy is configured completions go through the openai client: a hostile server's
    reply costs one failed call (a connection error) there too, and the next call is answered."""
    good = b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(_content("ok"))).encode() + b"\r\n\r\n" + _content("ok")
    base, _, thread = _raw_server([reply, good], close_after={0})
    llm = OpenAICompatLLM(MODEL, api_base=base, timeout_s=10.0, plain_http=False,
                          retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    with pytest.raises(LLMError) as failed:
        llm.complete(request())
    assert failed.value.kind == "connection" and "DecodingError" in str(failed.value), failed.value
    assert llm.complete(request()).text == "ok"
    thread.join(5)


class _Trickle:
    """A reply whose 300-byte body comes a byte every 0.2 s (a minute in all): each read waits
    far less than the call's timeout, the whole reply far more.  ``sent`` counts the body's
    bytes the client took before it gave up."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n")
        try:
            for _ in range(300):
                time.sleep(0.2)
                conn.sendall(b" ")
                self.sent += 1
        except OSError:  # the client closed the connection
            pass


@pytest.mark.parametrize("plain", [True, False], ids=["plain client", "openai client"])
def test_a_reply_trickling_in_is_the_call_s_timeout(plain: bool) -> None:
    """A socket's (and httpx's) timeout is per read: a server sending a byte now and then held a
    call as long as it liked.  The whole reply now gets the call's timeout; the test decides by
    how much of the body the client took before it gave up, not by the clock."""
    trickle = _Trickle()
    base, _, thread = _raw_server([trickle], close_after={0})
    llm = OpenAICompatLLM(MODEL, api_base=base, timeout_s=1.0, plain_http=plain,
                          retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    with pytest.raises(LLMError) as failed:
        llm.complete(request())
    assert failed.value.kind == "timeout", failed.value
    thread.join(30)
    assert trickle.sent < 150, trickle.sent


class _SlowHead:
    """A reply whose head never ends: ``interim`` sends a ``100 Continue`` every 0.05 s (httpx's
    reader takes any number of them), otherwise the status line and a header come a byte every
    0.05 s; either for 30 s, then a good reply.  ``sent`` counts what the client took."""

    def __init__(self, interim: bool) -> None:
        self.interim, self.sent = interim, 0

    def __call__(self, conn: socket.socket) -> None:
        pieces = ([b"HTTP/1.1 100 Continue\r\n\r\n"] * 600 if self.interim
                  else [bytes([b]) for b in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 560])
        try:
            for piece in pieces:
                time.sleep(0.05)
                conn.sendall(piece)
                self.sent += 1
            body = _content("ok")
            if not self.interim:
                conn.sendall(b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:  # the client closed the connection
            pass


@pytest.mark.parametrize("interim", [True, False], ids=["interim replies", "head trickling"])
@pytest.mark.parametrize("plain", [True, False], ids=["plain client", "openai client"])
def test_a_reply_head_that_never_ends_is_the_call_s_failure(plain: bool, interim: bool) -> None:
    """The openai client (completions behind a proxy, the preflight probe, the model list, and
    litellm's OpenAI-compatible calls) read a reply's head with httpx's per-read timeout and took
    ``100 Continue`` replies without end: 600 of them at 0.05 s, then the reply, and the call with
    a 1 s timeout succeeded 30 s later (ninth red team).  Now the head, too, gets what is left of
    the call's timeout (the plain client refuses the 17th interim reply).  Decided by how much of
    the head the client took before it gave up."""
    head = _SlowHead(interim)
    base, _, thread = _raw_server([head], close_after={0})
    llm = OpenAICompatLLM(MODEL, api_base=base, timeout_s=1.0, plain_http=plain,
                          retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    with pytest.raises(LLMError) as failed:
        llm.complete(request())
    assert failed.value.kind in ("timeout", "connection"), failed.value
    thread.join(40)
    assert head.sent < 300, head.sent


@pytest.mark.parametrize("hostile", ["gzip bomb", "interim replies"])
@pytest.mark.parametrize("model", ["openai/x", "ollama/x"])
def test_litellm_s_calls_are_bounded_as_the_openai_client_s(model: str, hostile: str) -> None:
    """``--backend litellm`` (or a model string without ``--api-base``): litellm drives the openai
    client (``openai/``) or its own ``HTTPHandler`` (``ollama/``, ``anthropic/``, ...) with HTTP
    clients of its own, unbounded.  A 200 KiB gzip body was inflated to 200 MiB and then, quoted in
    litellm's error, run through its secret-redacting patterns: over 2 minutes of the controller's
    CPU for one call; ``100 Continue`` replies held a 1 s call for the 30 s the server sent them,
    both ways (ninth red team).  litellm's clients now get our bounds (``bound_litellm``); an
    80 MiB bomb here, which is over the bound.  The bounds are set once per process, by the first
    backend: a backend with a longer timeout made first (another test's, a run's) had this 1 s call
    read the interim replies for 30 s; each call's own timeout reaches them now."""
    from evolve.llm.litellm_backend import LiteLLMBackend

    LiteLLMBackend(model, timeout_s=600.0).litellm()  # bounds litellm, as the first backend of a process
    slow, body = _SlowHead(interim=True), _bomb(80)
    bomb = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    base, _, thread = _raw_server([bomb if hostile == "gzip bomb" else slow], close_after={0})
    llm = LiteLLMBackend(model, api_base=base, timeout_s=1.0, retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    llm.litellm()
    before = time.process_time()
    with pytest.raises(LLMError):
        llm.complete(request())
    thread.join(40)
    assert slow.sent < 300, slow.sent
    assert time.process_time() - before < 30, "the body was inflated and quoted"


def test_litellm_s_databricks_token_request_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Databricks' OAuth M2M credentials, litellm asks the workspace that serves the model for
    a token with ``requests`` (30 s per read, the body read whole), past every bound of
    ``bound_litellm``: a host trickling its reply held a call with a 1 s timeout until the whole
    reply was in (the tenth red team's open row; eleventh red team). It now goes through our
    bounded client. Decided by how much of the body the client took before it gave up."""
    from evolve.llm.litellm_backend import LiteLLMBackend

    monkeypatch.setenv("DATABRICKS_CLIENT_ID", "client")
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", "secret")
    trickle = _Trickle()
    base, _, thread = _raw_server([trickle], close_after={0})
    llm = LiteLLMBackend("databricks/x", api_base=base + "/serving-endpoints", timeout_s=1.0,
                         retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    with pytest.raises(LLMError) as failed:
        llm.complete(request())
    thread.join(70)
    assert trickle.sent < 150, trickle.sent  # 300 before: the whole minute
    assert "OAuth M2M token request failed" in str(failed.value), failed.value


def test_litellm_s_bedrock_sts_request_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a role to assume (``AWS_ROLE_NAME``), litellm asks STS for credentials through botocore
    (urllib3: 60 s per read, the body read whole), past every bound of ``bound_litellm``: an
    ``AWS_STS_ENDPOINT`` trickling its reply held a call with a 1 s timeout for the whole minute
    (300 of 300 bytes, 63 s; twelfth red team). botocore's requests now go through our bounded
    client. The role is not an ARN, so litellm asks no other STS whether it already has it."""
    from evolve.llm.litellm_backend import LiteLLMBackend

    trickle = _Trickle()
    base, _, thread = _raw_server([trickle], close_after={0})
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIAEVOLVETEST", "AWS_SECRET_ACCESS_KEY": "secret",
                        "AWS_REGION_NAME": "us-east-1", "AWS_ROLE_NAME": "evolve-test-role-not-an-arn",
                        "AWS_SESSION_NAME": "evolve-test", "AWS_STS_ENDPOINT": base}.items():
        monkeypatch.setenv(name, value)
    llm = LiteLLMBackend("bedrock/anthropic.claude-3-haiku-20240307-v1:0", timeout_s=1.0,
                         retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    with pytest.raises(LLMError):
        llm.complete(request())
    thread.join(70)
    assert 0 < trickle.sent < 150, trickle.sent  # 300 before: the whole minute


def test_litellm_s_vertex_token_refresh_is_bounded_too() -> None:
    """litellm refreshes Vertex credentials with google-auth's ``requests`` transport (120 s per
    read) at the credentials' token endpoint: a service account's ``token_uri`` trickling its
    reply held a call with a 1 s timeout for the whole minute (300 of 300 bytes, 79 s; twelfth
    red team). The refresh now gets a transport through our bounded client; credentials that ask
    the token endpoint as google-auth's do stand in here, so google-auth need not be installed."""
    from evolve.llm.litellm_backend import LiteLLMBackend

    LiteLLMBackend("vertex_ai/gemini-1.5-flash", timeout_s=1.0).litellm()  # imports litellm offline, bounds it
    from litellm.llms.vertex_ai.vertex_llm_base import VertexBase
    trickle = _Trickle()
    base, _, thread = _raw_server([trickle], close_after={0})

    class Credentials:
        def refresh(self, transport: Callable[..., object]) -> None:
            transport(url=base + "/token", method="POST", body=b"grant_type=x&assertion=y",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})

    try:
        from google.auth.exceptions import TransportError as expected
    except ImportError:
        expected = ConnectionError
    with pytest.raises(expected), call_timeout(1.0):  # as inside a 1 s backend's call
        VertexBase().refresh_auth(Credentials())
    thread.join(70)
    assert 0 < trickle.sent < 150, trickle.sent


def test_litellm_s_vertex_call_with_a_service_account_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through a whole call: ``VERTEXAI_CREDENTIALS`` a service account whose
    ``token_uri`` trickles (google-auth signs its assertion, so it and cryptography are needed)."""
    pytest.importorskip("google.auth")
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from evolve.llm.litellm_backend import LiteLLMBackend

    trickle = _Trickle()
    base, _, thread = _raw_server([trickle], close_after={0})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    account = {"type": "service_account", "project_id": "p", "private_key_id": "k", "private_key": key,
               "client_email": "a@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": base + "/token"}
    monkeypatch.setenv("VERTEXAI_CREDENTIALS", json.dumps(account))
    monkeypatch.setenv("VERTEXAI_PROJECT", "p")
    monkeypatch.setenv("VERTEXAI_LOCATION", "us-central1")
    llm = LiteLLMBackend("vertex_ai/gemini-1.5-flash", timeout_s=1.0, retry=RetryPolicy(max_retries=0, base_delay_s=0.01))
    with pytest.raises(LLMError):
        llm.complete(request())
    thread.join(70)
    assert 0 < trickle.sent < 150, trickle.sent  # 300 before


def _reply(body: bytes, content_type: str) -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body)


def test_a_real_sts_reply_still_gives_bedrock_its_credentials() -> None:
    """Through the bounded client, botocore still parses STS's answer: the credentials litellm
    signs Bedrock calls with are the ones the endpoint gave."""
    from evolve.llm.litellm_backend import LiteLLMBackend

    LiteLLMBackend("bedrock/x", timeout_s=5.0).litellm()  # imports litellm offline, bounds it
    from litellm.llms.bedrock.base_aws_llm import BaseAWSLLM
    xml = (b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
           b"<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROA:s"
           b"</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIAFROMTHESTS</AccessKeyId>"
           b"<SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken>"
           b"<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult>"
           b"<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>")
    base, _, thread = _raw_server([_reply(xml, "text/xml")], close_after={0})
    credentials = BaseAWSLLM().get_credentials(
        aws_access_key_id="AKIAEVOLVETEST", aws_secret_access_key="secret", aws_role_name="evolve-test-role-not-an-arn",
        aws_session_name="evolve-test", aws_region_name="us-east-1", aws_sts_endpoint=base)
    thread.join(10)
    assert (credentials.access_key, credentials.token) == ("ASIAFROMTHESTS", "token")


def test_a_real_token_reply_still_refreshes_vertex_credentials() -> None:
    pytest.importorskip("google.auth")
    pytest.importorskip("cryptography")
    import google.oauth2.service_account
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from evolve.llm.litellm_backend import LiteLLMBackend

    LiteLLMBackend("vertex_ai/x", timeout_s=5.0).litellm()  # imports litellm offline, bounds it
    from litellm.llms.vertex_ai.vertex_llm_base import VertexBase
    body = json.dumps({"access_token": "ya29.from-the-endpoint", "expires_in": 3600, "token_type": "Bearer"})
    base, _, thread = _raw_server([_reply(body.encode(), "application/json")], close_after={0})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    credentials = google.oauth2.service_account.Credentials.from_service_account_info(
        {"type": "service_account", "project_id": "p", "private_key_id": "k", "private_key": key,
         "client_email": "a@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": base + "/token"},
        scopes=["https://www.googleapis.com/auth/cloud-platform"])
    VertexBase().refresh_auth(credentials)
    thread.join(10)
    assert credentials.token == "ya29.from-the-endpoint" and credentials.valid
