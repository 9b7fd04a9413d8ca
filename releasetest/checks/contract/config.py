"""The ``[schema]`` manifest table: policy and the sizes of generated and oversized inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasetest.release.manifest import Release, Stage
from releasetest.tables import Key, Table, check

POLICIES = ("strict", "azure")


@dataclass(frozen=True)
class SchemaConfig:
    """The ``[schema]`` table of release.toml."""

    #: ``azure``: a 500 for bad input (what azmlinfsrv does when inference-schema or run() rejects
    #: it) is a contract defect that warns; ``strict``: client errors must be answered 4xx.
    policy: str = "azure"
    #: Generated valid requests per run (hypothesis ``max_examples``).
    max_examples: int = 40
    #: Largest batch a generated request carries.
    max_rows: int = 16
    #: None: derandomized (the same examples on every run); an int: a seeded random run.
    seed: int | None = None
    #: Size of the oversized-body probe, in KiB of valid rows: by default just over the local
    #: endpoint's 10 MB cap (``--release-max-body-mb``), so it is refused from its declared length.
    oversized_kib: int = 10241


SCHEMA = Table({
    "policy": Key("str", "azure: a 500 for bad input warns; strict: bad input must be answered 4xx",
                  default=SchemaConfig.policy, choices=POLICIES),
    "max_examples": Key("int", "generated valid requests per run", default=SchemaConfig.max_examples, ge=1),
    "max_rows": Key("int", "largest batch a generated request carries", default=SchemaConfig.max_rows, ge=1),
    "seed": Key("int", "seeds a random run (remove it for the derandomized default)", ge=0, example=12345),
    "oversized_kib": Key("int", "size of the oversized-body probe, in KiB of valid rows",
                         default=SchemaConfig.oversized_kib, ge=1),
})


def parse_schema_config(table: dict[str, Any], release: Release, stage: Stage) -> SchemaConfig:
    """Parse ``[schema]``; bad values stop the run before deploy with file, key and fix."""
    return SchemaConfig(**check(table, SCHEMA, release.manifest, "schema."))
