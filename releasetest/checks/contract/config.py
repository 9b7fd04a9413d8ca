"""The ``[schema]`` manifest table: policy and the sizes of generated and oversized inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, Stage

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


_SCHEMA_KEYS = {
    "policy": "policy = \"azure\" or \"strict\"",
    "max_examples": "max_examples = 40",
    "max_rows": "max_rows = 16",
    "seed": "seed = 12345 (or remove it for the derandomized default)",
    "oversized_kib": "oversized_kib = 10241",
}


def parse_schema_config(table: dict[str, Any], release: Release, stage: Stage) -> SchemaConfig:
    """Parse ``[schema]``; bad values stop the run before deploy with file, key and fix."""
    for key in table:
        if key not in _SCHEMA_KEYS:
            raise ConfigError(release.manifest, f"schema.{key}", "unknown key",
                              "known keys: " + ", ".join(_SCHEMA_KEYS))
    policy = table.get("policy", SchemaConfig.policy)
    if policy not in POLICIES:
        raise ConfigError(release.manifest, "schema.policy", f"unknown policy {policy!r}",
                          _SCHEMA_KEYS["policy"])
    ints: dict[str, int | None] = {}
    for key, low in (("max_examples", 1), ("max_rows", 1), ("oversized_kib", 1), ("seed", 0)):
        value = table.get(key, getattr(SchemaConfig, key))
        if value is None:
            ints[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(release.manifest, f"schema.{key}", f"expected an integer >= {low}, got {value!r}",
                              _SCHEMA_KEYS[key])
        ints[key] = value
    return SchemaConfig(policy=policy, **ints)  # type: ignore[arg-type]

