"""The ``[production]`` manifest table: where the recorded production traffic is and how much of it
the gate reads. The drift and shadow suites both judge this one sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.tables import Key, Table, check_table

DEFAULT_SAMPLE = 20000

PRODUCTION = Table({
    "traffic": Key("str", "the recorded requests: data collector model_inputs JSON lines, JSON lines of request "
                   "bodies or a CSV of feature rows (a file, folder or glob relative to the manifest)", ge=1,
                   example="data/production/**/model_inputs/**/*.jsonl"),
    "sample": Key("int", "most recorded rows the gate reads, stratified by time", default=DEFAULT_SAMPLE, ge=1),
    "outputs": Key("str", "production's recorded answers (default: the collector's model_outputs beside "
                   "model_inputs, when present)", ge=1),
    "key": Key("str", "the body key holding the rows in plain JSON-lines bodies", default="data", ge=1),
}, 'write [production] traffic = "data/production/**/model_inputs/**/*.jsonl"')


@dataclass(frozen=True)
class ProductionSpec:
    """Recorded production traffic: a path, folder or glob (absolute, or relative to the manifest)."""

    traffic: str
    sample: int = DEFAULT_SAMPLE
    outputs: str | None = None
    key: str = "data"
    #: Where ``traffic`` came from: the manifest or ``--release-traffic``.
    origin: str = "[production] traffic"


def parse_production(table: Any, manifest: Path, traffic: Path | str | None = None) -> ProductionSpec | None:
    """``[production]``, checked; ``traffic`` (``--release-traffic``) replaces the manifest's path.
    None when neither names any traffic."""
    values = check_table(table if table is not None else {}, PRODUCTION, manifest, "production")
    if traffic is not None:
        return ProductionSpec(str(traffic), values["sample"], values["outputs"], values["key"], "--release-traffic")
    if values["traffic"] is None:
        return None
    return ProductionSpec(values["traffic"], values["sample"], values["outputs"], values["key"])
