"""The openai client's HTTP client, with the plain client's bound on a reply body.

Completions go through the openai client where the plain one cannot reach the server as it
would (a proxy in the environment, a query in the base URL: ``http_chat.usable``), and so do
the preflight probe and the model list.  httpx reads a body whole and inflates it whole: a
server's 1 MiB gzip body of zeros took the controller to 3 GiB before it was refused as not
JSON (eighth red team; a few MiB more would have ended the run).  Here every response, also a
redirect's, is read as it arrives up to ``MAX_BODY`` raw bytes and inflated to ``MAX_BODY`` at
most (``http_chat``'s own bound and inflater); more is the call's connection error (httpx's
``DecodingError``, which the openai client turns into ``APIConnectionError``).
"""

from __future__ import annotations

import http.client
import importlib
import time
import zlib
from typing import Any

from evolve.llm.http_chat import MAX_BODY, TOO_LARGE, decoded


def bounded_client(timeout_s: float, **kwargs: Any) -> Any:
    """An ``openai.DefaultHttpxClient`` (the openai client's own defaults: limits, redirects,
    proxies from the environment) whose every response body is bounded as above, and read
    within ``timeout_s`` once its head is in (httpx's timeout is per read: a server sending a
    byte now and then held the call as long as it liked)."""
    import openai

    # The HTTP package this openai release is built on (httpx, or httpx2 in later ones).
    httpx = next(importlib.import_module(base.__module__.split(".")[0])
                 for base in openai.DefaultHttpxClient.__mro__ if not base.__module__.startswith("openai"))

    def ask(request: Any) -> None:
        request.headers["Accept-Encoding"] = "gzip, deflate"  # what ``decoded`` inflates

    def bound(response: Any) -> None:
        original, raw = response.stream, bytearray()
        deadline = time.monotonic() + timeout_s
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

    return openai.DefaultHttpxClient(event_hooks={"request": [ask], "response": [bound]}, **kwargs)
