"""The inference server's Flask app, behind the checks Azure puts in front of it.

- ``authEnabled: True``: every route but the liveness probe needs ``Authorization: Bearer <key>``
  (the key comes from ``RELEASETEST_SERVER_KEY``, generated per run); a missing or wrong key gets
  401, as an Azure ML endpoint answers.
- Request bodies larger than ``RELEASETEST_MAX_BODY_BYTES`` get 413: before the app reads them
  when ``Content-Length`` declares the size, and as soon as the count passes the cap while the
  app reads a chunked body (which has no length to check up front).
- An admission limit (``RELEASETEST_ADMIT``, Azure ML v2: ``2 × max_concurrent_requests_per_instance``
  per instance): a scoring request beyond that many in flight, counted across every worker and
  thread by :class:`~releasetest.endpoint.slots.Slots` in ``RELEASETEST_ADMIT_DIR``, gets 429
  "Too many pending requests", as Azure answers it. The slot is freed as soon as the app has
  answered, before the answer is written, so a client that waits for its answers before sending
  more is never refused.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from azureml_inference_server_http.server.entry import app as aml_app
from werkzeug.exceptions import RequestEntityTooLarge

from releasetest.endpoint.server.worker import on_main
from releasetest.endpoint.slots import Slots
from releasetest.lifeline import die_with_parent
from releasetest.settings import DEFAULT_MAX_BODY_BYTES

StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, status: str, message: str) -> Iterable[bytes]:
    body = json.dumps({"message": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _CappedInput:
    """``wsgi.input`` of a chunked request: counts what the app reads and stops at the cap."""

    def __init__(self, stream: Any, cap: int):
        self.stream, self.cap, self.seen = stream, cap, 0

    def _count(self, data: bytes) -> bytes:
        self.seen += len(data)
        if self.seen > self.cap:
            raise RequestEntityTooLarge(f"request body exceeds the limit of {self.cap}")
        return data

    def read(self, size: int = -1) -> bytes:
        return self._count(self.stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._count(self.stream.readline(size))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def _too_large(exc: RequestEntityTooLarge) -> tuple[dict[str, str], int]:
    """As JSON, like the 413 for a declared length (Flask's default page is HTML)."""
    return {"message": str(exc.description)}, 413


class Guard:
    def __init__(self, app: Callable[..., Iterable[bytes]], key: str | None, max_body: int,
                 admission: Slots | None = None):
        self.app = app
        self.key = key.encode() if key else None
        self.max_body = max_body
        self.admission = admission

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        is_liveness = environ.get("PATH_INFO", "/") == "/" and environ.get("REQUEST_METHOD") == "GET"
        if self.key is not None and not is_liveness:
            given = environ.get("HTTP_AUTHORIZATION", "")
            token = given[7:].encode() if given.startswith("Bearer ") else b""
            if not hmac.compare_digest(token, self.key):
                return _reply(start_response, "401 Unauthorized", "missing or invalid key")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start_response, "400 Bad Request", "invalid Content-Length")
        if length > self.max_body:
            return _reply(start_response, "413 Request Entity Too Large",
                          f"request body of {length} bytes exceeds the limit of {self.max_body}")
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            environ["wsgi.input"] = _CappedInput(environ["wsgi.input"], self.max_body)
        if self.admission is None or environ.get("PATH_INFO") != "/score":
            return on_main(lambda: self.app(environ, start_response))
        slot = self.admission.try_take()
        if slot is None:
            return _reply(start_response, "429 Too Many Requests",
                          f"Too many pending requests: this instance admits {self.admission.n} scoring requests at "
                          "once (2 x max_concurrent_requests_per_instance)")
        try:
            return on_main(lambda: self.app(environ, start_response))
        finally:
            Slots.release(slot)


# Loaded in each gunicorn worker after the fork: a worker dies with its master, even a SIGKILLed one.
die_with_parent()
aml_app.register_error_handler(RequestEntityTooLarge, _too_large)
_admit = os.environ.get("RELEASETEST_ADMIT")
app = Guard(aml_app, os.environ.get("RELEASETEST_SERVER_KEY") or None,
            int(os.environ.get("RELEASETEST_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            Slots(os.environ["RELEASETEST_ADMIT_DIR"], int(_admit)) if _admit else None)
