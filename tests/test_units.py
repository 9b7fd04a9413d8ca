"""The pytest-free modules, tested directly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from releasetest.endpoint.formats import Wire
from releasetest.endpoint.local import cause_from_log
from releasetest.endpoint.url import handle_for_url
from releasetest.errors import ConfigError, EndpointError
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release
from releasetest.settings import SettingError, resolve
from releasetest.verdict.decision import Results, decide, summary_line

from .conftest import EXAMPLE


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__"))
    return dest


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# --- spec ---------------------------------------------------------------------------------------


def test_example_release_parses(example: Path) -> None:
    rel = load_release(example / "release.toml")
    assert [a.name for a in rel.artifacts] == ["model-scaler", "support-vector-classifier"]
    devtest = rel.stage("devtest").deployment
    assert (devtest.cpu, devtest.auth_enabled, devtest.scoring_timeout_ms) == (1.0, False, 60_000)
    prod = rel.stage("production")
    assert prod.promote_to is None and rel.stage("devtest").promote_to == "production"
    assert prod.deployment.scoring_timeout_ms == 1000
    assert prod.deployment.max_concurrent_requests_per_container == 2
    assert prod.deployment.autoscaler == {"autoscaleEnabled": True, "minReplicas": 1, "maxReplicas": 3,
                                          "refreshPeriodInSeconds": 10, "targetUtilization": 70}


def test_release_id_covers_entry_script_and_configs(example: Path) -> None:
    before = load_release(example / "release.toml").release_id
    _edit(example / "score.py", "def init():", "# a comment\ndef init():")
    after_script = load_release(example / "release.toml").release_id
    _edit(example / "AksDeploymentConfig.yml", "maxReplicas: 3", "maxReplicas: 4")
    after_config = load_release(example / "release.toml").release_id
    assert len({before, after_script, after_config}) == 3


@pytest.mark.parametrize(
    ("edit", "key", "fragment"),
    [
        (('version = 1\nfiles = [{ path = "models/model-scaler.pkl"', 'files = [{ path = "models/model-scaler.pkl"'),
         "artifacts[model-scaler].version", "pin the model version"),
        (("models/model-scaler.pkl", "models/missing.pkl"), "artifacts[model-scaler].files[0].path",
         "artifact file not found"),
        (("[stages.devtest]", "[stages.devtest]\nflavour = 1"), "stages.devtest.flavour", "unknown key"),
        (('inference_config = "InferenceConfig.yml"', 'inference_config = "Nope.yml"'), "release.inference_config",
         "YAML file not found"),
        (("golden_rows = 5", "golden_rows = 0"), "data.golden_rows", "expected a whole number >= 1, got 0"),
        (("[release]", "[release\n"), None, "invalid TOML"),
    ],
    ids=["no-version", "missing-file", "unknown-stage-key", "missing-inference-config", "golden-zero", "toml"],
)
def test_manifest_errors_name_file_and_key(example: Path, edit: tuple[str, str], key: str | None,
                                          fragment: str) -> None:
    _edit(example / "release.toml", *edit)
    with pytest.raises(ConfigError) as info:
        load_release(example / "release.toml")
    assert info.value.file == str(example / "release.toml")
    assert info.value.key == key
    assert fragment in str(info.value)
    assert info.value.fix


def test_yaml_objects_are_not_constructed(example: Path) -> None:
    _edit(example / "AciDeploymentConfig.yml", "computeType: ACI",
          "computeType: !!python/object/apply:os.system ['true']")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_release(example / "release.toml")


def test_missing_entry_script(example: Path) -> None:
    (example / "score.py").unlink()
    with pytest.raises(ConfigError) as info:
        load_release(example / "release.toml")
    assert info.value.key == "entryScript" and info.value.file.endswith("InferenceConfig.yml")


# --- data ---------------------------------------------------------------------------------------


def test_golden_rows_cover_every_class(example: Path) -> None:
    holdout = load_holdout(load_release(example / "release.toml").data)
    rows, labels = holdout.golden(5)
    assert labels[:5] == holdout.expected[:5]
    assert set(labels) == {0, 1}, "golden rows must include the first row of each class"
    assert len(rows) == len(labels) and all(len(r) == 7 for r in rows)


def test_holdout_missing_column(example: Path) -> None:
    _edit(example / "release.toml", '"Humidity"', '"Humidty"')
    with pytest.raises(ConfigError, match="Humidty"):
        load_holdout(load_release(example / "release.toml").data)


# --- settings -----------------------------------------------------------------------------------


def test_settings_precedence_cli_env_ini(tmp_path: Path) -> None:
    ini = {"release_stage": "devtest", "release_target": "local", "release_config": "rel/release.toml"}
    env = {"RELEASETEST_STAGE": "production"}
    s = resolve({"stage": None}, env, ini, cwd=tmp_path / "cwd", ini_dir=tmp_path)
    assert s.stage == "production" and s.sources["stage"] == "environment RELEASETEST_STAGE"
    assert s.config == (tmp_path / "rel" / "release.toml").resolve()
    s = resolve({"stage": "devtest"}, env, ini, cwd=tmp_path, ini_dir=tmp_path)
    assert s.stage == "devtest" and s.sources["stage"] == "command line"
    assert s.require is None and s.keep is False and s.port == 0


@pytest.mark.parametrize(
    ("cli", "message"),
    [({"require": "smoke,perf"}, "unknown suite(s) perf"),
     ({"port": "70000"}, "outside 0-65535"), ({"ready_timeout": "-1"}, "must be greater than 0")],
)
def test_settings_refuse_bad_values(tmp_path: Path, cli: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(cli, {}, {}, cwd=tmp_path, ini_dir=tmp_path)


# --- gate ---------------------------------------------------------------------------------------


def _results(**suites: tuple[int, int]) -> Results:
    res = Results()
    for name, (passed, failed) in suites.items():
        for i in range(passed):
            res.add(name, f"{name}::p{i}", "call", "passed")
        for i in range(failed):
            res.add(name, f"{name}::f{i}", "call", "failed")
    return res


def test_gate_promotes_only_a_clean_complete_run() -> None:
    assert decide(_results(smoke=(3, 0)), ["smoke"], None, None)[0] == "PROMOTE"
    decision, reasons = decide(_results(smoke=(3, 1)), ["smoke"], None, None)
    assert decision == "BLOCK" and reasons == ["smoke: 1 failed, 0 errors (smoke::f0)"]
    decision, reasons = decide(_results(smoke=(3, 0)), ["smoke", "acceptance"], None, None)
    assert reasons == ["required suite 'acceptance' did not run (no test of it ran)"]
    skipped = _results(smoke=(3, 0))
    skipped.add("load", "load::t", "setup", "skipped")
    assert decide(skipped, ["smoke", "load"], None, None)[1] == [
        "required suite 'load' did not run (all 1 of its tests skipped)"]
    # a required suite that ran and failed is reported by its failure, not as "did not run"
    decision, reasons = decide(_results(smoke=(3, 0), load=(0, 1)), ["smoke", "load"], None, None)
    assert reasons == ["load: 1 failed, 0 errors (load::f0)"]
    assert decide(_results(smoke=(3, 0)), ["smoke"], None, "KeyboardInterrupt")[0] == "BLOCK"
    assert decide(Results(), [], None, None) == ("BLOCK", ["no tests ran"])


def test_setup_errors_and_skips_are_counted_once() -> None:
    res = Results()
    res.add("smoke", "t::a", "setup", "failed")
    res.add("smoke", "t::a", "teardown", "passed")
    res.add("smoke", "t::b", "setup", "skipped")
    assert (res.suites["smoke"].errors, res.suites["smoke"].skipped, res.suites["smoke"].failing) == (1, 1, ["t::a"])


def test_summary_line() -> None:
    verdict = {"decision": "BLOCK", "reasons": ["deploy failed: x\nlog"], "stage": "devtest",
               "promote_to": "production", "release": {"name": "r", "id": "sha256:" + "a" * 64},
               "suites": {"smoke": {"passed": 1, "failed": 2, "errors": 0, "skipped": 0}}}
    assert summary_line(verdict) == ("releasetest: BLOCK r@aaaaaaaaaaaa stage=devtest -> production: 1 passed, "
                                     "2 failed, 0 errors, 0 skipped | deploy failed: x")


# --- client and targets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [([1, 0], ([1, 0], None)), ({"predictions": [1], "probabilities": [[0.1, 0.9]]}, ([1], [[0.1, 0.9]])),
     ('{"predictions": [0]}', ([0], None))],
)
def test_parse_predictions(body: object, expected: tuple) -> None:
    assert Wire().decode(body) == expected


@pytest.mark.parametrize("body", ["error", {"message": "x"}, 3, {"predictions": 1}])
def test_parse_predictions_refuses(body: object) -> None:
    with pytest.raises(EndpointError):
        Wire().decode(body)


def test_cause_from_log() -> None:
    assert cause_from_log("[x] Connection in use: ('127.0.0.1', 5001)\n", 5001) == \
        "port 5001 is already taken on 127.0.0.1"
    log = ("E azmlinfsrv - Encountered Exception Traceback (most recent call last):\n  File \"score.py\"\n"
           "ValueError: bad scaler\n\nThe above exception...\nUserScriptException: Caught\n")
    assert cause_from_log(log, 1) == "init() raised ValueError: bad scaler"
    assert cause_from_log("ModuleNotFoundError: No module named 'x'\n", 1) == \
        "entry script import failed: ModuleNotFoundError: No module named 'x'"
    assert cause_from_log("all quiet\n", 1) is None


def test_handle_for_url() -> None:
    secret = "s3cr3t-key-value"
    h = handle_for_url("https://ep.westeurope.inference.ml.azure.com/score", secret)
    assert (h.scoring_uri, h.liveness_uri, h.swagger_uri) == (
        "https://ep.westeurope.inference.ml.azure.com/score", "https://ep.westeurope.inference.ml.azure.com/",
        "https://ep.westeurope.inference.ml.azure.com/swagger.json")
    assert h.headers() == {"Authorization": f"Bearer {secret}"}
    assert secret not in str(h.describe()) and secret not in repr(h)
    with pytest.raises(ConfigError):
        handle_for_url("ftp://x", None)


def test_required_suites_default_to_the_builtin_ones(tmp_path: Path) -> None:
    from releasetest.run import ReleaseRun, builtin_suites

    assert "smoke" in builtin_suites()
    run = ReleaseRun(resolve({}, {}, {}, cwd=tmp_path, ini_dir=tmp_path))
    assert run.required == tuple(s for s in builtin_suites() if s not in ("drift", "shadow"))
    run = ReleaseRun(resolve({"require": "smoke"}, {}, {}, cwd=tmp_path, ini_dir=tmp_path))
    assert run.required == ("smoke",)


def test_suite_tables_are_checked_before_deploy(example: Path) -> None:
    from releasetest.checks.registry import parse_all

    text = (example / "release.toml").read_text()
    (example / "release.toml").write_text(text + "\n[smoke]\nrows = 3\n")
    rel = load_release(example / "release.toml")
    with pytest.raises(ConfigError, match="smoke.rows"):
        parse_all(rel, rel.stage("devtest"))
    (example / "release.toml").write_text("smoke = 3\n" + text)
    with pytest.raises(ConfigError, match="expected a table"):
        load_release(example / "release.toml")
