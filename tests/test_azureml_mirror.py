"""``releasetest promote --target azureml`` with a mirror phase: shadow in production before the shift.

As in tests/test_azureml_promote.py, ``promote`` runs in a subprocess with the real azure-ai-ml
``MLClient`` against the loopback ARM stand-in, whose endpoint front end routes to real local
endpoints (azmlinfsrv). The stand-in mirrors its share of the live requests to the new deployment
and writes both deployments' data collector output to the default datastore (promote reads it
there, through the datastore's account key and the blob API) and to a folder (``--mirror-collector``). The live
traffic is promote's own ``--mirror-replay``: recorded request bodies (holdout rows the golden
check never sends), so the window's requests are known and bounded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from releasetest.endpoint.local import LocalEndpoint
from releasetest.errors import DeployError
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release

from .conftest import ReleaseProject
from .recorded_target import RecordedTarget
from .test_azureml_promote import EP, _approved_verdict, _promote

pytest.importorskip("azure.ai.ml", reason="the azureml extra is not installed")
standin = pytest.importorskip("tests.azure_standin", reason="trustme is not installed")

#: Mirrored requests compared per promotion; at 50 % the replay sends twice as many.
COMPARED = 8
ANSWER = '    return {"predictions": label.tolist(), "probabilities": proba.tolist()}\n'


def _flipping(source: Path, golden_rows: list[list[float]]) -> None:
    """An entry script that answers the golden rows honestly and flips every other label: it passes
    every readiness check and disagrees with production on real traffic."""
    script = source / "score.py"
    text = script.read_text()
    assert ANSWER in text
    honest = repr([[float(v) for v in row] for row in golden_rows])
    script.write_text(text.replace(ANSWER, (
        f"    honest = {{tuple(r) for r in {honest}}}\n"
        "    rows = np.asarray(data, dtype=np.float64).tolist()\n"
        "    flipped = [p if tuple(r) in honest else 1 - p for r, p in zip(rows, label.tolist())]\n"
        '    return {"predictions": flipped, "probabilities": proba.tolist()}\n'), 1))


@pytest.fixture
def arm(release_project: ReleaseProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The routing, mirroring, collecting stand-in; ``arm.flip`` names release ids served by a
    label-flipping copy of their entry script on the cluster."""
    release_dir = release_project.release
    (release_dir / "aml_config").mkdir()
    (release_dir / "aml_config" / "config.json").write_text(json.dumps(standin.WORKSPACE_CONFIG))
    flip: set[str] = set()

    def serve(endpoint: str, body: dict[str, Any]) -> Any:
        source = release_dir
        release = load_release(source / "release.toml")
        assert release.data is not None
        golden = load_holdout(release.data).golden(release.data.golden_rows)
        if body.get("tags", {}).get("release_id") in flip:
            source = tmp_path / "flipping-release"
            shutil.copytree(release_dir, source, dirs_exist_ok=True)
            _flipping(source, golden[0])
            release = load_release(source / "release.toml")
        local = LocalEndpoint(release, release.stage("devtest"), golden, require_key=True, key=f"primary-{endpoint}",
                              log_path=tmp_path / f"serve-{endpoint}-{len(arm_server.state.served)}.log")
        try:
            handle = local.deploy()
        except DeployError as exc:
            return standin.Served(None, exc.log_tail or exc.cause, local.teardown)
        return standin.Served(handle.scoring_uri, local.log_tail() or "", local.teardown)

    with standin.AzureStandin(serve=serve, route=True, collector=tmp_path / "modelDataCollector") as arm_server:
        for key, value in arm_server.client_env(tmp_path / "azure-env").items():
            monkeypatch.setenv(key, value)
        arm_server.flip = flip
        yield arm_server


def _replay_file(release_project: ReleaseProject, path: Path) -> Path:
    """Request bodies of one holdout row each, from the end of the holdout (never golden rows)."""
    release = load_release(release_project.release / "release.toml")
    assert release.data is not None
    holdout = load_holdout(release.data)
    golden = {tuple(map(float, r)) for r in holdout.golden(release.data.golden_rows)[0]}
    rows = [list(map(float, r)) for r in holdout.rows[-3 * COMPARED:]]
    assert not golden & {tuple(r) for r in rows}
    path.write_text("".join(json.dumps({"data": [r]}) + "\n" for r in rows))
    return path


def _collected(arm: Any, deployment: str) -> set[str]:
    """Correlation ids of the answers the deployment's data collector wrote."""
    folder = arm.collector / EP / deployment / "model_outputs"
    return {json.loads(line)["correlationid"] for p in folder.rglob("*.jsonl") for line in p.read_text().splitlines()}


def _endpoint_puts(arm: Any, start: int) -> list[dict[str, Any]]:
    """The properties of each endpoint update since ``start``, in order."""
    return [r.body["properties"] for r in arm.state.requests[start:]
            if r.method == "PUT" and r.path.endswith(f"/onlineEndpoints/{EP}")]


@pytest.mark.long
def test_mirror_phase_stops_a_disagreeing_deployment_and_shifts_an_agreeing_one(
        release_project: ReleaseProject, arm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        recorded: RecordedTarget) -> None:
    store = str(release_project.root / "history")
    replay = _replay_file(release_project, tmp_path / "recorded-requests.jsonl")
    promote = ("promote", "--from", "devtest", "--to", "production", "--target", "azureml", "--store", store,
               "--mirror-percent", "50", "--mirror-requests", str(COMPARED), "--mirror-timeout", "60",
               "--mirror-replay", str(replay))

    # (1) The first promotion has nothing live to mirror against: it says so and shifts.
    first, blue = _approved_verdict(release_project, capsys, store, "first", recorded)
    code, out, err = _promote(*promote, "--verdict", first)
    assert code == 0, err
    assert "nothing to mirror against, mirror phase skipped" in err
    assert arm.state.endpoints[EP]["properties"]["traffic"] == {blue: 100}

    # (2) Green answers the golden rows honestly and flips every other label: stopped before the shift.
    release_project.edit("score.py", "def init():\n", "# release 2\ndef init():\n")
    second, green = _approved_verdict(release_project, capsys, store, "second", recorded)
    arm.flip.add(load_release(release_project.release / "release.toml").release_id)
    start = len(arm.state.requests)
    code, out, err = _promote(*promote, "--verdict", second, "--mirror-collector", str(arm.collector))
    assert code == 2, out + err
    assert (f"mirror of {green} against {blue} stopped the promotion before the shift: {COMPARED} mirrored "
            f"request(s), {COMPARED} row(s) compared: 100.0% changed label ({COMPARED}), bound max_changed 5.0%; "
            "mirror cleared") in err
    puts = _endpoint_puts(arm, start)
    assert [p.get("mirrorTraffic") or {} for p in puts] == [{green: 50}, {}]
    assert all(p["traffic"] == {blue: 100} for p in puts), "no traffic moved"
    assert arm.state.endpoints[EP]["properties"]["traffic"] == {blue: 100}
    assert not arm.state.endpoints[EP]["properties"].get("mirrorTraffic"), "the mirror is cleared"
    assert (EP, green) not in arm.state.deployments, "the stopped deployment is removed"
    callers = [r for r in arm.state.requests[start:] if r.path == f"/endpoints/{EP}/score"
               and "azureml-model-deployment" not in r.headers]
    assert len(callers) == 2 * COMPARED, "the replay: twice the compared requests at 50 %"
    assert len(_collected(arm, blue) & _collected(arm, green)) == COMPARED, "copies keep the live correlation id"
    assert len(list(Path(store, "promotions").glob("*.json"))) == 1

    # (3) An agreeing release, its answers read from the datastore: mirrored, compared, cleared, then all traffic.
    release_project.edit("score.py", "# release 2\n", "# release 3\n")
    third, green3 = _approved_verdict(release_project, capsys, store, "third", recorded)
    start = len(arm.state.requests)
    code, out, err = _promote(*promote, "--verdict", third)
    assert code == 0, err
    assert f"in the default datastore's modelDataCollector/{EP}" in err
    assert [r for r in arm.requests("GET", r"^/azureml-blobstore$") if "model_outputs" in str(r.query)]
    assert (f"mirror: {COMPARED} request(s), {COMPARED} row(s) compared before the shift, 0.0% changed label "
            "(bound 5.0%)") in out
    puts = _endpoint_puts(arm, start)
    assert [(p["traffic"], p.get("mirrorTraffic") or {}) for p in puts] == [
        ({blue: 100}, {green3: 50}), ({blue: 100}, {}), ({green3: 100}, {})], \
        "mirrored, the mirror cleared, then the shift"
    assert arm.state.endpoints[EP]["properties"]["traffic"] == {green3: 100}
    records = [json.loads(p.read_text()) for p in Path(store, "promotions").glob("*.json")]
    [mirrored] = [r["endpoint"]["mirror"] for r in records if r["endpoint"]["deployment"] == green3]
    assert mirrored["rows"] == COMPARED and mirrored["changed"] == 0 and mirrored["ok"] is True


def test_comparison_counts_rows_by_correlation_id_and_names_the_bound() -> None:
    """In-process: the comparison alone (no endpoint involved), both kinds and a short window."""
    from releasetest.azureml.mirror import compare
    from releasetest.endpoint.formats import Wire

    wire = Wire.from_dict({"input": "rows", "key": "data", "predictions": "predictions"})
    live = {"a": {"predictions": [1, 0]}, "b": {"predictions": [1]}, "only-live": {"predictions": [0]}}
    new = {"a": {"predictions": [1, 1]}, "b": {"predictions": [1]}, "only-new": {"predictions": [1]}}
    labels = compare(live, new, wire, regression=False, bounds=(0.5, None), wanted=2)
    assert (labels.requests, labels.rows, labels.changed, labels.ok) == (2, 3, 1, True)
    assert labels.line() == "2 mirrored request(s), 3 row(s) compared: 33.3% changed label (1), bound max_changed 50.0%"
    tight = compare(live, new, wire, regression=False, bounds=(0.02, None), wanted=2)
    assert not tight.ok and "bound max_changed 2.0%" in tight.line()
    short = compare(live, new, wire, regression=False, bounds=(0.5, None), wanted=5, replayed=10)
    assert not short.ok and "wanted 5 mirrored request(s) within the window (10 replayed)" in short.line()
    values = compare({"a": {"predictions": [1.0, 2.0]}}, {"a": {"predictions": [1.5, 1.0]}}, wire,
                     regression=True, bounds=(0.02, 0.5), wanted=1)
    assert values.mean_abs_change == 0.75 and not values.ok
    assert "mean absolute change 0.75, bound max_mean_abs_change 0.5" in values.line()


@pytest.mark.parametrize(("args", "message"), [
    (("--target", "local", "--mirror-percent", "10"), "--mirror-percent needs --target azureml"),
    (("--target", "azureml", "--mirror-percent", "60"), "60 is above Azure ML's limit"),
    (("--target", "azureml", "--mirror-percent", "10", "--mirror-collector", "no-such-folder"), "is not a folder"),
])
def test_mirror_options_that_cannot_compare_are_refused_before_anything_deploys(
        args: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from releasetest.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["promote", "--from", "devtest", "--to", "production", "--verdict", "missing.json", *args])
    assert code == 3 and message in capsys.readouterr().err
