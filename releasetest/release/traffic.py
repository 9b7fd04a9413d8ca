"""Recorded production traffic: the requests a deployment served, read into feature rows.

Three formats, told apart per file:

- the Azure ML data collector's JSON lines as it writes them to blob storage
  (``{endpoint}/{deployment}/model_inputs/{yyyy}/{MM}/{dd}/{HH}/{instance_id}.jsonl``, one
  collected event per line with ``data``, ``time`` and ``correlationid``): custom logging
  (``type`` ``azureml.inference.inputs``, ``data`` a list of records) or payload logging
  (``azureml.inference.request``, ``data`` the request body);
- plain JSON lines, one request body per line;
- a CSV of feature rows (an optional time column).

Where the collector's ``model_outputs`` sit beside ``model_inputs``, each row is paired with the
answer production recorded for it (same ``correlationid``, same position in the request): what
the shadow check compares the production release's answers with today.

The sample keeps at most ``sample`` rows, stratified by time, so a month of traffic is not
judged by its busiest day only. Every problem is one :class:`~releasetest.errors.ConfigError`
naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.errors import ConfigError

#: Rows kept by default (``[production] sample``).
DEFAULT_SAMPLE = 20000
#: Collector event types that carry model outputs (custom logging, payload logging).
OUTPUT_TYPES = ("azureml.inference.outputs", "azureml.inference.response")
#: CSV columns taken as the row's time or correlation id when present.
TIME_COLUMNS = ("time", "timestamp", "Timestamp", "Time")
ID_COLUMNS = ("correlationid", "correlationId", "correlation_id")
#: The hour folder the collector rolls files into (``.../2026/11/30/14/x.jsonl``).
_HOUR_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


@dataclass(frozen=True)
class Traffic:
    """A time-stratified sample of recorded rows, in time order, with where each came from."""

    features: tuple[str, ...]
    #: Feature values, one row per recorded row (float; non-numeric cells are NaN and reported).
    rows: np.ndarray
    #: UTC seconds since the epoch per row, or NaN where the source has no time.
    times: np.ndarray
    correlation_ids: tuple[str | None, ...]
    #: ``file:line`` (or ``file:line#k`` for the k-th row of a request) per row.
    sources: tuple[str, ...]
    #: The answer production recorded for each row (``model_outputs``), or None.
    recorded: tuple[Any, ...]
    #: Rows read before sampling, and the files they came from.
    total: int
    files: tuple[Path, ...]
    formats: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def has_recorded_outputs(self) -> bool:
        return any(r is not None for r in self.recorded)

    def column(self, feature: str) -> np.ndarray:
        return self.rows[:, self.features.index(feature)]


@dataclass
class _Row:
    cells: list[Any]
    time: float
    cid: str | None
    path: Path
    line: int
    #: The row's place in its request (0 for a request of one row).
    position: int
    of: int = 1

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}" + (f"#{self.position + 1}" if self.of > 1 else "")


def _err(path: Path, line: int | None, field: str | None, problem: str, fix: str) -> ConfigError:
    key = ", ".join(p for p in (f"line {line}" if line else None, f"field '{field}'" if field else None) if p)
    return ConfigError(path, key or None, problem, fix)


def _parse_time(value: Any, path: Path, line: int, field: str) -> float:
    if not isinstance(value, str):
        raise _err(path, line, field, f"time is {type(value).__name__}, not an ISO 8601 string",
                   "write times as 2026-11-30T14:05:00Z")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise _err(path, line, field, f"{value!r} is not an ISO 8601 time",
                   "write times as 2026-11-30T14:05:00Z") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def _hour_of(path: Path) -> float:
    """The hour the collector's folder names (``yyyy/MM/dd/HH``), or NaN."""
    m = _HOUR_PATH.search(path.as_posix())
    if not m:
        return math.nan
    y, mo, d, h = (int(g) for g in m.groups())
    try:
        return datetime(y, mo, d, h, tzinfo=timezone.utc).timestamp()
    except ValueError:
        return math.nan


def _cid(event: Mapping[str, Any]) -> str | None:
    for key in ("correlationid", "correlationId", "xrequestid"):
        value = event.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def body_rows(body: Any, features: Sequence[str], key: str = "data") -> list[list[Any]] | None:
    """Feature rows (in ``features`` order) from a request body, or None if it holds none.

    Accepts a list of records, ``{key: rows}``, ``{key: records}``, ``{key: {column: values}}``
    and ``{"input_data": {"columns", "data"}}``; rows given as lists are taken in feature order.
    """
    if isinstance(body, Mapping) and isinstance(body.get("input_data"), Mapping):
        frame = body["input_data"]
        columns, data = frame.get("columns"), frame.get("data")
        if not isinstance(data, list):
            return None
        if isinstance(columns, list) and all(isinstance(r, list) for r in data):
            return [[dict(zip(columns, r, strict=False)).get(f) for f in features] for r in data]
        body = data
    if isinstance(body, Mapping):
        inner: Any = body
        for part in key.split("."):
            inner = inner.get(part) if isinstance(inner, Mapping) else None
        body = inner
    if isinstance(body, Mapping) and body and all(isinstance(v, list) for v in body.values()):
        n = len(next(iter(body.values())))
        if any(len(v) != n for v in body.values()):
            return None
        return [[body[f][i] if f in body else None for f in features] for i in range(n)]
    if not isinstance(body, list) or not body:
        return None
    if all(isinstance(r, Mapping) for r in body):
        return [[r.get(f) for f in features] for r in body]
    if all(isinstance(r, list) for r in body):
        return [list(r) for r in body]
    return None


def _check_width(rows: list[list[Any]], features: Sequence[str], path: Path, line: int, field: str) -> None:
    for r in rows:
        if len(r) != len(features):
            raise _err(path, line, field, f"a row has {len(r)} values, the model takes {len(features)} "
                       f"({', '.join(features)})", "record rows in the model's feature order, or as records")
        if any(v is None for v in r):
            missing = [f for f, v in zip(features, r, strict=True) if v is None]
            raise _err(path, line, field, f"no value for {', '.join(missing)}",
                       "record every feature the model takes, or drop the request")


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                raise _err(path, number, None, f"not JSON ({exc.msg} at column {exc.colno})",
                           "write one JSON object per line (JSON lines)") from None


def _is_event(doc: Any) -> bool:
    return isinstance(doc, Mapping) and "data" in doc and (
        "specversion" in doc or str(doc.get("type", "")).startswith("azureml.inference."))


def _read_json_lines(path: Path, features: Sequence[str], key: str) -> tuple[str, list[_Row]]:
    fmt: str | None = None
    hour = _hour_of(path)
    out: list[_Row] = []
    for number, doc in _json_lines(path):
        kind = "collector" if _is_event(doc) else "jsonl"
        if fmt is None:
            fmt = kind
        elif kind != fmt:
            raise _err(path, number, None, f"a {kind} line in a file whose first line is {fmt}",
                       "keep data collector events and plain request bodies in separate files")
        if fmt == "collector":
            kind_of = str(doc.get("type", ""))
            if kind_of in OUTPUT_TYPES:
                raise _err(path, number, "type", f"{kind_of} is an output event, read as inputs",
                           "point traffic at the model_inputs folder; model_outputs beside it is paired by itself")
            if str(doc.get("datainblob", "")).lower() == "true":
                raise _err(path, number, "data", "the payload was over 256 KB and lives in its own blob",
                           "download that blob (the URL in 'data') and record its body as a JSON line")
            body = doc["data"]
            when = _parse_time(doc["time"], path, number, "time") if "time" in doc else hour
            if math.isnan(when):
                raise _err(path, number, "time", "the event has no time and the file is not in an hour folder",
                           "keep the collector's 'time' field or its yyyy/MM/dd/HH folders")
            cid = _cid(doc)
            field = "data"
        else:
            body, when, cid, field = doc, math.nan, None, None
        rows = body_rows(body, features, key)
        if rows is None:
            raise _err(path, number, field, "holds no feature rows",
                       f"record rows as [[...]] or records under '{key}', a list of records, or input_data")
        _check_width(rows, features, path, number, field or key)
        out.extend(_Row(r, when, cid, path, number, k, len(rows)) for k, r in enumerate(rows))
    return fmt or "jsonl", out


def _read_csv(path: Path, features: Sequence[str]) -> list[_Row]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise _err(path, 1, None, "empty CSV file", "write a header row naming the features, then rows")
        missing = [c for c in features if c not in header]
        if missing:
            raise _err(path, 1, ", ".join(missing), "feature column(s) missing from the header",
                       "columns present: " + ", ".join(header))
        idx = [header.index(c) for c in features]
        ti = next((header.index(c) for c in TIME_COLUMNS if c in header), None)
        ci = next((header.index(c) for c in ID_COLUMNS if c in header), None)
        out = []
        for number, line in enumerate(reader, start=2):
            if not line:
                continue
            if len(line) != len(header):
                raise _err(path, number, None, f"{len(line)} fields, the header has {len(header)}",
                           "quote fields that contain commas, or fix the row")
            when = _parse_time(line[ti], path, number, header[ti]) if ti is not None else math.nan
            cid = (line[ci] or None) if ci is not None else None
            out.append(_Row([line[i] for i in idx], when, cid, path, number, 0))
        return out


def _expand(spec: str | Path, base: Path | None) -> list[Path]:
    text = str(spec)
    pattern = text if Path(text).is_absolute() or base is None else str(base / text)
    if Path(pattern).is_dir():
        found = [p for ext in ("jsonl", "json", "csv") for p in Path(pattern).rglob(f"*.{ext}")
                 if "model_outputs" not in p.parts]
    else:
        found = [Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
    return sorted(set(found))


def outputs_beside(inputs: Sequence[Path]) -> list[Path]:
    """The collector's ``model_outputs`` files next to ``model_inputs`` ones (same folders below)."""
    roots = set()
    for path in inputs:
        parts = path.parts
        if "model_inputs" in parts:
            at = len(parts) - 1 - parts[::-1].index("model_inputs")
            roots.add(Path(*parts[:at], "model_outputs"))
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*.jsonl"))


def read_outputs(paths: Sequence[Path]) -> dict[str, Any]:
    """Recorded answers by correlation id, from collector output events."""
    answers: dict[str, Any] = {}
    for path in paths:
        for number, doc in _json_lines(path):
            if not _is_event(doc):
                raise _err(path, number, None, "not a data collector event",
                           "model_outputs holds the collector's JSON lines, one event per line")
            cid = _cid(doc)
            if cid is None:
                raise _err(path, number, "correlationid", "an output event without a correlation id",
                           "keep the collector's correlationid; outputs are paired with inputs by it")
            answers[cid] = doc["data"]
    return answers


def _paired(answer: Any, position: int) -> Any:
    """The recorded answer for one row of a request: the row's record when the request had
    several (a list of records, or ``{"predictions": [...]}``), else the whole answer."""
    if isinstance(answer, list):
        return answer[position] if position < len(answer) else None
    if isinstance(answer, Mapping):
        lists = {k: v for k, v in answer.items() if isinstance(v, list)}
        if lists:
            return {k: (v[position] if position < len(v) else None) for k, v in lists.items()}
    return answer if position == 0 else None


def stratified_indices(times: np.ndarray, sample: int, seed: int = 0) -> np.ndarray:
    """At most ``sample`` indices, one drawn at random from each of ``sample`` consecutive,
    equally full slices of the rows in time order, returned in time order.

    Every stretch of time holding at least ``total / sample`` rows is represented, in proportion
    to its traffic; rows without a time keep their file order (NaN sorts last).
    """
    order = np.argsort(times, kind="stable")
    total = len(order)
    if total <= sample:
        return order
    edges = np.floor(np.linspace(0, total, sample + 1)).astype(np.int64)
    rng = np.random.default_rng(seed)
    picks = edges[:-1] + np.floor(rng.random(sample) * (edges[1:] - edges[:-1])).astype(np.int64)
    return order[picks]


def _numbers(rows: list[_Row], features: Sequence[str]) -> np.ndarray:
    try:
        return np.array([r.cells for r in rows], dtype=np.float64).reshape(len(rows), len(features))
    except (TypeError, ValueError):
        pass
    out = np.empty((len(rows), len(features)), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, value in enumerate(row.cells):
            if isinstance(value, bool):
                value = float(value)
            try:
                out[i, j] = float(value)
            except (TypeError, ValueError):
                raise _err(row.path, row.line, features[j], f"{value!r} is not a number",
                           "record numeric features as numbers") from None
    return out


def read_traffic(spec: str | Path | Sequence[str | Path], features: Sequence[str], *,
                 sample: int = DEFAULT_SAMPLE, base: Path | None = None, key: str = "data",
                 outputs: str | Path | None = None, seed: int = 0) -> Traffic:
    """Read recorded requests (files, directories or globs, ``**`` allowed; relative to ``base``)
    into a time-stratified sample of at most ``sample`` rows.

    ``outputs`` names the recorded answers; by default the collector's ``model_outputs`` beside
    ``model_inputs`` are used when present.
    """
    if sample < 1:
        raise ConfigError(None, "production.sample", f"{sample} rows", "sample at least 1 row, e.g. sample = 20000")
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    files: list[Path] = []
    for s in specs:
        found = _expand(s, base)
        if not found:
            raise ConfigError(s, None, "no recorded traffic matches this path",
                              "point production.traffic at .jsonl or .csv files, a folder, or a glob such as "
                              "'data/production/**/*.jsonl'")
        files.extend(found)
    rows: list[_Row] = []
    formats = []
    for path in files:
        if path.suffix.lower() == ".csv":
            fmt, got = "csv", _read_csv(path, features)
        else:
            fmt, got = _read_json_lines(path, features, key)
        formats.append(fmt)
        rows.extend(got)
    if not rows:
        raise ConfigError(files[0], None, "no recorded rows in the traffic files",
                          "record at least one request, or point production.traffic elsewhere")
    out_files = _expand(outputs, base) if outputs is not None else outputs_beside(files)
    answers = read_outputs(out_files) if out_files else {}
    times = np.array([r.time for r in rows], dtype=np.float64)
    keep = stratified_indices(times, sample, seed)
    kept = [rows[i] for i in keep]
    return Traffic(
        features=tuple(features),
        rows=_numbers(kept, features),
        times=times[keep],
        correlation_ids=tuple(r.cid for r in kept),
        sources=tuple(r.source for r in kept),
        recorded=tuple(_paired(answers[r.cid], r.position) if r.cid in answers else None for r in kept),
        total=len(rows),
        files=tuple(files),
        formats=tuple(formats),
    )
