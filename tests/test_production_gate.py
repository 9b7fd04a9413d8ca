"""The comparison with production in the gate: a worse retrain BLOCKs against the release history
says is in production, end to end against the real azmlinfsrv (two gates sharing one history
folder); what history keeps, the settings and the thresholds' baseline note in this process
against the recorded target."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

# The in-process gates below compare with scipy.stats. Imported here, at collection, so it is not
# first imported inside a run: pytester drops the modules a run imported, and numpy's C extensions
# (numpy.fft, which scipy.stats loads) cannot be loaded a second time in this process.
import scipy.stats  # noqa: F401

from releasetest.checks.registry import findings_of
from releasetest.release.manifest import load_release
from releasetest.verdict.predictions import Predictions, load_predictions, save_predictions
from releasetest.verdict.summary import summary_markdown

from .conftest import ReleaseProject, suites_gate
from .recorded_target import RecordedTarget, recorded_target

REGRESSION_TEST = "test_no_regression_against_production"


def _retrain_worse(release: Path, shift: float) -> None:
    """A self-consistent, slightly worse release: the scaler's temperature mean moved by ``shift``
    standard deviations (as a retrain on other data would move it), the training-time predictions
    written again through the served path (as train.py does), the manifest's digest updated."""
    import joblib
    import onnxruntime as ort

    scaler_path = release / "models" / "model-scaler.pkl"
    old_digest = hashlib.sha256(scaler_path.read_bytes()).hexdigest()
    scaler = joblib.load(scaler_path)
    scaler.mean_ = scaler.mean_.copy()
    scaler.mean_[0] += shift * scaler.scale_[0]
    joblib.dump(scaler, scaler_path)
    with open(release / "data" / "holdout.csv", newline="") as f:
        rows = np.array([[float(v) for v in r[1:-1]] for r in list(csv.reader(f))[1:]])
    session = ort.InferenceSession(str(release / "models" / "support-vector-classifier.onnx"),
                                   providers=["CPUExecutionProvider"])
    label, proba = session.run(["label", "probabilities"],
                               {"float_input": joblib.load(scaler_path).transform(rows).astype(np.float32)})
    with open(release / "data" / "expected_predictions.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["label", "probability_0", "probability_1"])
        w.writerows([int(y), format(p[0], ".9g"), format(p[1], ".9g")] for y, p in zip(label, proba, strict=True))
    manifest = release / "release.toml"
    text = manifest.read_text().replace(old_digest, hashlib.sha256(scaler_path.read_bytes()).hexdigest())
    # The release's own gate settings: the defaults (beat the majority class), no champion.
    manifest.write_text(text[:text.index("[acceptance.thresholds]")] + text[text.index("[load]"):])


#: The suites a gate of these tests runs: every built-in one but load, whose SLOs measure the
#: machine as much as the release (a busy CI box fails them), named as files so the run is full,
#: not partial (a partial run's predictions are not kept).
GATED = ("smoke", "acceptance", "schema")


def _gate(project: ReleaseProject, history: Path) -> pytest.RunResult:
    """A full gate of the project's release against the real azmlinfsrv, in a subprocess."""
    return project.run_inprocess(*suites_gate(*GATED), f"--release-history={history}")


@pytest.mark.long
def test_worse_retrain_blocks_against_production(example_project: ReleaseProject, tmp_path: Path) -> None:
    """The example PROMOTEs and history keeps its predictions; a retrain that loses 64 holdout rows
    and wins 3, gated next with the same history, BLOCKs on that alone, naming production, which
    is not deployed."""
    release_project = example_project
    history = tmp_path / "history"
    first = _gate(release_project, history)
    production = release_project.verdict()
    assert production["decision"] == "PROMOTE", first.outlines[-10:]
    kept = load_predictions(history, production["release"]["id"])
    assert kept is not None and len(kept) == 3858 and kept.task == "classification"

    _retrain_worse(release_project.release, 0.3)
    result = _gate(release_project, history)
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK", verdict["reasons"]
    assert result.ret == 1
    failing = [f for s in verdict["suites"].values() for f in s["failing"]]
    assert [f.rsplit("::", 1)[-1] for f in failing] == [REGRESSION_TEST], verdict["reasons"]
    reason = next(r for r in verdict["reasons"] if r.startswith(REGRESSION_TEST))
    label = f"port-weather@{production['release']['id'].split(':')[1][:12]}"
    assert f"regression against production {label}: accuracy 0.9401 vs 0.9559 (1.7% worse, tolerated 1.0%); " \
           "64 rows got worse, 3 better; McNemar chi-squared p = 2.3e-13 < 0.01" in reason
    found = findings_of(verdict)["acceptance"].production
    assert found is not None and found.regressed and found.paired and found.production == label
    assert found.how.startswith("last PROMOTE of devtest at ")
    assert found.candidate_holdout == found.production_holdout
    assert not list(release_project.root.glob("releasetest-out/*champion*")), "production was deployed"
    line = (f"against production {label}: accuracy 0.9559 -> 0.9401 (1.7% worse), 64 rows worse, 3 better, "
            "McNemar p = 2.3e-13: BLOCK (below 0.01, beyond the tolerated 1.0%)")
    assert found.line() == line
    result.stdout.fnmatch_lines([line])
    summary = (release_project.root / "releasetest-out" / "summary.md").read_text()
    assert "vs production " + label in summary and f"**{line}**" in summary
    report = (release_project.root / "releasetest-out" / "report.html").read_text()
    assert "Against production: " + label in report and "rows worse than production" in report
    assert line.replace(">", "&gt;") in report.split("<nav>")[0], "not on the first screen"
    candidate = load_release(release_project.release / "release.toml").release_id
    assert load_predictions(history, candidate) is None, "a BLOCKed release's predictions were kept"


def _acceptance_only(project: ReleaseProject, target: RecordedTarget, *args: str) -> pytest.RunResult:
    """A full (not partial) run of the acceptance suite alone against the recorded target."""
    return project.run_inprocess(*suites_gate("acceptance"), *target.args, *args)


def _history(project: ReleaseProject) -> Path:
    return project.root / "releasetest-out" / "history"


def test_first_release_keeps_its_predictions_and_a_partial_run_does_not(
        release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    release_id = load_release(release_project.release / "release.toml").release_id
    partial = release_project.run_inprocess("--release-stage", "devtest", "--release-require", "acceptance",
                                            *recorded.args, "-m", "acceptance")
    assert release_project.verdict()["decision"] == "PROMOTE", partial.outlines[-5:]
    assert load_predictions(_history(release_project), release_id) is None

    orphan = save_predictions(_history(release_project), Predictions.encode(
        "sha256:" + "0" * 64, "sha256:" + "0" * 64, "classification", [0], (0,)))  # no verdict names it
    result = _acceptance_only(release_project, recorded, "-rs", "--release-keep-predictions=0")
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE" and not verdict["partial"]
    result.stdout.fnmatch_lines(["SKIPPED * no production release in history (a first release): nothing to "
                                 "compare with"])
    result.stdout.fnmatch_lines(["history: deleted 1 holdout predictions file (* MB) no gate compares with any more*"])
    kept = load_predictions(_history(release_project), release_id)
    assert kept is not None and not orphan.exists()
    with open(release_project.release / "data" / "expected_predictions.csv") as f:
        assert kept.decoded() == [int(r[0]) for r in list(csv.reader(f))[1:]]
    assert "production" not in verdict["findings"]["acceptance"]


def _better_production(project: ReleaseProject) -> Path:
    """A copy of the example whose model is right on every holdout row (its recorded predictions
    are the labels), with its own entry script so its release id differs."""
    prod = project.root / "production"
    shutil.copytree(project.release, prod)
    with open(prod / "data" / "holdout.csv") as f:
        rows = list(csv.reader(f))[1:]
    with open(prod / "data" / "expected_predictions.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["label", "probability_0", "probability_1"])
        w.writerows([r[-1], "0.1" if r[-1] == "1" else "0.9", "0.9" if r[-1] == "1" else "0.1"] for r in rows)
    (prod / "score.py").write_text((prod / "score.py").read_text() + "\n# production\n")
    return prod


def test_regression_against_a_better_production_blocks(release_project: ReleaseProject,
                                                       recorded: RecordedTarget) -> None:
    """Production (gated first, through the same history) is right on every row; the example, right
    on 95.6% of them, BLOCKs; with a different holdout it is compared by metrics only and PROMOTEs."""
    prod = _better_production(release_project)
    manifest = prod / "release.toml"
    with recorded_target(prod) as better:
        first = _acceptance_only(release_project, better, f"--release-config={manifest}")
    assert release_project.verdict()["decision"] == "PROMOTE", first.outlines[-8:]
    assert load_predictions(_history(release_project), load_release(manifest).release_id) is not None

    result = _acceptance_only(release_project, recorded)
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    reason = next(r for r in verdict["reasons"] if r.startswith(REGRESSION_TEST))
    assert "accuracy 0.9559 vs 1.0000" in reason and "170 rows got worse, 0 better" in reason
    comparison = findings_of(verdict)["acceptance"].production
    assert comparison is not None and comparison.regressed
    assert findings_of(json.loads(json.dumps(verdict)))["acceptance"].production == comparison
    assert "(regressed) ❌" in summary_markdown(verdict)
    result.stdout.fnmatch_lines(["against production port-weather@*: accuracy 1.0000 -> 0.9559 (4.4% worse), 170 rows "
                                 "worse, 0 better, McNemar p = *: BLOCK (below 0.01, beyond the tolerated 1.0%)"])
    assert not [w for w in verdict["warnings"] if "production" in w], "a paired regression BLOCKs, it does not warn"

    release_project.edit("data/holdout.csv", "\n", "\n2016-01-01 00:00:00,1,0.5,1,1,1,1000,1,1\n")
    release_project.edit("data/expected_predictions.csv", "\n", "\n1,0.1,0.9\n")
    result = _acceptance_only(release_project, recorded)
    verdict = release_project.verdict()
    comparison = findings_of(verdict)["acceptance"].production
    assert comparison is not None and not comparison.paired and not comparison.regressed
    assert "the holdout differs from the one production" in comparison.message
    assert "metrics compared only, no paired test" in comparison.message
    assert verdict["suites"]["acceptance"]["failed"] == 0 and verdict["decision"] == "PROMOTE"
    # 4.4% worse by the metrics alone, beyond the 1% tolerance: no test can BLOCK on it, the verdict warns
    assert comparison.message in verdict["warnings"]
    result.stdout.fnmatch_lines(["against production port-weather@*: accuracy 1.0000 -> 0.9559 (4.4% worse), metrics "
                                 "only (another holdout): warning, beyond the tolerated 1.0%",
                                 "warning: the holdout differs from the one production port-weather@*"])


def test_champion_configured_means_no_comparison_with_history(release_project: ReleaseProject,
                                                               recorded: RecordedTarget) -> None:
    release_project.edit("release.toml", "[acceptance.thresholds]\n",
                         "[acceptance.thresholds]\nmacro_f1 = { min_absolute_change = { champion = -1.0 } }\n")
    release_project.edit("release.toml", "# champion = ", f'champion = "{recorded.url}/score"\n# ')
    result = _acceptance_only(release_project, recorded, "-rs")
    result.stdout.fnmatch_lines(["SKIPPED * compared with the configured champion instead*"])
    assert "production" not in release_project.verdict()["findings"]["acceptance"]


def test_own_thresholds_without_a_baseline_say_so(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    text = (release_project.release / "release.toml").read_text()
    start, end = text.index("[acceptance.thresholds]"), text.index("[load]")
    (release_project.release / "release.toml").write_text(
        text[:start] + "[acceptance.thresholds]\naccuracy = { min = 0.9 }\n\n" + text[end:])
    result = _acceptance_only(release_project, recorded, "-rs")
    note = ("[acceptance.thresholds] compares with no naive baseline, so the default check (balanced_accuracy must "
            "beat the majority baseline by 0.05) is not made; to keep it, add min_absolute_change = { majority = 0.05 "
            "} to balanced_accuracy in [acceptance.thresholds]")
    assert note in release_project.verdict()["warnings"]
    assert f"warning: {note}" in result.outlines  # brackets: no fnmatch
    assert any(line.startswith("SKIPPED") and line.endswith(f": {note}") for line in result.outlines)



def test_predictions_scored_on_an_xdist_worker_reach_history(release_project: ReleaseProject,
                                                              recorded: RecordedTarget) -> None:
    """The worker that scored hands its predictions to the controller, which alone writes them."""
    pytest.importorskip("xdist")
    _acceptance_only(release_project, recorded, "-n", "2")
    assert release_project.verdict()["decision"] == "PROMOTE"
    release_id = load_release(release_project.release / "release.toml").release_id
    kept = load_predictions(_history(release_project), release_id)
    assert kept is not None and len(kept) == 3858
