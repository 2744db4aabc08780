"""Google's and AWS's credential requests made by litellm, bounded as its model calls are.

litellm signs Bedrock calls with credentials from botocore (an STS ``AssumeRole`` or
``AssumeRoleWithWebIdentity`` to ``AWS_STS_ENDPOINT`` or the region's STS, a profile's or the
container's credentials endpoint) and authorises Vertex calls with google-auth, whose
``refresh`` asks the token endpoint of the credentials (``token_uri`` of a service account or an
authorised user, the STS of a workload identity pool, the metadata server).  Neither goes through
litellm's HTTP clients (``bound_litellm``): botocore reads with urllib3 (60 s per read, the body
read whole) and google-auth with ``requests`` (120 s per read).  A host trickling its reply a byte
at a time held a call with a 1 s timeout for as long as it liked (63 s for a 300-byte trickle
from an ``AWS_STS_ENDPOINT`` on 127.0.0.1, twelfth red team), and a large body was read whole.

Both now go through our bounded client (``openai_body.bounded_client``): 64 MiB of body at most,
head and body within the call's timeout.  The same requests as before: botocore's signed request
as it prepared it (its ``send`` is the only step replaced; parsing, retries and errors stay
botocore's), and google-auth's ``refresh`` with a transport that answers as its own does.
"""

from __future__ import annotations

from typing import Any


def _bounded(timeout_s: float, method: str, url: str, body: Any, headers: Any, verify: Any = True,
             timeout: float | None = None) -> Any:
    """One request through the bounded client, whole (an httpx response with its body read)."""
    from evolve.llm.openai_body import bounded_client

    if hasattr(body, "read"):  # a file-like upload (not an STS or token request: small anyway)
        body = body.read()
    if isinstance(verify, str):  # botocore's CA bundle (a file, or a dir of certificates)
        import os
        import ssl

        verify = (ssl.create_default_context(capath=verify) if os.path.isdir(verify)
                  else ssl.create_default_context(cafile=verify))
    limit = timeout_s if timeout is None else min(timeout_s, float(timeout))
    with bounded_client(timeout_s, verify=verify) as client:
        response = client.request(method, url, content=body, headers=dict(headers or {}), timeout=limit)
        response.read()
    return response


def bound_aws_requests(timeout_s: float) -> None:
    """Every request botocore sends in this process (litellm's STS clients, credential providers)
    made through the bounded client; left alone where botocore is not installed."""
    try:
        from botocore import httpsession
    except ImportError:
        return
    made = httpsession.URLLib3Session.send
    if getattr(made, "bounded", False):
        return

    def send(self: Any, request: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import EndpointConnectionError, HTTPClientError, ReadTimeoutError

        verify = getattr(self, "_verify", True)
        try:
            response = _bounded(timeout_s, request.method, request.url, request.body, request.headers.items(),
                                verify=True if verify is None else verify)
        except Exception as exc:  # httpx's or httpx2's, as botocore's own
            name = type(exc).__name__
            if "Timeout" in name:
                raise ReadTimeoutError(endpoint_url=request.url, error=exc) from None
            if name == "ConnectError":
                raise EndpointConnectionError(endpoint_url=request.url, error=exc) from None
            raise HTTPClientError(error=exc) from None
        return AWSResponse(request.url, response.status_code, dict(response.headers), _Body(response.content))

    send.bounded = True  # type: ignore[attr-defined]
    httpsession.URLLib3Session.send = send


class _Body:
    """A body read whole, as botocore reads a raw response (``stream`` for ``content``, ``read``
    for a streaming body)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def stream(self, amt: int = 1024, decode_content: bool = False) -> Any:
        while chunk := self.read(amt):
            yield chunk

    def read(self, amt: int | None = None, decode_content: bool = False) -> bytes:
        end = len(self._data) if amt is None else min(len(self._data), self._at + amt)
        chunk, self._at = self._data[self._at:end], end
        return chunk

    def close(self) -> None:
        self._at = len(self._data)


class GoogleRequest:
    """A google-auth transport (``google.auth.transport.Request``) through the bounded client."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            response = _bounded(self.timeout_s, method, url, body, (headers or {}).items(), timeout=timeout)
        except Exception as exc:
            raise _transport_error(exc) from None
        return _GoogleResponse(response.status_code, dict(response.headers), response.content)


class _GoogleResponse:
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.status, self.headers, self.data = status, headers, data


def _transport_error(exc: Exception) -> Exception:
    """google-auth's ``TransportError`` (what its own transports raise), or a ``ConnectionError``
    where google-auth is missing (litellm's Vertex calls need it: they fail before this)."""
    try:
        from google.auth import exceptions
    except ImportError:
        return ConnectionError(f"token request failed: {exc}")
    return exceptions.TransportError(exc)


def bound_google_token(timeout_s: float) -> None:
    """litellm's Vertex credential refresh (``VertexBase.refresh_auth``, the only place it refreshes)
    made with ``GoogleRequest``; the lock it holds is kept."""
    try:
        from litellm.llms.vertex_ai.vertex_llm_base import VertexBase
    except ImportError:
        return
    made = getattr(VertexBase, "refresh_auth", None)
    if made is None or getattr(made, "bounded", False):
        return

    def refresh_auth(self: Any, credentials: Any) -> None:
        with self._sync_refresh_lock:
            credentials.refresh(GoogleRequest(timeout_s))

    refresh_auth.bounded = True  # type: ignore[attr-defined]
    VertexBase.refresh_auth = refresh_auth
