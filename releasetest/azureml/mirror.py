"""Shadow in production before the traffic shift: the mirror phase of ``promote --target azureml``.

The new deployment gets a share of the endpoint's live traffic mirrored to it (Azure ML answers
callers from the live deployment and discards the mirrored answer). Both deployments' data
collectors write what they answered as JSON lines under
``<endpoint>/<deployment>/model_outputs/<yyyy>/<MM>/<dd>/<HH>/*.jsonl`` (one event per line, with
``data``, ``time`` and ``correlationid``); a mirrored request keeps the live request's correlation id,
so the answers pair up by it. The shift happens only when enough requests were compared and the
share of rows whose label changed (a regression: the mean absolute change) is within the
``[shadow]`` bounds.

Live traffic may be thin when the release ships: ``replay`` sends recorded request bodies to the
endpoint as its clients would, so the mirror window has requests to compare.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.formats import Wire
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, EndpointError

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
    max_changed: float = 0.05
    max_mean_abs_change: float | None = None

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

#: ``read(endpoint, deployment, since)``: a deployment's collected answers by correlation id.
OutputsReader = Callable[[str, str, float], dict[str, Any]]


def _answers(text: str, since: float, into: dict[str, Any]) -> None:
    """Output events of one collector file collected at or after ``since``; a line still being
    written (no newline yet) is left for the next read."""
    for line in text[:text.rfind("\n") + 1].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        cid = event.get("correlationid") if isinstance(event, dict) else None
        when = _stamp(event.get("time")) if cid else None
        if cid and when is not None and when >= since:
            into[str(cid)] = event.get("data")


def folder_outputs(root: Path) -> OutputsReader:
    """The collector's output in a local folder (a mount or a sync of the datastore's
    ``modelDataCollector``, or what the loopback stand-in writes)."""
    def read(endpoint: str, deployment: str, since: float) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for path in sorted((root / endpoint / deployment / "model_outputs").rglob("*.jsonl")):
            _answers(path.read_text(encoding="utf-8"), since, answers)
        return answers

    return read


def datastore_outputs(ml: Any) -> OutputsReader:
    """The collector's output where Azure ML writes it: the workspace's default blob datastore,
    ``modelDataCollector/<endpoint>/<deployment>/model_outputs/<yyyy>/<MM>/<dd>/<HH>/*.jsonl``, read
    with the datastore's account key (azure-storage-blob, which azure-ai-ml installs)."""
    from azure.storage.blob import ContainerClient

    store = ml.datastores.get_default(include_secrets=True)
    key = getattr(getattr(store, "credentials", None), "account_key", None)
    url = f"{store.protocol or 'https'}://{store.account_name}.blob.{store.endpoint}"
    container = ContainerClient(url, store.container_name, credential=key)

    def read(endpoint: str, deployment: str, since: float) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        prefix = f"{DATASTORE_FOLDER}/{endpoint}/{deployment}/model_outputs/"
        for blob in sorted(container.list_blobs(name_starts_with=prefix), key=lambda b: b.name):
            if blob.name.endswith(".jsonl"):
                _answers(container.download_blob(blob.name).readall().decode("utf-8"), since, answers)
        return answers

    return read


@dataclass(frozen=True)
class MirrorComparison:
    """The new deployment's answers against the live one's on the same mirrored requests."""

    wanted: int
    requests: int
    rows: int
    changed: int
    mean_abs_change: float | None
    max_changed: float
    max_mean_abs_change: float | None
    regression: bool
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
    def within(self) -> bool:
        if self.regression:
            bound = self.max_mean_abs_change
            return bound is None or (self.mean_abs_change or 0.0) <= bound
        return self.share_changed <= self.max_changed

    @property
    def ok(self) -> bool:
        return self.enough and self.within and self.problem is None

    def line(self) -> str:
        """One line: rows compared, the change, the bound."""
        if self.regression:
            change = f"mean absolute change {self.mean_abs_change or 0.0:.4g}"
            bound = ("no bound ([shadow] max_mean_abs_change unset)" if self.max_mean_abs_change is None
                     else f"bound max_mean_abs_change {self.max_mean_abs_change:.4g}")
        else:
            change = f"{self.share_changed:.1%} changed label ({self.changed})"
            bound = f"bound max_changed {self.max_changed:.1%}"
        head = f"{self.requests} mirrored request(s), {self.rows} row(s) compared: {change}, {bound}"
        if self.problem:
            return f"{head}; {self.problem}"
        if not self.enough:
            return (f"{head}; wanted {self.wanted} mirrored request(s) within the window"
                    + (f" ({self.replayed} replayed)" if self.replayed else "")
                    + ": mirror more (--mirror-percent), wait longer (--mirror-timeout) or replay recorded "
                      "requests (--mirror-replay)")
        return head

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "rows": self.rows, "changed": self.changed,
                "share_changed": round(self.share_changed, 6), "mean_abs_change": self.mean_abs_change,
                "max_changed": self.max_changed, "max_mean_abs_change": self.max_mean_abs_change,
                "wanted": self.wanted, "replayed": self.replayed, "ok": self.ok}


def compare(live: dict[str, Any], new: dict[str, Any], wire: Wire, regression: bool,
            bounds: tuple[float, float | None], wanted: int, replayed: int = 0) -> MirrorComparison:
    """Row by row on the correlation ids both deployments answered."""
    rows = changed = 0
    total_abs = 0.0
    problem = None
    shared = sorted(set(live) & set(new))
    for cid in shared:
        try:
            before, _ = wire.decode(live[cid])
            after, _ = wire.decode(new[cid])
        except EndpointError as exc:
            problem = problem or f"request {cid}: {exc}"
            continue
        if len(before) != len(after):
            problem = problem or f"request {cid}: {len(before)} live answer(s), {len(after)} new"
            continue
        if regression:
            try:
                diffs = [abs(float(a) - float(b)) for a, b in zip(before, after, strict=True)]
            except (TypeError, ValueError):
                problem = problem or f"request {cid}: a prediction is not a number"
                continue
            total_abs += sum(d if math.isfinite(d) else math.inf for d in diffs)  # NaN counts as unbounded
        else:
            changed += sum(a != b for a, b in zip(before, after, strict=True))
        rows += len(before)
    return MirrorComparison(
        wanted=wanted, requests=len(shared), rows=rows, changed=changed,
        mean_abs_change=(total_abs / rows if rows else None) if regression else None,
        max_changed=bounds[0], max_mean_abs_change=bounds[1], regression=regression, replayed=replayed,
        problem=problem)


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


def mirror_window(options: MirrorOptions, read: OutputsReader, endpoint: str, live: Iterable[str], new: str,
                  since: float, compare_now: Callable[[dict[str, Any], dict[str, Any]], MirrorComparison],
                  pause: Callable[[float], Any] = time.sleep) -> MirrorComparison:
    """Read both sides' collected answers until ``options.requests`` pairs or the timeout."""
    deadline = time.monotonic() + options.timeout_s
    live = list(live)
    while True:
        answered: dict[str, Any] = {}
        for dep in live:
            answered.update(read(endpoint, dep, since))
        result = compare_now(answered, read(endpoint, new, since))
        left = deadline - time.monotonic()
        if result.requests >= options.requests or left <= 0:
            return result
        pause(min(POLL_S, left))
