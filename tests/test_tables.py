"""The one table checker (releasetest.tables) and every table it guards: one error shape, did-you-mean."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from releasetest.checks.acceptance.config import parse as parse_acceptance
from releasetest.checks.contract.config import parse_schema_config
from releasetest.checks.load.slo import parse_load
from releasetest.checks.smoke import parse_smoke
from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, load_release
from releasetest.tables import Key, Table, check

from .conftest import EXAMPLE


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__"))
    return dest


@pytest.fixture(scope="module")
def release() -> Release:
    return load_release(EXAMPLE / "release.toml")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _manifest_error(example: Path, file: str, old: str, new: str) -> ConfigError:
    _edit(example / file, old, new)
    with pytest.raises(ConfigError) as info:
        load_release(example / "release.toml")
    return info.value


# --- the checker itself --------------------------------------------------------------------------

SCHEMA = Table({
    "name": Key("str", "what to call it", required=True, example="x"),
    "count": Key("int", "how many", default=3, ge=1),
    "share": Key("number", "a fraction", default=0.5, gt=0, le=1),
    "mode": Key("str", "how", default="fast", choices=("fast", "slow")),
    "inner": Table({"depth": Key("int", "how deep", default=2), "flag": Key("bool", "on or off", default=False)}),
})


def test_defaults_fill_every_key_including_nested_tables() -> None:
    assert check({"name": "a"}, SCHEMA, "f.toml", "t.") == {
        "name": "a", "count": 3, "share": 0.5, "mode": "fast", "inner": {"depth": 2, "flag": False}}
    assert check({"name": "a", "inner": {"depth": 7}}, SCHEMA, "f.toml", "t.")["inner"] == {"depth": 7, "flag": False}


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "a", "cuont": 1}, "f.toml: t.cuont: unknown key (fix: did you mean 'count'?)"),
    ({"name": "a", "zzz": 1}, "f.toml: t.zzz: unknown key (fix: remove it or use one of: name, count, share, mode, "
                              "inner)"),
    ({"name": "a", "inner": {"dept": 1}}, "f.toml: t.inner.dept: unknown key (fix: did you mean 'depth'?)"),
    ({}, "f.toml: t.name: missing (fix: what to call it; e.g. name = \"x\")"),
    ({"name": 5}, "f.toml: t.name: expected a string, got int 5 (fix: what to call it"),
    ({"name": "a", "count": True}, "f.toml: t.count: expected a whole number, got bool True (fix: how many; "
                                   "e.g. count = 3)"),
    ({"name": "a", "count": 0}, "f.toml: t.count: expected a whole number >= 1, got 0 (fix: how many; e.g. count = 3)"),
    ({"name": "a", "share": 0}, "f.toml: t.share: expected a number > 0 and <= 1, got 0"),
    ({"name": "a", "share": float("nan")}, "f.toml: t.share: expected a number, got float nan"),
    ({"name": "a", "mode": "slw"}, "f.toml: t.mode: unknown mode 'slw' (fix: did you mean 'slow'?)"),
    ({"name": "a", "inner": 3}, "f.toml: t.inner: expected a table, got int 3 (fix: give it keys: depth, flag)"),
    ({"name": "a", "inner": {"flag": "yes"}}, "f.toml: t.inner.flag: expected true or false, got str 'yes'"),
], ids=["unknown", "unknown-far", "nested-unknown", "missing", "type", "bool-is-not-int", "below", "range", "nan",
        "choice", "nested-type", "nested-bool"])
def test_one_error_shape(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check(data, SCHEMA, "f.toml", "t.")
    assert str(info.value).startswith(message)


def test_yaml_files_get_yaml_words_and_examples() -> None:
    schema = Table({"authEnabled": Key("bool", default=False), "cpu": Key("number", "cores", gt=0, example=1)})
    with pytest.raises(ConfigError, match=r"^c.yml: authEnabled: expected True or False, got str 'maybe'"):
        check({"authEnabled": "maybe"}, schema, "c.yml", syntax="yaml")
    with pytest.raises(ConfigError, match=r"^c.yml: cpu: expected a number > 0, got 0 \(fix: cores; e.g. cpu: 1\)$"):
        check({"cpu": 0}, schema, "c.yml", syntax="yaml")
    assert check({"authEnabled": None}, schema, "c.yml", syntax="yaml")["authEnabled"] is False


# --- every table kind: unknown key with did-you-mean ------------------------------------------

@pytest.mark.parametrize(("file", "old", "new", "key", "close"), [
    ("release.toml", "[release]", "[relase]\nname = 'x'\n[release]", "relase", "release"),
    ("release.toml", 'name = "port-weather"', 'name = "port-weather"\ninference_cfg = "x"', "release.inference_cfg",
     "inference_config"),
    ("release.toml", 'requires_approval = true', 'requires_approval = true\npromote_too = "devtest"',
     "stages.production.promote_too", "promote_to"),
    ("release.toml", "version = 1", "version = 1\nversoin = 2", "artifacts[model-scaler].versoin", "version"),
    ("release.toml", 'files = [{ path = "models/model-scaler.pkl"', 'files = [{ paths = "models/model-scaler.pkl"',
     "artifacts[model-scaler].files[0].paths", "path"),
    ("release.toml", "golden_rows = 5", "golden_row = 5", "data.golden_row", "golden_rows"),
    ("AciDeploymentConfig.yml", "authEnabled: False", "authEnabeld: False", "authEnabeld", "authEnabled"),
    ("AciDeploymentConfig.yml", "  memoryInGB: 1", "  memoryInGb: 1", "containerResourceRequirements.memoryInGb",
     "memoryInGB"),
    ("InferenceConfig.yml", "condaFile: myenv.yml", "condaFiles: myenv.yml", "condaFiles", "condaFile"),
], ids=["top", "release", "stage", "artifact", "artifact-file", "data", "deployment", "deployment-nested",
        "inference"])
def test_manifest_and_v1_files_suggest_the_close_key(example: Path, file: str, old: str, new: str, key: str,
                                                     close: str) -> None:
    err = _manifest_error(example, file, old, new)
    assert err.file == str(example / file) and err.key == key
    assert err.problem == "unknown key" and err.fix == f"did you mean '{close}'?"


SUITES: dict[str, Callable[..., Any]] = {"smoke": parse_smoke, "acceptance": parse_acceptance,
                                         "schema": parse_schema_config, "load": parse_load}


@pytest.mark.parametrize(("suite", "table", "key", "close"), [
    ("smoke", {"memory_request": 5}, "smoke.memory_request", "memory_requests"),
    ("acceptance", {"batchsize": 5}, "acceptance.batchsize", "batch_size"),
    ("acceptance", {"thresholds": {"accuracy": {"min": 0.5, "min_absolute_chang": {"majority": 0.1}}}},
     "acceptance.thresholds.accuracy.min_absolute_chang", "min_absolute_change"),
    ("schema", {"max_example": 5}, "schema.max_example", "max_examples"),
    ("load", {"p99ms": 5}, "load.p99ms", "p99_ms"),
], ids=["smoke", "acceptance", "thresholds", "schema", "load"])
def test_suite_tables_suggest_the_close_key(release: Release, suite: str, table: dict[str, Any], key: str,
                                           close: str) -> None:
    with pytest.raises(ConfigError) as info:
        SUITES[suite](table, release, release.stage("devtest"))
    assert info.value.file == str(release.manifest) and info.value.key == key
    assert info.value.fix == f"did you mean '{close}'?"


# --- wrong type, missing key, nested tables -----------------------------------------------------

@pytest.mark.parametrize(("suite", "table", "message"), [
    ("smoke", {"max_rss_growth_mb": "lots"}, "smoke.max_rss_growth_mb: expected a number, got str 'lots'"),
    ("smoke", {"memory_requests": 0}, "smoke.memory_requests: expected a whole number > 0, got 0"),
    ("acceptance", {"champion_key_env": ""}, "acceptance.champion_key_env: expected a string of length >= 1"),
    ("acceptance", {"thresholds": {}}, "acceptance.thresholds: expected a table with at least one entry"),
    ("acceptance", {"thresholds": {"accuracy": {"min_relative_change": 0.1}}},
     "acceptance.thresholds.accuracy.min_relative_change: expected a table, got float 0.1 (fix: reference = change"),
    ("schema", {"seed": True}, "schema.seed: expected a whole number, got bool True"),
    ("schema", {"policy": "azur"}, "schema.policy: unknown policy 'azur' (fix: did you mean 'azure'?)"),
    ("load", {"capacity": "yes"}, "load.capacity: expected true or false, got str 'yes'"),
    ("load", {"capacity_step": 1}, "load.capacity_step: expected a number > 1, got 1"),
], ids=["smoke-type", "smoke-positive", "acceptance-empty", "thresholds-empty", "thresholds-nested-type",
        "schema-bool", "schema-choice", "load-bool", "load-bound"])
def test_suite_tables_refuse_wrong_values(release: Release, suite: str, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SUITES[suite](table, release, release.stage("devtest"))
    assert str(info.value).startswith(f"{release.manifest}: {message}") and info.value.fix


@pytest.mark.parametrize(("file", "old", "new", "key", "problem"), [
    ("release.toml", 'name = "port-weather"\n', "", "release.name", "missing"),
    ("release.toml", 'label = "Future_weather_condition"\n', "", "data.label", "missing"),
    ("release.toml", 'deployment_config = "AciDeploymentConfig.yml"', "requires_approval = false",
     "stages.devtest.deployment_config", "missing"),
    ("release.toml", "classes = [0, 1]", "classes = [0]", "data.classes", "expected a list of length >= 2, got [0]"),
    ("release.toml", "requires_approval = true ", "requires_approval = 'yes' ", "stages.production.requires_approval",
     "expected true or false, got str 'yes'"),
    ("InferenceConfig.yml", "entryScript: score.py\n", "", "entryScript", "missing"),
    ("AciDeploymentConfig.yml", "  cpu: 1\n", "  cpu: 0\n", "containerResourceRequirements.cpu",
     "expected a number > 0, got 0"),
    ("AciDeploymentConfig.yml", "containerResourceRequirements:\n  cpu: 1\n  memoryInGB: 1\n",
     "containerResourceRequirements: 2\n", "containerResourceRequirements",
     "expected a mapping of keys to values, got int 2"),
], ids=["release-name", "data-label", "stage-config", "classes", "approval-type", "entry-script", "cpu-positive",
        "nested-type"])
def test_manifest_and_v1_files_refuse_missing_and_wrong_values(example: Path, file: str, old: str, new: str,
                                                               key: str, problem: str) -> None:
    err = _manifest_error(example, file, old, new)
    assert err.file == str(example / file) and err.key == key
    assert err.problem == problem and err.fix
