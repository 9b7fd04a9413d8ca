"""Scoring client: one ``requests`` session per endpoint, with timeouts and forensics.

It speaks the Azure ML scoring contract: ``POST /score`` with ``{"data": rows}``; the answer is
the JSON that ``run()`` returned, either a list of labels or a mapping with ``predictions``
(and optionally ``probabilities``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import EndpointDied, EndpointError, EndpointUnreachable

#: Response headers that let someone find a request in the server's own logs.
FORENSIC_HEADERS = (
    "x-ms-request-id",
    "x-ms-client-request-id",
    "x-ms-run-function-failed",
    "x-ms-server-version",
    "azureml-model-deployment",
    "ms-azureml-model-error-reason",
)


@dataclass(frozen=True)
class Scored:
    predictions: list[Any]
    probabilities: list[list[float]] | None
    status: int
    request_id: str | None
    #: Every response header, names in lower case: what the endpoint says about itself
    #: (``azureml-model-deployment``, ``x-ms-server-version``, ...).
    headers: dict[str, str] = field(default_factory=dict)


def parse_predictions(body: Any) -> tuple[list[Any], list[list[float]] | None]:
    """Labels (and probabilities if present) from what ``run()`` returned.

    azmlinfsrv JSON-encodes the return value; a ``run()`` that returned ``json.dumps(...)``
    arrives as a JSON string holding JSON, which is decoded once more.
    """
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            raise EndpointError(f"run() returned a string that is not JSON: {body[:200]!r}") from None
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict):
        for key in ("predictions", "labels", "label", "result"):
            if key in body:
                preds = body[key]
                if not isinstance(preds, list):
                    raise EndpointError(f"'{key}' in the response is {type(preds).__name__}, expected a list")
                probs = body.get("probabilities")
                if probs is not None and not isinstance(probs, list):
                    raise EndpointError("'probabilities' in the response is not a list")
                return preds, probs
        raise EndpointError(f"response has no 'predictions' key: keys are {sorted(body)[:10]}")
    raise EndpointError(f"response is {type(body).__name__}, expected a list or a mapping with 'predictions'")


def connection_cause(exc: BaseException) -> str:
    """The operating system's reason under a ``requests`` connection error (``Connection refused``,
    ``Name or service not known``), else the innermost exception's name."""
    inner: BaseException = exc
    for _ in range(10):  # requests -> urllib3 MaxRetryError -> NewConnectionError -> OSError
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        nxt = inner.__cause__ or inner.__context__ or getattr(inner, "reason", None)
        if not isinstance(nxt, BaseException):
            if inner.args and isinstance(inner.args[0], BaseException):
                nxt = inner.args[0]
            else:
                break
        inner = nxt
    return type(inner).__name__


class ScoringClient:
    """Talks to one endpoint. Keeps the last response's request-id headers for failure messages."""

    def __init__(self, handle: EndpointHandle, timeout: float = 30.0, connect_timeout: float = 3.05):
        self.handle = handle
        self.timeout = (connect_timeout, timeout)
        self.session = requests.Session()
        self.session.headers.update(handle.headers())
        self.last_headers: dict[str, str] = {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remember(self, resp: requests.Response) -> requests.Response:
        self.last_headers = {k: resp.headers[k] for k in FORENSIC_HEADERS if k in resp.headers}
        return resp

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Any HTTP request to the endpoint; a dead endpoint becomes one clear error."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self._remember(self.session.request(method, url, **kwargs))
        except requests.ConnectionError as exc:
            if self.handle.alive() is False:
                raise EndpointDied(f"endpoint died: server process {self.handle.info['pid']} is gone "
                                   f"(see {self.handle.log_path})") from None
            raise EndpointUnreachable(f"nothing answers at {url} ({connection_cause(exc)})") from None
        except requests.Timeout:
            raise EndpointError(f"no answer from {url} within {kwargs['timeout']} s") from None

    def liveness(self) -> requests.Response:
        return self.request("GET", self.handle.liveness_uri)

    def swagger(self, version: int = 2) -> dict[str, Any]:
        resp = self.request("GET", self.handle.swagger_uri, params={"version": version})
        if resp.status_code != 200:
            raise EndpointError(f"GET {resp.url} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def post_score(self, body: Any) -> requests.Response:
        return self.request("POST", self.handle.scoring_uri, json=body)

    def score(self, rows: Sequence[Sequence[float]]) -> Scored:
        """Score rows; any non-2xx or malformed answer raises with status, body and request id."""
        resp = self.post_score({"data": [list(map(float, r)) for r in rows]})
        rid = resp.headers.get("x-ms-request-id")
        if not 200 <= resp.status_code < 300:
            # Azure ML's front end says why it refused (e.g. "model_not_ready") in this header.
            reason = resp.headers.get("ms-azureml-model-error-reason")
            raise EndpointError(
                f"POST {self.handle.scoring_uri} answered {resp.status_code} "
                f"(request id {rid}{', ms-azureml-model-error-reason: ' + reason if reason else ''}): "
                f"{resp.text[:500]}")
        try:
            body = resp.json()
        except ValueError:
            raise EndpointError(f"response is not JSON (request id {rid}): {resp.text[:300]!r}") from None
        preds, probs = parse_predictions(body)
        if len(preds) != len(rows):
            raise EndpointError(f"sent {len(rows)} rows, got {len(preds)} predictions (request id {rid})")
        return Scored(predictions=preds, probabilities=probs, status=resp.status_code, request_id=rid,
                      headers={k.lower(): v for k, v in resp.headers.items()})


def wait_ready(
    handle: EndpointHandle,
    golden_rows: list[list[float]],
    golden_labels: list[Any],
    deadline_s: float,
    still_starting: Callable[[float], bool],
    unreachable_s: float | None = None,
) -> Scored:
    """Block until liveness answers and the golden rows score to the expected labels; return the golden answer.

    ``still_starting(wait_s)`` waits up to ``wait_s`` and returns False when the target has
    given up (a local server process exited); it is the only pause in the loop. With
    ``unreachable_s``, an address where nothing has accepted a connection for that long fails
    then, naming it; once anything answers (e.g. 503 while a model loads) the whole
    ``deadline_s`` applies. Raises :class:`EndpointError` with the cause on a wrong golden answer
    or on timeout.
    """
    start = time.monotonic()
    end = start + deadline_s
    last = "no answer yet"
    answered = False
    with ScoringClient(handle, timeout=max(5.0, deadline_s), connect_timeout=1.0) as client:
        while True:
            try:
                # Short read timeout: something else listening on the port may accept and never answer.
                live = client.request("GET", handle.liveness_uri, timeout=(1.0, 2.0)).status_code
            except EndpointUnreachable as exc:
                live, last = None, str(exc)
            except EndpointError as exc:
                live, last, answered = None, str(exc), True
            if live == 200:
                # Up: from here on a wrong or failed golden answer is a verdict, not a wait.
                try:
                    scored = client.score(golden_rows)
                except EndpointError as exc:
                    raise EndpointError(f"golden prediction failed: {exc}") from None
                if scored.predictions != golden_labels:
                    raise EndpointError(
                        f"golden prediction mismatch: rows 1-{len(golden_rows)} of the holdout gave "
                        f"{scored.predictions}, the release recorded {golden_labels} at training time")
                return scored
            if live is not None:
                last, answered = f"liveness answered {live}", True
            now = time.monotonic()
            if unreachable_s is not None and not answered and now - start >= unreachable_s:
                raise EndpointUnreachable(f"{last} for {unreachable_s:g} s")
            remaining = end - now
            if remaining <= 0:
                raise EndpointError(f"not ready within {deadline_s:g} s (last: {last})")
            if not still_starting(min(0.25, remaining)):
                raise EndpointError(f"gave up while starting (last: {last})")
