"""Acceptance end to end: the holdout scored through real local endpoints, variants that must BLOCK,
and a champion deployed side by side (by manifest) or reached by URL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from releasetest.checks.metrics import metric_names
from releasetest.endpoint.local import LocalEndpoint
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE, ReferenceRun, ReleaseProject, port_closed, process_group_gone

BALANCED = 'balanced_accuracy = { min = 0.78, min_absolute_change = { majority = 0.25, persistence = 0.0 } }'
RETURN = '    return {"predictions": label.tolist(), "probabilities": proba.tolist()}'

#: What these tests judge (acceptance, with smoke's golden rows and batches), without the schema
#: and load suites: the gate's policy for these runs requires exactly those two.
ACCEPTANCE_AND_SMOKE = ("--release-stage", "devtest", "--release-require", "acceptance,smoke",
                        "-m", "acceptance or smoke")


def _reasons(verdict: dict) -> str:
    return "\n".join(verdict["reasons"])


def test_reference_promotes_and_records_every_metric_and_reference(reference_run: ReferenceRun) -> None:
    result = reference_run.result
    assert result.ret == 0, result.stdout.str()[-2000:]
    verdict = reference_run.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert verdict["suites"]["acceptance"]["passed"] == 5
    found = verdict["findings"]["acceptance"]
    assert set(found["metrics"]) == set(metric_names((0, 1)))
    assert found["metrics"]["accuracy"] == pytest.approx(0.9559, abs=1e-4)
    assert found["metrics"]["balanced_accuracy"] == pytest.approx(0.8239, abs=1e-4)
    assert found["references"]["majority"]["balanced_accuracy"] == 0.5
    assert found["references"]["persistence"]["accuracy"] == pytest.approx(0.9425, abs=1e-4)
    assert len(found["thresholds"]) == 8 and all(t["passed"] for t in found["thresholds"])
    assert sum(map(sum, found["confusion_matrix"]["matrix"])) == 3858
    assert found["parity"]["agreement"] == 1.0 and found["parity"]["mismatches"] == []
    assert found["class_distribution"]["holdout"]["1"] == pytest.approx(0.9121, abs=1e-4)
    assert found["scoring"]["requests"] == 8


def test_scaler_refit_per_request_blocks_on_baseline_and_parity(example_project: ReleaseProject) -> None:
    """The bug passes readiness and smoke (its golden rows still come out right), and scores 0.906
    accuracy; acceptance must still stop it."""
    release_project = example_project
    release_project.edit("score.py", "x = scaler.transform(", "x = scaler.fit_transform(")
    result = release_project.run_inprocess(*ACCEPTANCE_AND_SMOKE)
    assert result.ret == 1
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert verdict["suites"]["smoke"]["failed"] == 0
    reasons = _reasons(verdict)
    assert "test_beats_naive_baselines: accuracy 0.9062 does not beat majority baseline 0.9121" in reasons
    assert "test_training_serving_parity: training-serving parity 0.9316 is below the required 0.9990" in reasons
    assert "balanced_accuracy 0.6074 is below the minimum 0.7800" in reasons


@pytest.mark.parametrize("only_batches", [False, True], ids=["every-request", "batches-only"])
def test_flipped_labels_block(release_project: ReleaseProject, only_batches: bool) -> None:
    """Flipped on every request, readiness (golden rows) already stops the deploy; flipped only on
    batches, the golden rows pass and acceptance is what blocks."""
    flip = "(1 - label) if len(label) > 8 else label" if only_batches else "1 - label"
    release_project.edit("score.py", RETURN, RETURN.replace("label.tolist()", f"({flip}).tolist()"))
    result = release_project.run_inprocess(*ACCEPTANCE_AND_SMOKE)
    assert result.ret == 1
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    reasons = _reasons(verdict)
    if not only_batches:
        assert verdict["reasons"][0].startswith("the endpoint is up, but 6 of 6 golden rows differ"), verdict["reasons"]
        return
    assert "test_beats_naive_baselines: accuracy 0.0441 does not beat majority baseline" in reasons
    assert "test_training_serving_parity: training-serving parity 0.0000" in reasons


def _champion(project: ReleaseProject, score_edit: tuple[str, str] | None = None) -> Path:
    dest = project.root / "champion"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    if score_edit:
        script = dest / "score.py"
        script.write_text(script.read_text().replace(*score_edit))
    return dest


def _candidate_against(project: ReleaseProject, champion: str) -> None:
    project.edit("release.toml", "[acceptance]\n", f'[acceptance]\nchampion = "{champion}"\n')
    project.edit("release.toml", BALANCED, BALANCED.replace("0.0 }", "0.0, champion = -0.01 }"))


def test_better_champion_blocks_the_candidate(release_project: ReleaseProject) -> None:
    """The champion (deployed side by side from its manifest) knows every holdout label."""
    lookup = (
        "    import csv\n"
        '    with open(os.path.join(os.path.dirname(__file__), "data", "holdout.csv")) as f:\n'
        "        truth = {tuple(map(float, r[1:8])): int(r[8]) for r in list(csv.reader(f))[1:]}\n"
        "    rows = np.asarray(data, dtype=np.float64).tolist()\n"
        "    label = np.array([truth.get(tuple(r), p) for r, p in zip(rows, label.tolist())])\n"
    )
    champ = _champion(release_project, (RETURN, lookup + RETURN))
    holdout_csv = (champ / "data" / "holdout.csv").read_text().splitlines()[1:]
    # Its training-time predictions are the labels, so its readiness check holds.
    (champ / "data" / "expected_predictions.csv").write_text(
        "label\n" + "\n".join(line.rsplit(",", 1)[1] for line in holdout_csv) + "\n")
    _candidate_against(release_project, "../champion/release.toml")
    result = release_project.run_inprocess(*ACCEPTANCE_AND_SMOKE)
    assert result.ret == 1
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert [t.rsplit("/", 1)[-1] for t in verdict["suites"]["acceptance"]["failing"]] == [
        "suite_acceptance.py::test_no_regression_against_champion"]
    assert ("test_no_regression_against_champion: balanced_accuracy 0.8239 regresses beyond tolerance 0.0100 of "
            "champion 1.0000") in _reasons(verdict)
    found = verdict["findings"]["acceptance"]
    assert found["references"]["champion"]["accuracy"] == 1.0
    log = (release_project.root / "releasetest-out" / "server-devtest-champion.log").read_text()
    # The pid in the log is the sandbox's own (a PID namespace); the port is the host's.
    port = int(log.split("Listening at: http://127.0.0.1:")[1].split(" ")[0])
    assert port_closed(port), "the champion's server outlived the run"


def test_worse_champion_by_url_lets_the_candidate_pass(release_project: ReleaseProject) -> None:
    """Production is already running (here: started by this test) and reached by its URL."""
    champ = _champion(release_project, (RETURN, "    label = (proba[:, 1] > 0.95).astype(np.int64)\n" + RETURN))
    rel = load_release(champ / "release.toml")
    assert rel.data is not None
    prod = LocalEndpoint(rel, rel.stage("devtest"), load_holdout(rel.data).golden(5),
                         log_path=release_project.root / "prod.log")
    with prod as handle:
        _candidate_against(release_project, handle.scoring_uri)
        result = release_project.run_inprocess(*ACCEPTANCE_AND_SMOKE)
        assert result.ret == 0, _reasons(release_project.verdict())
        found = release_project.verdict()["findings"]["acceptance"]
        assert found["references"]["champion"]["balanced_accuracy"] == pytest.approx(0.818, abs=1e-3)
        assert [t["passed"] for t in found["thresholds"] if t["reference"] == "champion"] == [True]
        assert not process_group_gone(prod.pid or 0), "the run must not stop a champion it does not own"
    assert port_closed(int(handle.info["port"]))


def test_bad_threshold_stops_before_deploy(release_project: ReleaseProject) -> None:
    release_project.edit("release.toml", "roc_auc = {", "roc_aux = {")
    result = release_project.run_inprocess("--release-stage", "devtest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*release.toml: acceptance.thresholds.roc_aux: unknown metric 'roc_aux' "
                                 "(fix: did you mean 'roc_auc'?)*"])
    assert "Traceback" not in result.stderr.str()
    assert not (release_project.root / "releasetest-out" / "server-devtest.log").exists()
