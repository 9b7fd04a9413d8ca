"""``promote --target url``: the endpoint at the URL must serve the tested release before anything is recorded.

The endpoints are real azmlinfsrv servers of the example release (the right one, and one whose
``run()`` flips every label) on 127.0.0.1, and a port where nothing listens.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from releasetest.cli import main
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.local import LocalEndpoint
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release
from releasetest.verdict import signing

from .conftest import EXAMPLE, ReferenceRun
from .recorded_target import RecordedTarget

KEY = "production-key-for-tests-0123456789"
RETURN = '    return {"predictions": label.tolist(), "probabilities": proba.tolist()}'


def _serve(release_dir: Path, log: Path, flipped: bool = False) -> Iterator[EndpointHandle]:
    """The release's production stage under azmlinfsrv, requiring KEY, as another tool would have deployed it."""
    release = load_release(release_dir / "release.toml")
    assert release.data is not None
    rows, labels = load_holdout(release.data).golden(5)
    golden = (rows, [1 - x for x in labels] if flipped else labels)
    endpoint = LocalEndpoint(release, release.stage("production"), golden, log_path=log, key=KEY, require_key=True)
    try:
        yield endpoint.deploy()
    finally:
        endpoint.teardown()


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointHandle]:
    yield from _serve(EXAMPLE, tmp_path_factory.mktemp("prod") / "server.log")


@pytest.fixture(scope="module")
def wrong_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointHandle]:
    """Another release behind the URL: the example with every label flipped."""
    root = tmp_path_factory.mktemp("wrong")
    shutil.copytree(EXAMPLE, root / "release", ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    score = root / "release" / "score.py"
    assert RETURN in score.read_text()
    score.write_text(score.read_text().replace(RETURN, RETURN.replace("label.tolist()", "(1 - label).tolist()")))
    yield from _serve(root / "release", root / "server.log", flipped=True)


@pytest.fixture
def approved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             reference_run: ReferenceRun) -> list[str]:
    """An approved PROMOTE verdict of the example's devtest stage (the shared reference run's, copied);
    returns the promote command's arguments."""
    for name in (signing.ENV_SIGNING_KEY, signing.ENV_VERIFY_KEY, signing.ENV_HMAC_SECRET, signing.ENV_APPROVAL_KEY):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.setenv("RELEASETEST_ENDPOINT_KEY", KEY)
    out = tmp_path / "out"
    out.mkdir()
    path = out / "verdict.json"
    shutil.copyfile(reference_run.verdict_path, path)
    assert json.loads(path.read_text())["decision"] == "PROMOTE"
    store = str(out / "history")
    assert main(["approve", str(path), "--by", "alice", "--store", store]) == 0
    capsys.readouterr()
    return ["promote", "--from", "devtest", "--to", "production", "--verdict", str(path), "--store", store,
            "--target", "url"]


def _promotions(args: list[str]) -> list[Path]:
    return sorted((Path(args[args.index("--store") + 1]) / "promotions").glob("*.json"))


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 3, (out, err)
    assert err.startswith("releasetest: refused: ") and err.count("\n") == 1, err
    assert not _promotions(args), "a refused promotion recorded something"
    return err


def test_endpoint_serving_the_release_is_verified_and_recorded(
        approved: list[str], production: EndpointHandle, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*approved, "--url", production.scoring_uri, "--by", "ci"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"devtest -> production (url, AksDeploymentConfig.yml): {production.scoring_uri}" in out
    assert "answered liveness and the golden rows" in out
    [record] = [json.loads(p.read_text()) for p in _promotions(approved)]
    assert record["endpoint"]["scoring_uri"] == production.scoring_uri and record["endpoint"]["auth"] == "key"
    assert record["endpoint"]["verified"] == {"liveness": 200, "golden_rows": 6, "headers": {},
                                              "holdout": {"rows": 3858, "agreement": 1.0, "required": 0.999}}
    assert KEY not in json.dumps(record)


def test_the_key_comes_from_the_environment(approved: list[str], production: EndpointHandle,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RELEASETEST_ENDPOINT_KEY")
    err = _refused([*approved, "--url", production.scoring_uri], capsys)
    assert f"{production.scoring_uri} does not serve port-weather@" in err
    assert "answered 401" in err and "missing or invalid key" in err
    monkeypatch.setenv("PROD_KEY", KEY)
    assert main([*approved, "--url", production.scoring_uri, "--key-env", "PROD_KEY"]) == 0


def test_expected_headers_are_checked(approved: list[str], production: EndpointHandle,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused([*approved, "--url", production.scoring_uri, "--expect-header", "azureml-model-deployment=blue"],
                   capsys)
    assert "the golden answer has no azureml-model-deployment header (expected 'blue')" in err
    err = _refused([*approved, "--url", production.scoring_uri, "--expect-header", "x-ms-server-version=v0"], capsys)
    served = f"azmlinfsrv/{version('azureml-inference-server-http')}"
    assert f"the golden answer's x-ms-server-version header is '{served}', expected 'v0'" in err
    assert main([*approved, "--url", production.scoring_uri, "--expect-header", f"X-MS-Server-Version={served}"]) == 0
    [record] = [json.loads(p.read_text()) for p in _promotions(approved)]
    assert record["endpoint"]["verified"]["headers"] == {"x-ms-server-version": served}


def test_wrong_release_behind_the_url_is_refused(approved: list[str], wrong_release: EndpointHandle,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused([*approved, "--url", wrong_release.scoring_uri], capsys)
    assert f"{wrong_release.scoring_uri} does not serve port-weather@" in err
    assert ("6 of 6 golden rows differ from the training-time predictions (exactly): "
            "row 1: got 0, recorded 1") in err


def test_nothing_listening_is_refused_naming_the_url(approved: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port that was free a moment ago; nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/score"
    err = _refused([*approved, "--url", url, "--ready-timeout", "120"], capsys)
    assert f"{url} does not serve port-weather@" in err
    assert f"nothing answers at http://127.0.0.1:{port}/ (Connection refused) for 3 s" in err


def test_retrained_model_behind_the_url_is_refused(approved: list[str], recorded: RecordedTarget,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The golden rows answer as recorded, one holdout row in ten does not: another model."""
    release = load_release(EXAMPLE / "release.toml")
    assert release.data is not None
    holdout = load_holdout(release.data)
    golden = {tuple(row) for row in holdout.golden(release.data.golden_rows)[0]}
    others = [tuple(float(v) for v in row) for row in holdout.rows.tolist() if tuple(row) not in golden]
    recorded.retrained = frozenset(others[::10])
    url = f"{recorded.url}/score"
    err = _refused([*approved, "--url", url], capsys)
    assert f"{url} does not serve port-weather@" in err
    assert "its answers agree with the training-time predictions on 0.8999 of the 3858 holdout rows, the gate " \
        "requires 0.999 (386 rows differ, first: row 5 got 0, recorded 1): another model answers there" in err

    recorded.retrained = frozenset()
    assert main([*approved, "--url", url]) == 0
    assert "and 1.0000 of 3858 holdout rows as recorded (parity 0.999)" in capsys.readouterr().out
