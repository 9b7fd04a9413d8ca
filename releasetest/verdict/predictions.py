"""Per-row holdout predictions of gated releases, kept beside the history so the next gate can
compare with production row by row without deploying it.

One compressed ``.npz`` per (release, holdout) under ``<history dir>/predictions/``, named
``<release id hex>--<holdout digest hex[:16]>.npz``: a classification's predictions as indices
into its classes (``uint8`` up to 256 classes), a regression's as ``float32``, plus a JSON header
(format, release id, holdout digest, row count, task, classes). numpy's own format needs no
pickle to read (``allow_pickle=False``), and zlib shrinks a 200,000-row classification to a few
kilobytes (docs/acceptance.md has the measured figures). Keying by the holdout's digest too
means a release gated on two holdouts keeps both, and a comparison finds the pairable one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.errors import ReleaseTestError

FORMAT = "releasetest-predictions/1"

TASKS = ("classification", "regression")


class PredictionsUnreadable(ReleaseTestError):
    """A stored predictions file is truncated, foreign or from another format."""


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so ``np.int64(3)`` and ``3`` digest alike."""
    return value.item() if isinstance(value, np.generic) else str(value)


def holdout_digest(features: Sequence[str], rows: np.ndarray, labels: Sequence[Any]) -> str:
    """Digest of the holdout's content (feature names, values, labels), so the same rows written
    by another CSV writer still pair, and any changed value, row or label does not."""
    h = hashlib.sha256()
    h.update(json.dumps(list(features)).encode())
    values = np.ascontiguousarray(np.asarray(rows, dtype=np.float64))
    h.update(json.dumps(list(values.shape)).encode())
    h.update(values.tobytes())
    h.update(json.dumps(list(labels), default=_plain).encode())
    return "sha256:" + h.hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


def _index_dtype(n_classes: int) -> type[np.unsignedinteger[Any]]:
    return np.uint8 if n_classes <= 256 else np.uint16 if n_classes <= 65536 else np.uint32


@dataclass(frozen=True, eq=False)
class Predictions:
    """One release's predictions on one holdout, in the stored encoding (compared by identity:
    an array has no single truth value)."""

    release_id: str
    holdout_digest: str
    task: str
    #: Class indices (classification) or float32 values (regression), one per holdout row.
    values: np.ndarray
    #: The classes the indices point into; empty for a regression.
    classes: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")

    @classmethod
    def encode(cls, release_id: str, holdout_digest: str, task: str, predictions: Sequence[Any],
               classes: Sequence[Any] = ()) -> Predictions:
        """Served answers in the stored encoding. A candidate goes through this too before it is
        compared, so a regression's float32 rounding is the same on both sides."""
        if task == "regression":
            return cls(release_id, holdout_digest, task, np.asarray(predictions, dtype=np.float32))
        index = {c: i for i, c in enumerate(classes)}
        try:
            values = np.fromiter((index[p] for p in predictions), dtype=_index_dtype(len(index)),
                                 count=len(predictions))
        except KeyError as exc:
            raise ValueError(f"prediction {exc.args[0]!r} is not one of the classes {list(classes)}") from None
        return cls(release_id, holdout_digest, task, values, tuple(classes))

    def __len__(self) -> int:
        return len(self.values)

    def decoded(self) -> list[Any]:
        """The predictions as the endpoint answered them (a regression's rounded to float32)."""
        if self.task == "regression":
            return self.values.astype(np.float64).tolist()
        return [self.classes[i] for i in self.values.tolist()]

    def header(self) -> dict[str, Any]:
        return {"format": FORMAT, "release_id": self.release_id, "holdout_digest": self.holdout_digest,
                "rows": len(self), "task": self.task, "classes": list(self.classes)}


def predictions_path(history_dir: Path, release_id: str, digest: str) -> Path:
    return Path(history_dir) / "predictions" / f"{_hex(release_id)}--{_hex(digest)[:16]}.npz"


def save_predictions(history_dir: Path, predictions: Predictions) -> Path:
    """Write atomically (temp file and rename), so a reader never sees half a file; writing the
    same release on the same holdout again replaces it with the same content."""
    path = predictions_path(history_dir, predictions.release_id, predictions.holdout_digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            header = json.dumps(predictions.header(), default=_plain)
            np.savez_compressed(f, values=predictions.values, header=np.array(header))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_predictions(path: Path) -> Predictions:
    """One stored file, checked: its header, its row count against the values, its encoding."""
    fix = "(fix: delete it; the next gate of that release writes it again)"
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            values = data["values"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise PredictionsUnreadable(f"{path}: not a readable predictions file: {exc} {fix}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise PredictionsUnreadable(f"{path}: not a {FORMAT} file {fix}")
    if values.ndim != 1 or header.get("rows") != len(values):
        raise PredictionsUnreadable(f"{path}: the header says {header.get('rows')} rows but the file holds "
                                    f"{values.shape} values {fix}")
    classes = tuple(header.get("classes") or ())
    if header.get("task") == "classification" and len(values) and int(values.max()) >= len(classes):
        raise PredictionsUnreadable(f"{path}: a class index is beyond the {len(classes)} classes {fix}")
    try:
        return Predictions(str(header["release_id"]), str(header["holdout_digest"]), str(header["task"]), values,
                           classes)
    except (KeyError, ValueError) as exc:
        raise PredictionsUnreadable(f"{path}: bad header: {exc} {fix}") from None


def stored_predictions(history_dir: Path) -> dict[str, list[Path]]:
    """The kept predictions files by release id (hex, as in their names), for pruning."""
    found: dict[str, list[Path]] = {}
    folder = Path(history_dir) / "predictions"
    for path in sorted(folder.glob("*--*.npz")) if folder.is_dir() else ():
        found.setdefault(path.name.split("--", 1)[0], []).append(path)
    return found


def load_predictions(history_dir: Path, release_id: str, digest: str | None = None) -> Predictions | None:
    """``release_id``'s predictions on the holdout ``digest`` when kept; otherwise (or without a
    digest) those of its most recently written holdout, whose digest then says it cannot pair;
    None when the release has none."""
    if digest is not None:
        exact = predictions_path(history_dir, release_id, digest)
        if exact.is_file():
            return read_predictions(exact)
    folder = Path(history_dir) / "predictions"
    if not folder.is_dir():
        return None
    kept = sorted(folder.glob(f"{_hex(release_id)}--*.npz"), key=lambda p: p.stat().st_mtime_ns)
    return read_predictions(kept[-1]) if kept else None
