"""A plain keep-alive HTTP client for ``POST {base}/chat/completions`` (OpenAI-compatible servers).

The openai client spends about 1.5 ms of CPU per call on a local server
(request options, pydantic models, its HTTP stack): more than the rest of an
evolve iteration. This one sends a request head made once and the JSON body on a
pooled keep-alive socket, reads the HTTP/1.1 reply itself (``_Connection``:
http.client's objects and email-package header parser cost twice as much) and
returns the parsed JSON reply: about 0.07 ms against a local server.

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

import http.client
import io
import json
import select
import socket
import threading
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

USER_AGENT = "evolve"
MAX_IDLE = 8  # connections kept per endpoint (one per proposal thread in use)
LATE_READ_S = 1.0  # to read a reply that came before it was asked for, its deadline past


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
    _head: bytes = field(init=False, repr=False)
    _idle: list[_Connection] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._parts = urlsplit(self.base_url)
        path = self._parts.path.rstrip("/") + "/chat/completions"
        host = self._parts.hostname or ""
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        if self._parts.port is not None and self._parts.port != DEFAULT_PORTS[self._parts.scheme]:
            host += f":{self._parts.port}"
        # The request's head, made once: only Content-Length changes from call to call.
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
            f"Authorization: Bearer {self.api_key}\r\nUser-Agent: {USER_AGENT}\r\nContent-Length: "
        ).encode("latin-1")

    def post(self, body: dict[str, Any], timeout_s: float) -> Any:
        """The parsed JSON reply of one request; raises as described in the module docstring."""
        return self.receive(self.send(body, timeout_s))

    def send(self, body: dict[str, Any], timeout_s: float) -> Sent:
        """Send one request; ``receive`` reads its reply, within ``timeout_s`` of now, and raises
        whatever the sending raised (``post`` is the two in a row)."""
        data = json.dumps(body).encode()
        sent = Sent(time.monotonic() + timeout_s)
        try:
            sent.conn = self._connection(timeout_s)  # a new one connects here: its failures are the call's
            sent.conn.sock.sendall(self._head + str(len(data)).encode() + b"\r\n\r\n" + data)
        except Exception as exc:  # raised by receive, where post raised it
            sent.error = exc
        return sent

    def receive(self, sent: Sent) -> Any:
        """The parsed JSON reply to ``sent`` (each ``Sent`` is received once)."""
        conn = sent.conn
        try:
            if sent.error is not None:
                raise sent.error
            assert conn is not None
            left = sent.deadline - time.monotonic()
            if left <= 0 and sent.answered():  # read late, answered meanwhile: a second to read it
                left = LATE_READ_S
            reply = conn.response(left)
            raw = decoded(reply.header("content-encoding"), reply.body)
        except (OSError, zlib.error, http.client.HTTPException) as exc:  # HTTPException: a malformed reply
            if conn is not None:
                conn.close()
            if isinstance(exc, (TimeoutError, ConnectionRefusedError, socket.gaierror)):
                raise  # classify names these (a timeout; permanent causes) from the exception itself
            raise EndpointConnectionError(f"connection error: {type(exc).__name__}: {exc}") from exc
        if reply.will_close:
            conn.close()
        else:
            self._release(conn)
        if reply.status >= 400:
            text = raw.decode("utf-8", "replace").strip()
            try:
                parsed: object = json.loads(text)
            except ValueError:
                parsed = text
            raise EndpointStatusError(reply.status, parsed, reply.message())
        try:
            return json.loads(raw)
        except UnicodeDecodeError as exc:  # what the openai client reports for any unparsable body
            raise json.JSONDecodeError(f"body is not UTF-8 ({exc.reason})", "", 0) from None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _connection(self, timeout_s: float) -> _Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if conn.still_open():
                conn.sock.settimeout(timeout_s)
                return conn
            conn.close()  # the server closed it while idle (its keep-alive timeout)
        host, port = self._parts.hostname or "", self._parts.port or DEFAULT_PORTS[self._parts.scheme]
        sock = socket.create_connection((host, port), timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client does
            if self._parts.scheme == "https":
                sock = _tls_context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _release(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()


DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_LINE = 65536  # of a status line, a header line or a chunk's size line (as http.client)
MAX_HEADERS = 100  # as http.client; trailers too
# http.client bounds neither the interim replies nor the trailer lines: a server streaming either
# kept the call reading for as long as it liked (the socket's timeout is per read).
MAX_INTERIM = 16  # 1xx replies before the real one
# A reply body read, and decompressed, at most (a completion is some kilobytes, and evolve keeps
# 1 MiB of its text): a server's 1 MiB gzip body of zeros took the controller to 1 GiB before it
# was refused as not JSON, and a larger one, or a huge Content-Length, could end the run (seventh
# red team).
MAX_BODY = 64 << 20
TOO_LARGE = f"reply body over {MAX_BODY >> 20} MiB"


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]  # (lower-cased name, value), in order
    lines: list[bytes]  # the header lines as received, for an error's ``response.headers``
    body: bytes
    will_close: bool

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key == name), "")

    def message(self) -> http.client.HTTPMessage:
        """The headers as http.client gives them (case-insensitive ``get``); made for errors only."""
        return http.client.parse_headers(io.BytesIO(b"".join(self.lines) + b"\r\n"))


@dataclass
class Sent:
    """A request on its way (``ChatEndpoint.send``): its connection, when its reply is due, and
    what went wrong while sending (raised by ``receive``)."""

    deadline: float  # time.monotonic()
    conn: _Connection | None = None
    error: Exception | None = None

    def answered(self) -> bool:
        """Something to read (the reply's start, or the server's close) or an error to raise:
        ``receive`` would not wait for the server to begin."""
        if self.error is not None or self.conn is None:
            return True
        try:
            readable, _, _ = select.select([self.conn.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def discard(self) -> None:
        """Never to be received: its connection is closed (a reply may still be on its way)."""
        if self.conn is not None:
            self.conn.close()


class _Connection:
    """One keep-alive HTTP/1.1 connection: a request out, its reply in (by Content-Length,
    chunked, or up to the server's close), without http.client's objects per request and its
    email-package header parser (about half of this client's CPU per call, ~0.09 ms)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.clock = _Deadline(sock)
        self.reader = io.BufferedReader(self.clock)

    def still_open(self) -> bool:
        """An idle connection is reusable if nothing is readable on it (EOF would be)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def response(self, timeout_s: float) -> _Reply:
        """The reply, read within ``timeout_s`` in all (``_Deadline``)."""
        self.clock.deadline = time.monotonic() + timeout_s
        for _ in range(MAX_INTERIM + 1):
            status, version = self._status()
            lines, headers = self._headers()
            if not 100 <= status < 200:
                break  # a 1xx (100 Continue): its headers read, the real reply follows
        else:
            raise http.client.HTTPException(f"more than {MAX_INTERIM} interim (1xx) replies")
        values = dict(headers)
        connection = values.get("connection", "").lower()
        will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        if status in (204, 304):
            body = b""
        elif "chunked" in values.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in values:
            try:
                length = int(values["content-length"])
            except ValueError:
                raise http.client.HTTPException(f"bad Content-Length {values['content-length']!r}") from None
            if length > MAX_BODY:
                raise http.client.HTTPException(TOO_LARGE)
            body = self.reader.read(length) if length > 0 else b""
            if len(body) < length:
                raise http.client.IncompleteRead(body, length - len(body))
        else:
            body, will_close = self.reader.read(MAX_BODY + 1), True
            if len(body) > MAX_BODY:
                raise http.client.HTTPException(TOO_LARGE)
        return _Reply(status, headers, lines, body, will_close)

    def _line(self) -> bytes:
        line = self.reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        return line

    def _status(self) -> tuple[int, str]:
        line = self._line()
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.decode("iso-8859-1").strip().partition(" ")
        code = rest.partition(" ")[0]
        if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
            raise http.client.BadStatusLine(line.decode("iso-8859-1").strip())
        return int(code), version

    def _headers(self) -> tuple[list[bytes], list[tuple[str, str]]]:
        lines: list[bytes] = []
        headers: list[tuple[str, str]] = []
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return lines, headers
            lines.append(line)
            if len(lines) > MAX_HEADERS:
                raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if sep:
                headers.append((name.strip().lower(), value.strip()))

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0  # a running sum: summing the parts per chunk was quadratic in their count
        while True:
            line = self._line()
            digits = line.split(b";", 1)[0].strip()
            if not line:
                raise http.client.IncompleteRead(b"".join(parts))
            # Hex digits only: int() also takes a sign ("-1" made the next read run to the close,
            # past the bound), underscores and spaces.
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):
                raise http.client.HTTPException(f"bad chunk size {digits[:40]!r}")
            size = int(digits, 16)
            if size == 0:
                self._headers()  # the trailers, bounded as headers are
                return b"".join(parts)
            if size > MAX_BODY - total:
                raise http.client.HTTPException(TOO_LARGE)
            chunk = self.reader.read(size)
            if len(chunk) < size:
                raise http.client.IncompleteRead(b"".join(parts) + chunk, size - len(chunk))
            parts.append(chunk)
            total += size
            self.reader.read(2)  # the CRLF after the chunk


class _Deadline(io.RawIOBase):
    """The socket's bytes, every read within what is left of the reply's time.

    A socket's timeout is per read: a server sending a byte now and then held a call as long as
    it liked (a Content-Length of 64 MiB at a byte per 9 s is some 20 years; the openai client's
    httpx does the same, ``openai_body.py``).  Each read here waits only for what is left of
    the whole reply's ``timeout_s``, and past it is the call's ``TimeoutError``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = float("inf")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


def decoded(encoding: str, raw: bytes) -> bytes:
    encoding = encoding.lower()
    if encoding not in ("gzip", "deflate"):
        return raw
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    out = inflate.decompress(raw, MAX_BODY + 1)
    if len(out) > MAX_BODY:
        raise http.client.HTTPException(TOO_LARGE)
    if not inflate.eof:
        raise zlib.error("incomplete or truncated stream")  # as gzip.decompress and zlib.decompress say
    return out


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
