"""A tiny scriptable OpenAI-compatible chat server for tests and benchmarks.

It speaks just enough of ``POST /v1/chat/completions`` (and ``/chat/completions``)
for the real ``openai`` and ``litellm`` clients to talk to it over real HTTP on
127.0.0.1, so the backends' retry, timeout and parsing code is exercised end to
end instead of against mocked client objects.

Usage::

    with FakeLLMServer(default=ok("hello")) as server:
        server.enqueue(http_error(429, retry_after="1"), ok("def f(): ..."))
        llm = make_llm("openai/test", api_base=server.base_url)
        ...
        assert server.requests[0].body["model"] == "test"

Each request pops the next scripted behaviour; when the queue is empty the
default behaviour answers. Every request is recorded (path, headers, JSON body).
With ``models=[...]`` the server knows only those models, as vLLM or Ollama do:
``GET /v1/models`` lists them and a request for any other model gets HTTP 404.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

BehaviourKind = Literal["ok", "error", "malformed", "no_choices", "no_content", "drop"]

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass(frozen=True)
class Behaviour:
    """One scripted answer. Build them with the helpers below."""

    kind: BehaviourKind
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # Sleep before answering; longer than the client timeout simulates a hang.
    delay_s: float = 0.0
    body: str = ""


def ok(text: str, prompt_tokens: int = 11, completion_tokens: int = 7, delay_s: float = 0.0) -> Behaviour:
    return Behaviour("ok", text=text, prompt_tokens=prompt_tokens,
                     completion_tokens=completion_tokens, delay_s=delay_s)


def http_error(status: int, retry_after: str | None = None, message: str = "scripted error",
               delay_s: float = 0.0) -> Behaviour:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Behaviour("error", status=status, headers=headers, body=message, delay_s=delay_s)


def hang(seconds: float, text: str = "too late") -> Behaviour:
    """Answer only after ``seconds`` (use a value above the client's timeout)."""
    return ok(text, delay_s=seconds)


def malformed(body: str = "this is {not json") -> Behaviour:
    """HTTP 200 with a Content-Type of JSON but a body that does not parse."""
    return Behaviour("malformed", body=body)


def empty(text: str = "") -> Behaviour:
    """A well-formed reply whose content is empty (or whitespace-only)."""
    return ok(text, completion_tokens=0)


def drop() -> Behaviour:
    """Close the connection without answering (a proxy or server restarting)."""
    return Behaviour("drop")


def no_choices() -> Behaviour:
    return Behaviour("no_choices")


def no_content() -> Behaviour:
    """A choice whose message has ``content: null``."""
    return Behaviour("no_content")


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    # Header names lower-cased so tests need not guess the client's casing.
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or the raw text if it did not parse
    at: float  # time.monotonic() on arrival
    client: tuple[str, int] = ("", 0)  # the client's address and port: one per connection


class FakeLLMServer:
    """Background ThreadingHTTPServer on 127.0.0.1:<free port>; a context manager."""

    def __init__(
        self,
        default: Behaviour | None = None,
        model_echo: bool = True,
        responder: Callable[[dict[str, Any]], Behaviour] | None = None,
        keep_requests: bool = True,
        models: list[str] | None = None,
    ) -> None:
        self.default = default if default is not None else ok("hello from the fake server")
        self.models = models
        self.model_echo = model_echo
        # Answers computed from the request body (e.g. an edit of the prompt's
        # program) when the queue is empty; benchmarks turn off request keeping.
        self.responder = responder
        self.keep_requests = keep_requests
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ---------------------------------------------------------
    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def set_default(self, behaviour: Behaviour) -> None:
        with self._lock:
            self.default = behaviour

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path in CHAT_PATHS]

    def _next(self, request: RecordedRequest) -> Behaviour:
        with self._lock:
            if self.keep_requests:
                self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
            responder, default = self.responder, self.default
        return responder(request.body) if responder is not None else default

    # -- lifecycle ---------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeLLMServer:
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # Handler threads may be sleeping in a scripted hang: never wait for them.
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- responses ---------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        # Wakes early at shutdown so teardown never waits out a scripted hang.
        self._stopping.wait(seconds)

    def reply_body(self, behaviour: Behaviour, model: str) -> dict[str, Any]:
        created = int(time.time())
        base: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion",
                                "created": created, "model": model}
        if behaviour.kind == "no_choices":
            return base
        content = None if behaviour.kind == "no_content" else behaviour.text
        base["choices"] = [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content}}]
        base["usage"] = {"prompt_tokens": behaviour.prompt_tokens,
                         "completion_tokens": behaviour.completion_tokens,
                         "total_tokens": behaviour.prompt_tokens + behaviour.completion_tokens}
        return base


def _make_handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keep-alive, like real servers: exercises the clients' pools.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle on, the
        # client's delayed ACK adds ~40 ms to every reply.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep pytest output clean

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test): nothing to answer

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                        for m in server.models or []]
                self._send(200, json.dumps({"object": "list", "data": data}))
            else:
                self._send(404, json.dumps({"error": {"message": "not found"}}))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                body: Any = json.loads(raw)
            except json.JSONDecodeError:
                body = raw
            path = self.path.split("?", 1)[0]
            if path not in CHAT_PATHS:
                self._send(404, json.dumps({"error": {"message": f"no route {path}"}}))
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            model = body.get("model") if isinstance(body, dict) else None
            if server.models is not None and model not in server.models:
                with server._lock:
                    server.requests.append(RecordedRequest(path, headers, body, time.monotonic(),
                                                           self.client_address))
                err = {"error": {"message": f"The model `{model}` does not exist.",
                                 "type": "NotFoundError", "code": 404}}
                self._send(404, json.dumps(err))
                return
            behaviour = server._next(RecordedRequest(path, headers, body, time.monotonic(), self.client_address))
            if behaviour.delay_s > 0:
                server._sleep(behaviour.delay_s)
                if server._stopping.is_set():
                    return
            if behaviour.kind == "drop":
                self.close_connection = True
                return
            if behaviour.kind == "error":
                err = {"error": {"message": behaviour.body, "type": "scripted",
                                 "code": behaviour.status}}
                self._send(behaviour.status, json.dumps(err), behaviour.headers)
            elif behaviour.kind == "malformed":
                self._send(200, behaviour.body, behaviour.headers)
            else:
                model = body.get("model", "") if isinstance(body, dict) else ""
                reply = server.reply_body(behaviour, model if server.model_echo else "fake")
                self._send(200, json.dumps(reply), behaviour.headers)

    return Handler


def serve(default: Behaviour | None = None) -> Iterator[FakeLLMServer]:
    """Generator form for a pytest fixture: ``yield from serve()`` stops on teardown."""
    with FakeLLMServer(default=default) as server:
        yield server
