"""Scoring client: one ``requests`` session per endpoint, with timeouts and forensics.

It speaks the Azure ML scoring contract: ``POST /score`` with a body in the release's own format
and the JSON that ``run()`` returned as the answer, both through the release's
:class:`~releasetest.endpoint.formats.Wire`, which the endpoint resolved when it became ready.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from releasetest.endpoint.formats import Wire, WireSpec, integer_schema_cause, wire_of
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.slots import Slots
from releasetest.errors import EndpointDied, EndpointError, EndpointUnreachable, WrongAnswer
from releasetest.release.data import Expected

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


@dataclass(frozen=True)
class Ready:
    """What readiness established: the release's wire format, and the golden answer (its headers
    say what the endpoint serves)."""

    wire: Wire
    golden: Scored


class ScoringClient:
    """Talks to one endpoint. Keeps the last response's request-id headers for failure messages."""

    def __init__(self, handle: EndpointHandle, timeout: float = 30.0, connect_timeout: float = 3.05,
                 wire: Wire | None = None):
        self.handle = handle
        #: The release's request/answer format: given, else the one the endpoint resolved when ready.
        self.wire = wire or wire_of(handle)
        self.timeout = (connect_timeout, timeout)
        self.session = requests.Session()
        # One endpoint: take proxy and CA settings from the environment once, as requests would,
        # instead of on every request (~0.5 ms each, which the load generator's rate feels).
        self.session.proxies = requests.utils.get_environ_proxies(handle.scoring_uri)
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.trust_env = False
        self.session.headers.update(handle.headers())
        self.last_headers: dict[str, str] = {}
        #: Requests sent, and those the endpoint answered (any HTTP status): a suite's evidence.
        self.probes_sent = 0
        self.probes_answered = 0
        #: An endpoint that answers 429 beyond ``admits`` scoring requests at once: every client of
        #: the run (xdist workers, acceptance threads) counts its own in the same slots, so the
        #: gate's traffic never exceeds it; only the load generator (bounded by its own concurrency) may.
        admits, folder = handle.info.get("admits"), handle.info.get("client_slots")
        self.admission = Slots(folder, int(admits)) if admits and folder else None

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
        self.probes_sent += 1
        slot = (self.admission.take(id(self)) if self.admission is not None and method == "POST"
                and url == self.handle.scoring_uri else None)
        try:
            resp = self._remember(self.session.request(method, url, **kwargs))
            self.probes_answered += 1
            return resp
        except requests.ConnectionError as exc:
            if self.handle.alive() is False:
                raise EndpointDied(f"endpoint died: server process {self.handle.info['pid']} is gone "
                                   f"(see {self.handle.log_path})") from None
            raise EndpointUnreachable(f"nothing answers at {url} ({connection_cause(exc)})") from None
        except requests.Timeout:
            raise EndpointError(f"no answer from {url} within {kwargs['timeout']} s") from None
        finally:
            if slot is not None:
                Slots.release(slot)

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
        """Score rows, at most ``wire.batch_size`` per request; any non-2xx or malformed answer
        raises with status, body and request id."""
        size = self.wire.batch_size or len(rows) or 1
        if len(rows) > size:
            parts = [self._score(rows[i:i + size]) for i in range(0, len(rows), size)]
            probs = [p for s in parts for p in s.probabilities or []] if all(s.probabilities for s in parts) else None
            return Scored(predictions=[p for s in parts for p in s.predictions], probabilities=probs,
                          status=parts[-1].status, request_id=parts[-1].request_id)
        return self._score(rows)

    def _score(self, rows: Sequence[Sequence[float]]) -> Scored:
        resp = self.post_score(self.wire.body(rows))
        rid = resp.headers.get("x-ms-request-id")
        if not 200 <= resp.status_code < 300:
            # Azure ML's front end says why it refused (e.g. "model_not_ready") in this header.
            reason = resp.headers.get("ms-azureml-model-error-reason")
            failed = (f"POST {self.handle.scoring_uri} answered {resp.status_code} "
                      f"(request id {rid}{', ms-azureml-model-error-reason: ' + reason if reason else ''}): "
                      f"{resp.text[:500]}")
            # A timed-out batch is slow, not row-at-a-time: its own answer is the cause to show.
            timed_out = resp.status_code == 504 or "timeout" in resp.text.lower()
            if len(rows) > 1 and resp.status_code >= 500 and not timed_out and self._scores_one(rows[0]):
                raise EndpointError(
                    f"the entry script fails on batches of {len(rows)} rows and scores single rows; its contract "
                    f"looks like one row per request: set [acceptance] batch_size = 1 ({failed})")
            raise EndpointError(failed)
        try:
            body = resp.json()
        except ValueError:
            raise EndpointError(f"response is not JSON (request id {rid}): {resp.text[:300]!r}") from None
        preds, probs = self.wire.decode(body)
        if len(preds) != len(rows):
            raise EndpointError(f"sent {len(rows)} rows, got {len(preds)} predictions (request id {rid})")
        return Scored(predictions=preds, probabilities=probs, status=resp.status_code, request_id=rid,
                      headers={k.lower(): v for k, v in resp.headers.items()})

    def _scores_one(self, row: Sequence[float]) -> bool:
        """Whether one row alone gets a 2xx: tells a row-at-a-time contract from a broken script."""
        try:
            return 200 <= self.post_score(self.wire.body([row])).status_code < 300
        except EndpointError:
            return False


#: Pause between readiness polls: a refused connection costs well under a millisecond, and every
#: pause is time the gate waits after the server is up.
POLL_S = 0.05


def wait_ready(
    handle: EndpointHandle,
    golden_rows: list[list[float]],
    golden_labels: list[Any],
    deadline_s: float,
    still_starting: Callable[[float], bool],
    spec: WireSpec | None = None,
    unreachable_s: float | None = None,
    started: float | None = None,
    diagnose: Callable[[], str | None] | None = None,
) -> Ready:
    """Block until liveness answers and the golden rows score to the expected labels (within
    their tolerance, when they are :class:`~releasetest.release.data.Expected`); return the
    release's wire (``spec`` resolved against the published swagger, which a raw ``run()`` lacks)
    and the golden answer, whose headers say what the endpoint serves.

    ``still_starting(wait_s)`` waits up to ``wait_s`` and returns False when the target has
    given up (a local server process exited); it is the only pause in the loop. With
    ``unreachable_s``, an address where nothing has accepted a connection for that long fails
    then, naming it; once anything answers (e.g. 503 while a model loads) the whole
    ``deadline_s`` applies. Raises :class:`WrongAnswer` on a wrong or failed golden answer (the
    endpoint is up), :class:`EndpointError` with the cause on timeout. Both bounds count from
    ``started`` (``time.monotonic()``, default now): a server launched earlier has had part of
    its time already. ``diagnose()`` names a release-side cause of a wrong or failed golden answer
    (an MLflow signature that refuses the rows); it goes first in the message, as the published
    schema's integer type does.
    """
    start = time.monotonic() if started is None else started
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
                service_input = _service_input(client)
                client.wire = wire = (spec or WireSpec()).resolve(service_input)
                try:
                    scored = client.score(golden_rows)
                except EndpointError as exc:
                    raise WrongAnswer(_caused(f"scoring the golden rows failed: {exc}", diagnose)) from None
                mismatch = Expected.of(golden_labels).mismatch(scored.predictions)
                if mismatch is not None:
                    cause = integer_schema_cause(service_input, wire, golden_rows)
                    raise WrongAnswer(_caused(f"{cause}; {mismatch}" if cause else mismatch, diagnose))
                return Ready(wire, scored)
            if live is not None:
                last, answered = f"liveness answered {live}", True
            now = time.monotonic()
            if unreachable_s is not None and not answered and now - start >= unreachable_s:
                raise EndpointUnreachable(f"{last} for {unreachable_s:g} s")
            remaining = end - now
            if remaining <= 0:
                raise EndpointError(f"not ready within {deadline_s:g} s (last: {last})")
            if not still_starting(min(POLL_S, remaining)):
                raise EndpointError(f"gave up while starting (last: {last})")


def _caused(message: str, diagnose: Callable[[], str | None] | None) -> str:
    cause = diagnose() if diagnose is not None else None
    return f"{cause}; {message}" if cause else message


def published_input(handle: EndpointHandle) -> dict[str, Any] | None:
    """The endpoint's published ServiceInput, asked again after readiness (None for a raw ``run()``):
    what a wrong answer after readiness (training-serving parity) is checked against."""
    with ScoringClient(handle) as client:
        return _service_input(client)


def _service_input(client: ScoringClient) -> dict[str, Any] | None:
    """swagger v2's ServiceInput, or None when the endpoint publishes none (a raw ``run()``)."""
    try:
        defs = client.swagger(2).get("definitions")
    except (EndpointError, ValueError):
        return None
    found = defs.get("ServiceInput") if isinstance(defs, dict) else None
    return found if isinstance(found, dict) else None
