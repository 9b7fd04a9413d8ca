"""The ``[acceptance]`` manifest table: batch scoring settings, parity, the champion and thresholds.

Thresholds follow MLflow's ``MetricThreshold``: per metric an absolute ``min`` or ``max``, and
``min_absolute_change`` / ``min_relative_change`` against named references, in the direction the
metric improves (errors such as RMSE must go down, scores such as accuracy up). A negative change
is a tolerance (the champion may be beaten by at most that much); a positive one is a margin the
candidate must win by."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.checks.acceptance import paired
from releasetest.checks.acceptance.paired import ComparisonSettings
from releasetest.checks.tasks import Task, task_for
from releasetest.endpoint.url import handle_for_url
from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, Stage, load_release
from releasetest.tables import Key, Table, check, check_table

KINDS = ("min", "max", "min_absolute_change", "min_relative_change")


#: Batch size and concurrency measured on the example (docs/acceptance.md): big enough that the
#: per-request cost is small, two in flight so client-side JSON overlaps server-side scoring.
DEFAULT_BATCH_SIZE = 500


DEFAULT_CONCURRENCY = 2


DEFAULT_PARITY = 0.999


DEFAULT_CHAMPION_KEY_ENV = "RELEASETEST_CHAMPION_KEY"


ACCEPTANCE = Table({
    "batch_size": Key("int", "holdout rows per scoring request", default=DEFAULT_BATCH_SIZE, ge=1),
    "concurrency": Key("int", "scoring requests in flight at once", default=DEFAULT_CONCURRENCY, ge=1),
    "parity": Key("number", "share of holdout answers that must match data.expected_predictions",
                  default=DEFAULT_PARITY, gt=0, le=1),
    "persistence_feature": Key("str", "the feature holding the current value of the label"),
    "champion": Key("str", "the production release's manifest path, or its scoring URL", ge=1),
    "champion_key_env": Key("str", "the environment variable holding the champion's key",
                            default=DEFAULT_CHAMPION_KEY_ENV, ge=1),
    "thresholds": Key("mapping", "metric = { min = ..., min_absolute_change = { reference = change } } lines"),
    **paired.KEYS,
})


def _thresholds_schema(task: Task) -> Table:
    """``[acceptance.thresholds]``: metric -> kind -> (a bound, or reference -> change)."""
    metric, kind, margin, ref = task.default_threshold
    example = f"{metric} = {{ {kind} = {{ {ref} = {margin:g} }} }}"
    change = Table({r: Key("number", "a number; negative means a tolerance") for r in (*task.baselines, "champion")},
                   f"reference = change, e.g. {{ {ref} = 0.05, champion = -0.01 }}", noun="reference",
                   nonempty=True)
    spec = Table({"min": Key("number", "the lowest value that passes", example=0.8),
                  "max": Key("number", "the highest value that passes", example=50.0),
                  "min_absolute_change": change, "min_relative_change": change},
                 f"e.g. {example}", noun="threshold kind", nonempty=True)
    return Table({m: spec for m in task.metric_names()}, f"write [acceptance.thresholds] with lines like {example}",
                 noun="metric", nonempty=True)


@dataclass(frozen=True)
class Threshold:
    metric: str
    kind: str  # one of KINDS
    margin: float  # the configured number: a minimum, or a change
    reference: str | None = None  # None for kind "min"


@dataclass(frozen=True)
class Champion:
    """The release in production: its manifest (deployed side by side) or its URL."""

    source: str
    release: Release | None = None
    url: str | None = None
    key_env: str = DEFAULT_CHAMPION_KEY_ENV


def default_thresholds(task: Task) -> tuple[Threshold, ...]:
    """Without thresholds in the manifest a model must at least beat its task's simplest constant
    (always the majority class; always the mean)."""
    return (Threshold(*task.default_threshold),)


@dataclass(frozen=True)
class AcceptanceConfig:
    task: Task
    thresholds: tuple[Threshold, ...]
    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    parity: float = DEFAULT_PARITY
    persistence_feature: str | None = None
    champion: Champion | None = None
    #: Without a champion: when a paired regression against production (from history) BLOCKs.
    production: ComparisonSettings = ComparisonSettings()
    #: Why no threshold compares against a naive baseline (and how to add one), else None.
    no_baseline: str | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the run says once (verdict warnings) about this configuration."""
        return (self.no_baseline,) if self.no_baseline else ()

    def describe(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "concurrency": self.concurrency, "parity": self.parity,
                "persistence_feature": self.persistence_feature,
                "champion": self.champion.source if self.champion else None,
                "production_p_value": self.production.p_value, "production_tolerance": self.production.tolerance}


def dropped_baseline(thresholds: tuple[Threshold, ...], task: Task) -> str | None:
    """Own thresholds replace the default check against the task's simplest constant; when none of
    them compares with a naive baseline, what is no longer checked and the line that keeps it."""
    if any(t.reference in task.baselines for t in thresholds):
        return None
    metric, kind, margin, ref = task.default_threshold
    return (f"[acceptance.thresholds] compares with no naive baseline, so the default check ({metric} must "
            f"beat the {ref} baseline by {margin:g}) is not made; to keep it, add {kind} = {{ {ref} = {margin:g} }} "
            f"to {metric} in [acceptance.thresholds]")


def _parse_thresholds(raw: dict[str, Any], task: Task, file: Path) -> tuple[Threshold, ...]:
    check_table(raw, _thresholds_schema(task), file, "acceptance.thresholds")
    out: list[Threshold] = []
    for metric, spec in raw.items():
        for kind, value in spec.items():
            if kind in ("min", "max"):
                out.append(Threshold(metric, kind, float(value)))
            else:
                out.extend(Threshold(metric, kind, float(change), ref) for ref, change in value.items())
    return tuple(out)


def _parse_champion(source: str | None, key_env: str, release: Release, stage: Stage, file: Path) -> Champion | None:
    if source is None:
        return None
    if source.startswith(("http://", "https://")):
        handle_for_url(source, None)  # refuses a malformed URL now, before deploy
        return Champion(source, url=source, key_env=key_env)
    path = (release.root / source).resolve()
    if path == release.manifest.resolve():
        raise ConfigError(file, "acceptance.champion", "points at the candidate's own manifest",
                          "name the manifest of the release now in production")
    try:
        champ = load_release(path)
    except ConfigError as exc:
        raise ConfigError(file, "acceptance.champion", f"the champion release is not valid: {exc}",
                          "fix the champion's manifest or point at another one") from None
    assert release.data is not None
    if champ.data is None or champ.data.expected_predictions is None:
        raise ConfigError(path, "data", "the champion needs [data] with expected_predictions",
                          "they are its readiness check when deployed side by side")
    if champ.data.task != release.data.task:
        raise ConfigError(file, "acceptance.champion", f"the champion is a {champ.data.task}, the candidate a "
                          f"{release.data.task}", "a champion is compared on the same task")
    if tuple(champ.data.classes) != tuple(release.data.classes):
        raise ConfigError(file, "acceptance.champion",
                          f"champion classes {list(champ.data.classes)} differ from {list(release.data.classes)}",
                          "a champion is compared on the same classes")
    champ.stage(stage.name)  # the champion is deployed with its own config for the same stage
    return Champion(source, release=champ, key_env=key_env)


def parse(table: dict[str, Any], release: Release, stage: Stage) -> AcceptanceConfig:
    """Check the ``[acceptance]`` table; a bad value is a ConfigError naming the key and the fix."""
    file = release.manifest
    values = check(table, ACCEPTANCE, file, "acceptance.")
    assert release.data is not None
    feature = values["persistence_feature"]
    if feature is not None and feature not in release.data.features:
        raise ConfigError(file, "acceptance.persistence_feature", f"{feature!r} is not one of data.features",
                          "name the feature holding the current value of the label, e.g. "
                          + ", ".join(release.data.features))
    task = task_for(release.data)
    thresholds = (_parse_thresholds(values["thresholds"], task, file) if values["thresholds"] is not None
                  else default_thresholds(task))
    champion = _parse_champion(values["champion"], values["champion_key_env"], release, stage, file)
    used = {t.reference for t in thresholds}
    if "persistence" in used and feature is None:
        raise ConfigError(file, "acceptance.thresholds", "a threshold compares against 'persistence' but "
                          "acceptance.persistence_feature is not set", "name the feature persistence repeats")
    if "champion" in used and champion is None:
        raise ConfigError(file, "acceptance.thresholds", "a threshold compares against 'champion' but "
                          "acceptance.champion is not set", "set champion = the production manifest or URL")
    if champion is not None and "champion" not in used:
        raise ConfigError(file, "acceptance.champion", "is set, but no threshold compares against it",
                          "add e.g. min_absolute_change = { champion = -0.01 } to a metric's threshold")
    no_baseline = dropped_baseline(thresholds, task)
    return AcceptanceConfig(task=task, batch_size=values["batch_size"], concurrency=values["concurrency"],
                            parity=float(values["parity"]), persistence_feature=feature, champion=champion,
                            thresholds=thresholds,
                            production=ComparisonSettings(float(values["production_p_value"]),
                                                          float(values["production_tolerance"])),
                            no_baseline=no_baseline)

