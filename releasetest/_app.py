"""The inference server's Flask app, behind the checks Azure puts in front of it.

- ``authEnabled: True``: every route but the liveness probe needs ``Authorization: Bearer <key>``
  (the key comes from ``RELEASETEST_SERVER_KEY``, generated per run); a missing or wrong key gets
  401, as an Azure ML endpoint answers.
- Request bodies larger than ``RELEASETEST_MAX_BODY_BYTES`` get 413 before the app reads them.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from azureml_inference_server_http.server.entry import app as aml_app

StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, status: str, message: str) -> Iterable[bytes]:
    body = json.dumps({"message": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Guard:
    def __init__(self, app: Callable[..., Iterable[bytes]], key: str | None, max_body: int):
        self.app = app
        self.key = key.encode() if key else None
        self.max_body = max_body

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
        return self.app(environ, start_response)


app = Guard(aml_app, os.environ.get("RELEASETEST_SERVER_KEY") or None,
            int(os.environ.get("RELEASETEST_MAX_BODY_BYTES", str(10 * 1024 * 1024))))
