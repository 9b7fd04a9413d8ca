"""Shadow in production before the traffic shift: the mirror phase of ``promote --target azureml``.

The new deployment gets a share of the endpoint's live traffic mirrored to it (Azure ML answers
callers from the live deployment and discards the mirrored answer). Both deployments' data
collectors write what they answered as JSON lines under
``<endpoint>/<deployment>/model_outputs/<yyyy>/<MM>/<dd>/<HH>/*.jsonl`` (one event per line, with
``data``, ``time`` and ``correlationid``), and what they received under ``model_inputs``; a
mirrored request keeps the live request's correlation id, so the answers pair up by it. The shift
happens only when enough requests were compared and, within the ``[shadow]`` bounds (the shadow
suite's, :mod:`releasetest.checks.shadow`): the share of rows whose label changed (a regression: the
mean absolute change), overall and per segment; the new deployment's error rate beyond the live
one's; and its p95 latency against the live one's, both as the collector saw them (the time from a
request's ``model_inputs`` event to its ``model_outputs`` event: ``run()``, not the network).

Live traffic may be thin when the release ships: ``replay`` sends recorded request bodies to the
endpoint as its clients would, so the mirror window has requests to compare.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.shadow.config import ShadowConfig
from releasetest.checks.shadow.replay import Replay, by_segment, compare_answers, recorded_answer
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.formats import Wire
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, EndpointError
from releasetest.release.manifest import Tolerance
from releasetest.release.traffic import body_rows

#: Share of the live traffic mirrored: 0 leaves the mirror phase out (it needs the collector's output).
DEFAULT_MIRROR_PERCENT = 0
#: Azure ML refuses mirrored traffic above half the endpoint's traffic.
MAX_MIRROR_PERCENT = 50
#: Mirrored requests compared before the shift.
DEFAULT_MIRROR_REQUESTS = 200
#: Seconds the mirror window may last; fewer requests compared by then keeps the traffic where it was.
DEFAULT_MIRROR_TIMEOUT = 300.0
#: Seconds between reads of the collector's output while the window is open.
POLL_S = 1.0


@dataclass(frozen=True)
class MirrorOptions:
    """How long and how much to mirror, where the collector's output is, what to replay."""

    percent: int = DEFAULT_MIRROR_PERCENT
    requests: int = DEFAULT_MIRROR_REQUESTS
    timeout_s: float = DEFAULT_MIRROR_TIMEOUT
    #: A local folder holding the collector's output (default: read the workspace's default
    #: datastore, where Azure ML writes it).
    collector: Path | None = None
    #: JSON lines, one request body per line, sent to the endpoint during the window.
    replay: Path | None = None
    #: The ``[shadow]`` bounds, as the shadow suite's parser read them (``promotion.promote`` sets them).
    bounds: ShadowConfig = ShadowConfig()

    @property
    def enabled(self) -> bool:
        return self.percent > 0

    def check(self) -> None:
        """Refuse options that cannot give a comparison, before anything is deployed."""
        if not self.enabled:
            return
        if self.percent > MAX_MIRROR_PERCENT:
            raise ConfigError("promote", "--mirror-percent", f"{self.percent} is above Azure ML's limit",
                              f"mirror at most {MAX_MIRROR_PERCENT} percent of the live traffic")
        if self.requests < 1 or self.timeout_s <= 0:
            raise ConfigError("promote", "--mirror-requests/--mirror-timeout", "must be positive",
                              "e.g. --mirror-requests 200 --mirror-timeout 300")
        if self.collector is not None and not self.collector.is_dir():
            raise ConfigError(self.collector, "--mirror-collector", "is not a folder",
                              "give the folder holding <endpoint>/<deployment>/model_outputs, or leave it out to "
                              "read the workspace's default datastore")
        if self.replay is not None:
            replay_bodies(self.replay)


def replay_bodies(path: Path) -> list[Any]:
    """Request bodies from JSON lines; a bad line is one error naming the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(path, "--mirror-replay", f"cannot be read ({exc.strerror})",
                          "give a JSON lines file, one request body per line") from None
    bodies = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            bodies.append(json.loads(line))
        except ValueError:
            raise ConfigError(path, f"line {number}", "is not JSON",
                              "write one request body per line, as clients POST it") from None
    if not bodies:
        raise ConfigError(path, "--mirror-replay", "holds no request", "write one request body per line")
    return bodies


def _stamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


#: Where the data collector writes in the workspace's default datastore (``<endpoint>/<deployment>/...`` below).
DATASTORE_FOLDER = "modelDataCollector"
#: The collections read: what each deployment received, and what it answered.
COLLECTIONS = ("model_inputs", "model_outputs")


@dataclass(frozen=True)
class Event:
    """One collected event: when the collector wrote it (UTC seconds) and its ``data``."""

    time: float
    data: Any


#: ``read(endpoint, deployment, collection, since)``: a deployment's events of one collection by correlation id.
EventsReader = Callable[[str, str, str, float], dict[str, Event]]


def _events(text: str, since: float, into: dict[str, Event]) -> None:
    """Events of one collector file collected at or after ``since``; a line still being written (no
    newline yet) is left for the next read."""
    for line in text[:text.rfind("\n") + 1].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        cid = event.get("correlationid") if isinstance(event, dict) else None
        when = _stamp(event.get("time")) if cid else None
        if cid and when is not None and when >= since:
            into[str(cid)] = Event(when, event.get("data"))


def folder_reader(root: Path) -> EventsReader:
    """The collector's output in a local folder (a mount or a sync of the datastore's
    ``modelDataCollector``, or what the loopback stand-in writes)."""
    def read(endpoint: str, deployment: str, collection: str, since: float) -> dict[str, Event]:
        events: dict[str, Event] = {}
        for path in sorted((root / endpoint / deployment / collection).rglob("*.jsonl")):
            _events(path.read_text(encoding="utf-8"), since, events)
        return events

    return read


def datastore_reader(ml: Any) -> EventsReader:
    """The collector's output where Azure ML writes it: the workspace's default blob datastore,
    ``modelDataCollector/<endpoint>/<deployment>/<collection>/<yyyy>/<MM>/<dd>/<HH>/*.jsonl``, read
    with the datastore's account key (azure-storage-blob, which azure-ai-ml installs)."""
    from azure.storage.blob import ContainerClient

    store = ml.datastores.get_default(include_secrets=True)
    key = getattr(getattr(store, "credentials", None), "account_key", None)
    url = f"{store.protocol or 'https'}://{store.account_name}.blob.{store.endpoint}"
    container = ContainerClient(url, store.container_name, credential=key)

    def read(endpoint: str, deployment: str, collection: str, since: float) -> dict[str, Event]:
        events: dict[str, Event] = {}
        prefix = f"{DATASTORE_FOLDER}/{endpoint}/{deployment}/{collection}/"
        for blob in sorted(container.list_blobs(name_starts_with=prefix), key=lambda b: b.name):
            if blob.name.endswith(".jsonl"):
                _events(container.download_blob(blob.name).readall().decode("utf-8"), since, events)
        return events

    return read


@dataclass(frozen=True)
class Collected:
    """What the collector wrote for the live deployment(s) and the new one in the window."""

    live_inputs: dict[str, Event]
    live_outputs: dict[str, Event]
    new_inputs: dict[str, Event]
    new_outputs: dict[str, Event]

    @property
    def paired(self) -> list[str]:
        """Requests both sides answered, in a stable order."""
        return sorted(set(self.live_outputs) & set(self.new_outputs))

    @property
    def latest(self) -> float:
        """The newest event's time, on the collector's clock (not this machine's)."""
        return max((e.time for d in (self.live_inputs, self.live_outputs, self.new_inputs, self.new_outputs)
                    for e in d.values()), default=0.0)


def collect(read: EventsReader, endpoint: str, live: Iterable[str], new: str, since: float) -> Collected:
    """One read of both sides' inputs and outputs."""
    sides: list[dict[str, Event]] = []
    for deployments in (list(live), [new]):
        for collection in COLLECTIONS:
            merged: dict[str, Event] = {}
            for dep in deployments:
                merged.update(read(endpoint, dep, collection, since))
            sides.append(merged)
    return Collected(*sides)


@dataclass(frozen=True)
class Side:
    """One deployment on the mirrored requests: how many it settled, failed, and how long ``run()`` took."""

    requests: int
    errors: int
    #: p50/p95 of the time from each request's model_inputs event to its model_outputs event (ms).
    latency_ms: dict[str, float] | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "error_rate": round(self.error_rate, 6),
                "latency_ms": self.latency_ms}


def side(inputs: dict[str, Event], outputs: dict[str, Event], mirrored: set[str], latest: float,
         timeout_s: float) -> Side:
    """Errors and latency of one deployment on the mirrored requests. A request counts as failed
    when the collector has its input and no output although the input is older than the scoring
    timeout (by the collector's newest event); a younger one is still pending and not counted."""
    settled = [c for c in mirrored if c in outputs or (c in inputs and inputs[c].time <= latest - timeout_s)]
    errors = sum(1 for c in settled if c not in outputs)
    took = [max(0.0, (outputs[c].time - inputs[c].time) * 1000) for c in mirrored if c in inputs and c in outputs]
    latency = ({f"p{p}": round(float(np.percentile(took, p)), 2) for p in (50, 95)} if took else None)
    return Side(len(settled), errors, latency)


@dataclass(frozen=True)
class MirrorComparison:
    """The new deployment's answers, errors and latency against the live one's on the same mirrored
    requests, within the ``[shadow]`` bounds (:class:`ShadowConfig`, the shadow suite's)."""

    wanted: int
    requests: int
    rows: int
    changed: int
    mean_abs_change: float | None
    bounds: ShadowConfig
    regression: bool
    live: Side
    new: Side
    #: Per segment of ``bounds.segment`` (the shadow suite's :func:`by_segment` rows), or None.
    segments: list[dict[str, Any]] | None = None
    replayed: int = 0
    #: Why a request or an answer could not be compared (the first such cause).
    problem: str | None = None

    @property
    def share_changed(self) -> float:
        return self.changed / self.rows if self.rows else 0.0

    @property
    def enough(self) -> bool:
        return self.requests >= self.wanted and self.rows > 0

    @property
    def answers_within(self) -> bool:
        if self.regression:
            bound = self.bounds.max_mean_abs_change
            return bound is None or (self.mean_abs_change or 0.0) <= bound
        return self.share_changed <= self.bounds.max_changed

    @property
    def beyond_segments(self) -> list[dict[str, Any]]:
        return [s for s in self.segments or [] if s["passed"] is False]

    @property
    def errors_within(self) -> bool:
        return self.bounds.errors_within(self.new.error_rate, self.live.error_rate)

    @property
    def latency_within(self) -> bool:
        if self.new.latency_ms is None or self.live.latency_ms is None:
            return True
        return self.bounds.latency_within(self.new.latency_ms["p95"], self.live.latency_ms["p95"])

    @property
    def within(self) -> bool:
        return self.answers_within and not self.beyond_segments and self.errors_within and self.latency_within

    @property
    def ok(self) -> bool:
        return self.enough and self.within and self.problem is None

    def line(self) -> str:
        """One line: rows compared, the change and its bound, then each bound the mirror is beyond."""
        b = self.bounds
        if self.regression:
            change = f"mean absolute change {self.mean_abs_change or 0.0:.4g}"
            bound = ("no bound ([shadow] max_mean_abs_change unset)" if b.max_mean_abs_change is None
                     else f"bound max_mean_abs_change {b.max_mean_abs_change:.4g}")
        else:
            change = f"{self.share_changed:.1%} changed label ({self.changed})"
            bound = f"bound max_changed {b.max_changed:.1%}"
        parts = [f"{self.requests} mirrored request(s), {self.rows} row(s) compared: {change}, {bound}"]
        if self.beyond_segments:
            what = "mean_abs_change" if self.regression else "changed_share"
            limit = b.max_mean_abs_change_per_segment if self.regression else b.max_changed_per_segment
            parts.append(f"{len(self.beyond_segments)} segment(s) of {b.segment} beyond the per-segment bound "
                         f"{limit:g}: " + ", ".join(f"{s['segment']} {what} {s[what]:.4g} ({s['rows']} rows)"
                                                    for s in self.beyond_segments))
        if not self.errors_within:
            parts.append(f"error rate {self.new.error_rate:.4f} ({self.new.errors} of {self.new.requests}) against "
                         f"the live {self.live.error_rate:.4f}, beyond [shadow] max_error_rate {b.max_error_rate:g}")
        if not self.latency_within:
            assert self.new.latency_ms is not None and self.live.latency_ms is not None
            new_ms, live_ms = self.new.latency_ms["p95"], self.live.latency_ms["p95"]
            parts.append(f"p95 latency {new_ms:g} ms against the live {live_ms:g} ms, beyond [shadow] "
                         f"max_latency_ratio {b.max_latency_ratio:g} (and latency_allowance_ms "
                         f"{b.latency_allowance_ms:g})")
        if self.problem:
            parts.append(self.problem)
        elif not self.enough:
            parts.append(f"wanted {self.wanted} mirrored request(s) within the window"
                         + (f" ({self.replayed} replayed)" if self.replayed else "")
                         + ": mirror more (--mirror-percent), wait longer (--mirror-timeout) or replay recorded "
                           "requests (--mirror-replay)")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "rows": self.rows, "changed": self.changed,
                "share_changed": round(self.share_changed, 6), "mean_abs_change": self.mean_abs_change,
                "max_changed": self.bounds.max_changed, "max_mean_abs_change": self.bounds.max_mean_abs_change,
                "segments": self.segments, "live": self.live.as_dict(), "new": self.new.as_dict(),
                "max_error_rate": self.bounds.max_error_rate, "max_latency_ratio": self.bounds.max_latency_ratio,
                "latency_allowance_ms": self.bounds.latency_allowance_ms,
                "wanted": self.wanted, "replayed": self.replayed, "ok": self.ok}


@dataclass(frozen=True)
class Compared:
    """What :func:`compare` needs of the release: its task, how its answers and inputs read, its tolerance."""

    wire: Wire
    regression: bool
    tolerance: Tolerance
    features: tuple[str, ...]
    #: Seconds after which a request with no answer counts as failed (the deployment's scoring timeout).
    timeout_s: float = 60.0


def compare(got: Collected, release: Compared, bounds: ShadowConfig, wanted: int,
            replayed: int = 0) -> MirrorComparison:
    """Row by row on the correlation ids both deployments answered, with the shadow suite's
    comparison (:func:`compare_answers`) and per-segment bounds (:func:`by_segment`); then both
    sides' errors and latency on every mirrored request."""
    problem = None
    live_preds: list[Any] = []
    new_preds: list[Any] = []
    live_probs: list[list[float] | None] = []
    new_probs: list[list[float] | None] = []
    segment_values: list[float] = []
    requests = 0
    key = ".".join(release.wire.path) if release.wire.path else "data"
    for cid in got.paired:
        try:
            before, p_before = _decode(got.live_outputs[cid].data, release.wire)
            after, p_after = _decode(got.new_outputs[cid].data, release.wire)
        except EndpointError as exc:
            problem = problem or f"request {cid}: {exc}"
            continue
        if len(before) != len(after):
            problem = problem or f"request {cid}: {len(before)} live answer(s), {len(after)} new"
            continue
        if any(v is None for v in (*before, *after)):
            problem = problem or f"request {cid}: an answer holds no prediction"
            continue
        if release.regression and not all(_number(v) for v in (*before, *after)):
            problem = problem or f"request {cid}: a prediction is not a number"
            continue
        if bounds.segment is not None:
            sent = got.live_inputs.get(cid) or got.new_inputs.get(cid)
            rows = body_rows(sent.data, release.features, key) if sent is not None else None
            at = release.features.index(bounds.segment)
            if rows is None or len(rows) != len(before) or not all(_number(r[at]) for r in rows):
                problem = problem or (f"request {cid}: its model_inputs hold no {bounds.segment} per row, which the "
                                      "per-segment bound ([shadow] segment) needs")
                continue
            segment_values.extend(float(r[at]) for r in rows)
        requests += 1
        live_preds += before
        new_preds += after
        live_probs += p_before if p_before is not None and len(p_before) == len(before) else [None] * len(before)
        new_probs += p_after if p_after is not None and len(p_after) == len(after) else [None] * len(after)
    n = len(live_preds)
    comparison = compare_answers(Replay("new", new_preds, new_probs, requests, 0, [], []),
                                 Replay("live", live_preds, live_probs, requests, 0, [], []),
                                 release.regression, release.tolerance)
    segments = (by_segment(comparison, np.asarray(segment_values, dtype=np.float64), bounds, release.regression,
                           bounds.segment) if bounds.segment is not None and n else None)
    mirrored = (set(got.live_inputs) & set(got.new_inputs)) | set(got.paired)
    latest = got.latest
    return MirrorComparison(
        wanted=wanted, requests=requests, rows=n, changed=int(comparison.changed.sum()),
        mean_abs_change=(comparison.mean_abs_change if n else None) if release.regression else None,
        bounds=bounds, regression=release.regression,
        live=side(got.live_inputs, got.live_outputs, mirrored, latest, release.timeout_s),
        new=side(got.new_inputs, got.new_outputs, mirrored, latest, release.timeout_s),
        segments=segments, replayed=replayed, problem=problem)


def _decode(data: Any, wire: Wire) -> tuple[list[Any], list[list[float]] | None]:
    """Predictions (and probabilities) from an output event's ``data``: the body the deployment
    answered (payload logging), or one record per row (an entry script collecting a DataFrame)."""
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        answers = [recorded_answer(r, wire.predictions) for r in data]
        probs = [p for _, p in answers]
        return [a for a, _ in answers], (None if any(p is None for p in probs) else [p for p in probs if p is not None])
    return wire.decode(data)


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def replay(handle: EndpointHandle, wire: Wire, bodies: list[Any], count: int) -> tuple[int, str | None]:
    """Send ``count`` requests (the bodies in turn) as clients do, each with its own ``x-request-id``;
    returns how many were answered 2xx and the first failure."""
    answered, failure = 0, None
    with ScoringClient(handle, wire=wire) as client:
        for i in range(count):
            try:
                resp = client.request("POST", handle.scoring_uri, json=bodies[i % len(bodies)],
                                      headers={"x-request-id": str(uuid.uuid4())})
            except EndpointError as exc:
                failure = failure or str(exc)
                continue
            if 200 <= resp.status_code < 300:
                answered += 1
            else:
                failure = failure or f"the endpoint answered {resp.status_code}: {resp.text[:200]}"
    return answered, failure


def mirror_window(options: MirrorOptions, read: EventsReader, endpoint: str, live: Iterable[str], new: str,
                  since: float, compare_now: Callable[[Collected], MirrorComparison],
                  pause: Callable[[float], Any] = time.sleep) -> MirrorComparison:
    """Read both sides' collected inputs and answers until ``options.requests`` pairs or the timeout."""
    deadline = time.monotonic() + options.timeout_s
    live = list(live)
    while True:
        result = compare_now(collect(read, endpoint, live, new, since))
        left = deadline - time.monotonic()
        if result.requests >= options.requests or left <= 0:
            return result
        pause(min(POLL_S, left))
