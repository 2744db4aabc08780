"""A plain keep-alive HTTP client for ``POST {base}/chat/completions`` (OpenAI-compatible servers).

The openai client spends about 1.5 ms of CPU per call on a local server
(request options, pydantic models, its HTTP stack): more than the rest of an
evolve iteration. This one sends the JSON body on a pooled ``http.client``
connection and returns the parsed JSON reply, about 0.2 ms.

Failures are raised as the exceptions ``retry.classify`` reads, carrying what
the openai client's carry (``TimeoutError``; the ``OSError`` of a refused
connection or a failed DNS lookup; ``EndpointConnectionError`` for a dropped
connection; ``EndpointStatusError`` with ``status_code``, ``body``, response
headers and openai's message text), so retries, fail-fast and the one-line
messages are the same whichever client made the call. A 200 whose body is not
JSON raises ``json.JSONDecodeError`` as the openai client does.

Proxies configured in the environment are not supported here: ``usable``
says when the openai client (which honours them) must be used instead.
"""

from __future__ import annotations

import gzip
import http.client
import json
import select
import socket
import threading
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

USER_AGENT = "evolve"
MAX_IDLE = 8  # connections kept per endpoint (one per proposal thread in use)


class EndpointConnectionError(ConnectionError):
    """The connection failed or was dropped before a complete reply (transient)."""


class EndpointStatusError(Exception):
    """An HTTP error status, with what ``retry.classify`` reads off openai's errors."""

    def __init__(self, status: int, body: object, headers: http.client.HTTPMessage) -> None:
        inner = body.get("error", body) if isinstance(body, dict) else None
        detail = inner.get("message") if isinstance(inner, dict) else None
        self.message = f"Error code: {status}" + (f" - {detail}" if isinstance(detail, str) and detail else "")
        super().__init__(self.message)
        self.status_code = status
        self.body = inner if isinstance(body, dict) else body
        self.response = _Response(headers)


@dataclass(frozen=True)
class _Response:
    headers: http.client.HTTPMessage  # case-insensitive .get, as httpx's Headers


def usable(base_url: str) -> bool:
    """True if this client can reach ``base_url`` as the openai client would (no proxy, no query)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return False
    proxies = urllib.request.getproxies()
    if parts.scheme in proxies or "all" in proxies:
        return bool(urllib.request.proxy_bypass(parts.hostname))
    return True


@dataclass
class ChatEndpoint:
    """``{base_url}/chat/completions`` with a small pool of keep-alive connections; thread-safe."""

    base_url: str
    api_key: str
    _parts: SplitResult = field(init=False, repr=False)
    _path: str = field(init=False, repr=False)
    _idle: list[http.client.HTTPConnection] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._parts = urlsplit(self.base_url)
        self._path = self._parts.path.rstrip("/") + "/chat/completions"

    def post(self, body: dict[str, Any], timeout_s: float) -> Any:
        """The parsed JSON reply of one request; raises as described in the module docstring."""
        data = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json", "Accept": "application/json",
            "Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT,
        }
        conn = self._connection(timeout_s)
        try:
            conn.request("POST", self._path, data, headers)
            response = conn.getresponse()
            raw = _decoded(response, response.read())
        except TimeoutError:  # before OSError, which it is
            conn.close()
            raise
        except (OSError, zlib.error) as exc:
            conn.close()
            if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
                raise  # classify names these (permanent) from the exception itself
            raise EndpointConnectionError(f"connection error: {type(exc).__name__}: {exc}") from exc
        except http.client.HTTPException as exc:  # RemoteDisconnected is an OSError too; these are not
            conn.close()
            raise EndpointConnectionError(f"connection error: {type(exc).__name__}: {exc}") from exc
        if response.will_close:
            conn.close()
        else:
            self._release(conn)
        if response.status >= 400:
            text = raw.decode("utf-8", "replace").strip()
            try:
                parsed: object = json.loads(text)
            except ValueError:
                parsed = text
            raise EndpointStatusError(response.status, parsed, response.headers)
        try:
            return json.loads(raw)
        except UnicodeDecodeError as exc:  # what the openai client reports for any unparsable body
            raise json.JSONDecodeError(f"body is not UTF-8 ({exc.reason})", "", 0) from None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if _still_open(conn):
                conn.timeout = timeout_s
                if conn.sock is not None:
                    conn.sock.settimeout(timeout_s)
                return conn
            conn.close()  # the server closed it while idle (its keep-alive timeout)
        host, port = self._parts.hostname or "", self._parts.port
        if self._parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout_s, context=_tls_context())
        return http.client.HTTPConnection(host, port, timeout=timeout_s)

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """An idle connection is reusable if nothing is readable on it (EOF would be)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _decoded(response: http.client.HTTPResponse, raw: bytes) -> bytes:
    encoding = (response.getheader("Content-Encoding") or "").lower()
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    return raw


_context: Any = None


def _tls_context() -> Any:
    """The CA bundle the openai client uses (certifi) where installed, else the system's."""
    global _context
    if _context is None:
        import ssl

        try:
            import certifi

            _context = ssl.create_default_context(cafile=certifi.where())
        except ImportError:
            _context = ssl.create_default_context()
    return _context
