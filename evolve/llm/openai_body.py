"""The openai client's HTTP client, with the plain client's bound on a reply body.

Completions go through the openai client where the plain one cannot reach the server as it
would (a proxy in the environment, a query in the base URL: ``http_chat.usable``), and so do
the preflight probe and the model list.  httpx reads a body whole and inflates it whole: a
server's 1 MiB gzip body of zeros took the controller to 3 GiB before it was refused as not
JSON (eighth red team; a few MiB more would have ended the run).  Here every response, also a
redirect's, is read as it arrives up to ``MAX_BODY`` raw bytes and inflated to ``MAX_BODY`` at
most (``http_chat``'s own bound and inflater); more is the call's connection error (httpx's
``DecodingError``, which the openai client turns into ``APIConnectionError``).

Every read, write and connect of a request also waits only for what is left of the call's
timeout, counted from the request's start (``_Deadline``): httpx's timeout is per read, and its
HTTP/1.1 reader takes interim (1xx) replies without end, so a server sending ``100 Continue``
every second, or its head a byte now and then, held the call for ever (ninth red team).
"""

from __future__ import annotations

import http.client
import importlib
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from evolve.llm.http_chat import MAX_BODY, TOO_LARGE, decoded

_calls = threading.local()  # .deadline: when the request this thread is making must be done
# The timeout of the model call being made (``call_timeout``): litellm's HTTP clients and token
# requests are bounded once per process, by the first backend, so the call's own timeout must
# reach them at call time (a 1 s call after a 120 s backend's was bounded at 120 s).
_call_timeout: ContextVar[float | None] = ContextVar("evolve_call_timeout", default=None)


@contextmanager
def call_timeout(timeout_s: float) -> Iterator[None]:
    """Requests made inside are bounded by ``timeout_s`` from their start, whatever the client's
    own bound (``bound``): a backend wraps each call of a library that shares clients."""
    token = _call_timeout.set(timeout_s)
    try:
        yield
    finally:
        _call_timeout.reset(token)


def bounded_client(timeout_s: float, **kwargs: Any) -> Any:
    """An ``openai.DefaultHttpxClient`` (the openai client's own defaults: limits, redirects,
    proxies from the environment) whose every response body is bounded as above, and whose every
    request is read within ``timeout_s`` of its start, head and body (httpx's timeout is per
    read: a server sending a byte now and then held the call as long as it liked)."""
    import openai

    return bound(openai.DefaultHttpxClient(**kwargs), timeout_s)


def bound(client: Any, timeout_s: float) -> Any:
    """``client`` (an httpx client, of whichever httpx it was made with) with the bounds above:
    hooks on every request and response, and deadlines in its connection pools."""
    # The HTTP package the client is built on (httpx, or httpx2 in later openai releases; the
    # openai client's class is its subclass).
    httpx = next(package for package in (importlib.import_module(cls.__module__.split(".")[0])
                                         for cls in type(client).__mro__) if hasattr(package, "ByteStream"))

    def ask(request: Any) -> None:
        request.headers["Accept-Encoding"] = "gzip, deflate"  # what ``decoded`` inflates
        within = _call_timeout.get()
        _calls.deadline = time.monotonic() + (timeout_s if within is None else within)

    def read(response: Any) -> None:
        original, raw = response.stream, bytearray()
        deadline = getattr(_calls, "deadline", None) or time.monotonic() + timeout_s
        try:
            for part in original:
                raw += part
                if len(raw) > MAX_BODY:
                    raise httpx.DecodingError(TOO_LARGE, request=response.request)
                if time.monotonic() > deadline:  # httpx's timeout is per read, as a socket's
                    raise httpx.ReadTimeout("the reply body took longer than the call's timeout",
                                            request=response.request)
        finally:
            original.close()
        try:
            body = decoded(response.headers.get("content-encoding", ""), bytes(raw))
        except (zlib.error, http.client.HTTPException) as exc:
            raise httpx.DecodingError(str(exc), request=response.request) from None
        elapsed = getattr(original, "elapsed", None)
        if elapsed is not None:
            response.elapsed = elapsed
        response.headers.pop("content-encoding", None)
        response.headers["content-length"] = str(len(body))
        response.stream = httpx.ByteStream(body)

    hooks = client.event_hooks
    client.event_hooks = {"request": [*hooks.get("request", []), ask],
                          "response": [read, *hooks.get("response", [])]}
    with_deadlines(client)
    return client


def with_deadlines(client: Any) -> None:
    """Make every connection pool of an httpx client (its own and its proxies') connect, read and
    write within the deadline of the request its thread is making (``_calls.deadline``, set by a
    request hook).  httpx has no public way to reach the pool's network layer: its pools keep it
    in ``_network_backend`` (httpcore's, as long as httpx has been built on it);
    ``test_http_chat.py`` fails if that changes."""
    for transport in (getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _Deadline):
            core = importlib.import_module(type(pool).__module__.split(".")[0])
            pool._network_backend = _Deadline(backend, core)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = getattr(_calls, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the reply took longer than the call's timeout")
    return left if timeout is None else min(timeout, left)


class _Deadline:
    """An httpcore network backend whose connections wait only for what is left of the call."""

    def __init__(self, inner: Any, core: ModuleType) -> None:
        self.inner, self.core = inner, core

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> Any:
        stream = self.inner.connect_tcp(host, port, _left(timeout, self.core.ConnectTimeout),
                                        local_address=local_address, socket_options=socket_options)
        return _DeadlineStream(stream, self.core)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        stream = self.inner.connect_unix_socket(path, _left(timeout, self.core.ConnectTimeout),
                                                socket_options=socket_options)
        return _DeadlineStream(stream, self.core)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _DeadlineStream:
    def __init__(self, inner: Any, core: ModuleType) -> None:
        self.inner, self.core = inner, core

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(timeout, self.core.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(timeout, self.core.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        stream = self.inner.start_tls(ssl_context, server_hostname, _left(timeout, self.core.ConnectTimeout))
        return _DeadlineStream(stream, self.core)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)
