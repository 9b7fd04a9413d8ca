"""CI-owned floors (``--release-policy PATH``): minimum thresholds and required suites that a
release's own ``release.toml`` can tighten but not loosen.

The people who write a release also write its ``release.toml``; a gate whose bars they set can be
lowered in the same commit as the model (``parity = 0.5``, a threshold removed). The policy is a
TOML file the CI owns, outside the release folder::

    required_suites = ["smoke", "acceptance", "schema", "load"]

    [acceptance]
    parity = 0.999

    [acceptance.thresholds]
    accuracy = { min = 0.9 }
    rmse = { max = 3.0 }

    [load]
    p99_ms = 1000
    max_error_rate = 0.01

A bar the release leaves out is taken from the policy; a looser one is a configuration error that
names both files.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from releasetest.errors import ConfigError
from releasetest.suite_names import SUITES
from releasetest.tables import Key, Table, check

#: The ``[load]`` keys a policy may bound, and whether a release's value must be lower (a bound on
#: latency or errors) or higher (a rate) to be tighter.
LOAD_BOUNDS = {"p95_ms": "max", "p99_ms": "max", "max_error_rate": "max", "min_rps": "min"}

POLICY = Table({
    "required_suites": Key("list", "the suites every gate must run and pass", example=list(SUITES)),
    "acceptance": Table({
        "parity": Key("number", "the lowest [acceptance] parity a release may set", ge=0, le=1, example=0.999),
        "thresholds": Key("mapping", "metric = { min = ... } or { max = ... } lines, the loosest bound a release "
                          "may set", example={"accuracy": {"min": 0.9}}),
    }, "write [acceptance] with parity and [acceptance.thresholds]"),
    "load": Table({name: Key("number", f"the loosest {name} a release may set", gt=0) for name in LOAD_BOUNDS},
                  "write [load] with p99_ms, p95_ms, max_error_rate or min_rps"),
})


@dataclass(frozen=True)
class Policy:
    path: Path
    required_suites: tuple[str, ...]
    parity: float | None
    #: metric -> ("min" | "max", bound)
    thresholds: dict[str, tuple[str, float]]
    load: dict[str, float]
    sha256: str

    def describe(self) -> dict[str, Any]:
        """The verdict's ``policy``: which file set the floors, and its digest."""
        return {"path": str(self.path), "sha256": self.sha256, "required_suites": list(self.required_suites)}


def load_policy(path: Path, release_root: Path) -> Policy:
    """Read and check the policy; one kept inside the release folder is refused (its authors could edit it)."""
    path = path.resolve()
    if path.is_relative_to(release_root.resolve()):
        raise ConfigError(path, None, f"the policy is inside the release folder {release_root}: the release's "
                          "authors could loosen it", "keep the policy where only the CI changes it, outside the "
                          "release folder")
    try:
        raw = path.read_bytes()
        doc = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read the policy: {exc.strerror}", "fix --release-policy") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}", "fix the syntax at that line") from None
    values = check(doc, POLICY, path)
    suites = tuple(values["required_suites"] or ())
    for name in suites:
        if name not in SUITES:
            raise ConfigError(path, "required_suites", f"unknown suite {name!r}", "use: " + ", ".join(SUITES))
    thresholds: dict[str, tuple[str, float]] = {}
    for metric, spec in (values["acceptance"]["thresholds"] or {}).items():
        if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("min", "max")
                and isinstance(next(iter(spec.values())), (int, float))):
            raise ConfigError(path, f"acceptance.thresholds.{metric}", f"expected {{ min = N }} or {{ max = N }}, "
                              f"got {spec!r}", f"e.g. {metric} = {{ min = 0.9 }}")
        kind, bound = next(iter(spec.items()))
        thresholds[metric] = (kind, float(bound))
    load = {k: float(v) for k, v in values["load"].items() if v is not None}
    return Policy(path, suites, values["acceptance"]["parity"], thresholds, load, hashlib.sha256(raw).hexdigest())


def _looser(manifest: Path, policy: Policy, key: str, value: Any, floor: float, kind: str) -> ConfigError:
    word = "at least" if kind == "min" else "at most"
    return ConfigError(manifest, key, f"{value!r} is looser than the CI policy's {floor:g} ({policy.path})",
                       f"set it to {word} {floor:g} in {manifest.name}, or have the CI's owners change {policy.path}")


def _tighter(value: Any, floor: float, kind: str) -> bool:
    return isinstance(value, (int, float)) and (value >= floor if kind == "min" else value <= floor)


def apply_policy(tables: dict[str, dict[str, Any]], policy: Policy, manifest: Path) -> dict[str, dict[str, Any]]:
    """The suite tables with the policy's floors: a bar the release leaves out is the policy's, a
    tighter one stays, a looser one is a :class:`ConfigError` naming both files."""
    out = copy.deepcopy(tables)
    acceptance = out.setdefault("acceptance", {})
    if policy.parity is not None:
        if "parity" not in acceptance:
            acceptance["parity"] = policy.parity
        elif not _tighter(acceptance["parity"], policy.parity, "min"):
            raise _looser(manifest, policy, "acceptance.parity", acceptance["parity"], policy.parity, "min")
    if policy.thresholds:
        thresholds = acceptance.setdefault("thresholds", {})
        for metric, (kind, floor) in policy.thresholds.items():
            spec = thresholds.setdefault(metric, {})
            dotted = f"acceptance.thresholds.{metric}.{kind}"
            if not isinstance(spec, dict):
                continue  # the suite's own parser names the malformed table
            if kind not in spec:
                spec[kind] = floor
            elif not _tighter(spec[kind], floor, kind):
                raise _looser(manifest, policy, dotted, spec[kind], floor, kind)
    load = out.setdefault("load", {})
    for name, floor in policy.load.items():
        kind = LOAD_BOUNDS[name]
        if name not in load:
            load[name] = floor
        elif not _tighter(load[name], floor, kind):
            raise _looser(manifest, policy, f"load.{name}", load[name], floor, kind)
    return out


def check_required(policy: Policy, required: tuple[str, ...], narrowed: bool) -> None:
    """``--release-require`` may add suites to the policy's, not leave one out (the run then requires both)."""
    missing = [s for s in policy.required_suites if s not in required]
    if missing and narrowed:
        raise ConfigError(policy.path, "required_suites", f"--release-require leaves out {', '.join(missing)}, which "
                          "the CI policy requires", "require them too, or have the CI's owners change the policy")
