"""Production evidence: the ``[production]``, ``[drift]`` and ``[shadow]`` tables, the drift suite
(in this process: it asks nothing of the endpoint), the shadow suite end to end against a real
azmlinfsrv serving an entry script that is honest only on its own holdout, its champion-URL and
regression paths in this process against recorded answers, the report's small
multiples and ``releasetest profile``."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from releasetest.checks.drift.config import parse_drift
from releasetest.checks.drift.profile import load_profile
from releasetest.checks.shadow.config import ShadowConfig, parse_shadow
from releasetest.checks.shadow.replay import Replay, by_segment, compare_answers, segments
from releasetest.cli import main as cli_main
from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, Tolerance, load_release

from .conftest import EXAMPLE, INI, ReferenceRun, ReleaseProject, loopback_server
from .recorded_target import RecordedTarget

FEATURES = ["Temperature_C", "Humidity", "Wind_speed_kmph", "Wind_bearing_degrees", "Visibility_km",
            "Pressure_millibars", "Current_weather_condition"]


@pytest.fixture(scope="module")
def release() -> Release:
    return load_release(EXAMPLE / "release.toml")


@pytest.mark.parametrize(("parse", "table", "message"), [
    (parse_drift, {"numerical": {"metric": "normalised_wasserstein_distance"}},
     "drift.numerical.metric: unknown metric 'normalised_wasserstein_distance' "
     "(fix: did you mean 'normalized_wasserstein_distance'?)"),
    (parse_drift, {"stale_holdout": "stop"}, "drift.stale_holdout: unknown stale_holdout 'stop'"),
    (parse_drift, {"features": {"Temp": {"metric": "jensen_shannon_distance", "threshold": 0.2}}},
     "drift.features.Temp: is not one of data.features"),
    (parse_drift, {"reference": "data/nothing.json"}, "drift.reference: file not found"),
    (parse_shadow, {"max_changed": 1.5}, "shadow.max_changed: expected a number >= 0 and <= 1, got 1.5"),
    (parse_shadow, {"segment": "Temp"}, "shadow.segment: 'Temp' is not one of data.features"),
    (parse_shadow, {"max_mean_abs_change": 0.5}, "shadow.max_mean_abs_change: does not apply to a classification"),
    (parse_shadow, {"max_changed_per_segment": 0.1}, "shadow.segment: a per-segment bound is set but no segment"),
], ids=["metric", "action", "feature", "reference", "share", "segment", "regression-key", "segment-missing"])
def test_drift_and_shadow_tables_refuse_bad_values(release: Release, parse: Any, table: dict[str, Any],
                                                   message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(table, release, release.stage("devtest"))
    assert str(info.value).startswith(f"{release.manifest}: {message}"), str(info.value)


def test_production_table_is_checked_with_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "release.toml"
    manifest.write_text((EXAMPLE / "release.toml").read_text().replace("sample = 20000", "smaple = 20000"))
    for name in ("InferenceConfig.yml", "AciDeploymentConfig.yml", "AksDeploymentConfig.yml", "myenv.yml",
                 "score.py", "models", "data"):
        (tmp_path / name).symlink_to(EXAMPLE / name)
    with pytest.raises(ConfigError) as info:
        load_release(manifest)
    assert (info.value.key, info.value.fix) == ("production.smaple", "did you mean 'sample'?")


def _drifted_traffic(path: Path, shift: float) -> Path:
    """Holdout rows as a CSV of recorded rows, with the temperature moved by ``shift`` degrees."""
    with open(EXAMPLE / "data" / "holdout.csv") as fh:
        rows = list(csv.DictReader(fh))
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time", *FEATURES])
        for r in rows:
            out.writerow([r["Timestamp"], *(float(r[f]) + (shift if f == "Temperature_C" else 0) for f in FEATURES)])
    return path


def test_traffic_drifted_on_one_feature_blocks_naming_it(release_project: ReleaseProject,
                                                         recorded: RecordedTarget) -> None:
    """Recorded traffic 40 degrees warmer than anything trained on: the drift suite BLOCKs for that
    feature, its metric and threshold; the stale holdout is a warning by default."""
    traffic = _drifted_traffic(release_project.root / "warm.csv", 40.0)
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m", "drift",
                                           f"--release-traffic={traffic}")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK", verdict["reasons"]
    reasons = "\n".join(verdict["reasons"])
    assert "test_trained_near_production: the candidate was trained on data far from production: " \
           "Temperature_C: jensen_shannon_distance " in reasons
    assert "> threshold 0.3 ([drift] far_from_training = \"block\")" in reasons
    assert "Humidity" not in reasons, "only the shifted feature drifted"
    drift = verdict["findings"]["drift"]
    assert drift["production"]["rows"] == 3858 and drift["production"]["formats"] == ["csv"]
    assert drift["distributions"][0]["feature"] == "Temperature_C" and drift["distributions"][0]["drifted"]
    assert [w.split(": ")[1] for w in drift["warned"]] == ["Temperature_C"]
    assert verdict["suites"]["drift"]["passed"] == 1, "a stale holdout warns by default"
    assert "drift warning: the holdout no longer represents production" in result.stdout.str()


def test_stale_holdout_blocks_when_set(release_project: ReleaseProject, recorded: RecordedTarget) -> None:
    release_project.edit("release.toml", 'stale_holdout = "warn"', 'stale_holdout = "block"')
    release_project.edit("release.toml", 'reference = "data/reference.json"\n', "")
    traffic = _drifted_traffic(release_project.root / "warm.csv", 40.0)
    release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m", "drift",
                                  f"--release-traffic={traffic}")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK"
    assert any(r.startswith("test_holdout_represents_production: the holdout no longer represents production "
                            "(its evidence is stale): Temperature_C: jensen_shannon_distance ")
               for r in verdict["reasons"]), verdict["reasons"]
    assert "no training reference" in verdict["suites"]["drift"]["messages"][
        next(t for t in verdict["suites"]["drift"]["tests"] if t.endswith("test_trained_near_production"))]


def test_without_traffic_drift_and_shadow_skip_and_are_not_required(release_project: ReleaseProject,
                                                                   recorded: RecordedTarget) -> None:
    text = (release_project.release / "release.toml").read_text()
    start = text.index("[production]")
    (release_project.release / "release.toml").write_text(text[:start] + text[text.index("[drift]"):])
    release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m", "drift or shadow or smoke")
    verdict = release_project.verdict()
    assert "drift" not in verdict["required_suites"] and "shadow" not in verdict["required_suites"]
    for suite in ("drift", "shadow"):
        got = verdict["suites"][suite]
        assert got["passed"] == got["failed"] == 0 and got["skipped"] > 0
        assert all("no recorded production traffic" in m for m in got["messages"].values())
    assert not any("drift" in r or "shadow" in r for r in verdict["reasons"]), verdict["reasons"]


HOLDOUT_ONLY = '''
import csv as _csv

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "holdout.csv")) as _fh:
    _HOLDOUT = {tuple(float(v) for v in _row[1:8]) for _row in list(_csv.reader(_fh))[1:]}


def _known(x):
    return [tuple(float(v) for v in row) in _HOLDOUT for row in x]
'''


@pytest.mark.long
def test_entry_script_honest_only_on_its_holdout_blocks_on_shadow(release_project: ReleaseProject) -> None:
    """Acceptance passes (every holdout row is answered honestly); replaying production's recorded
    requests shows the labels it changes, and BLOCKs on the share changed."""
    release_project.edit("score.py", 'logger = logging.getLogger(__name__)', 'logger = logging.getLogger(__name__)'
                         + HOLDOUT_ONLY)
    release_project.edit("score.py", '    return {"predictions": label.tolist(), "probabilities": proba.tolist()}',
                         '    known = _known(np.asarray(data, dtype=np.float64))\n'
                         '    return {"predictions": [v if k else 0 for v, k in zip(label.tolist(), known)],\n'
                         '            "probabilities": [p if k else [0.9, 0.1]\n'
                         '                              for p, k in zip(proba.tolist(), known)]}')
    result = release_project.run_inprocess("--release-stage", "devtest", "-m", "acceptance or shadow")
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK", result.stdout.str()[-3000:]
    acceptance = verdict["suites"]["acceptance"]
    assert acceptance["failed"] == acceptance["errors"] == 0 and acceptance["passed"] > 0
    shadow = verdict["findings"]["shadow"]
    assert shadow["production_source"] == "recorded model_outputs" and shadow["compared_rows"] == 3197
    assert shadow["changed_share"] > 0.5 and shadow["candidate"]["errors"] == 0
    reason = next(r for r in verdict["reasons"] if r.startswith("test_share_of_answers_changed: "))
    assert f"{shadow['changed_rows']} of 3197 recorded rows change label against recorded model_outputs, " \
           "above [shadow] max_changed 0.05; most changed: " \
           "data/production/port-weather/blue/model_inputs/2017/" in reason
    assert "production 1, candidate 0" in reason
    quoted = shadow["most_changed"][0]
    assert quoted["source"].split(":")[0].endswith(".jsonl") and set(quoted["inputs"]) == set(FEATURES)
    assert any(s["passed"] is False for s in shadow["segments"])


def test_example_promotes_with_its_recorded_traffic(reference_run: ReferenceRun) -> None:
    verdict = reference_run.verdict()
    assert verdict["decision"] == "PROMOTE"
    assert {"drift", "shadow"} <= set(verdict["required_suites"])
    shadow = verdict["findings"]["shadow"]
    assert (shadow["compared_rows"], shadow["changed_rows"]) == (3197, 0)
    drift = verdict["findings"]["drift"]
    assert not [r for r in drift["holdout_vs_production"] + drift["training_vs_production"] if r["drifted"]]
    report = (reference_run.out_dir / "report.html").read_text()
    assert report.count('class="multiples"') == 1
    order = [d["feature"] for d in drift["distributions"]]
    positions = [report.index(f"<title>{f}: ") for f in order]
    assert positions == sorted(positions), "small multiples are drawn most drifted first"


def test_profile_command_writes_the_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reference.json"
    assert cli_main(["profile", str(EXAMPLE / "data" / "holdout.csv"), "--out", str(out),
                     "--manifest", str(EXAMPLE / "release.toml")]) == 0
    assert f"{out}: 3858 rows of " in capsys.readouterr().out
    samples = load_profile(out, FEATURES)
    assert [s.kind for s in samples] == ["numerical"] * 6 + ["categorical"]
    assert json.loads(out.read_text())["source"]["rows"] == 3858


@pytest.mark.long
def test_shadow_against_a_champion_that_no_longer_answers_as_recorded(release_project: ReleaseProject) -> None:
    """Production is the champion release deployed beside the candidate. This champion is honest
    only on its holdout, so its answers now differ from what production recorded: the recorded-vs-now
    check says the release named as production did not serve that traffic, and the honest
    candidate changes its labels."""
    champion = release_project.root / "champion"
    shutil.copytree(EXAMPLE, champion, ignore=shutil.ignore_patterns("weather.csv", "__pycache__", "train.py"))
    script = champion / "score.py"
    text = script.read_text().replace("logger = logging.getLogger(__name__)",
                                      "logger = logging.getLogger(__name__)" + HOLDOUT_ONLY)
    script.write_text(text.replace(
        '    return {"predictions": label.tolist(), "probabilities": proba.tolist()}',
        '    known = _known(np.asarray(data, dtype=np.float64))\n'
        '    return {"predictions": [v if k else 0 for v, k in zip(label.tolist(), known)],\n'
        '            "probabilities": [p if k else [0.9, 0.1] for p, k in zip(proba.tolist(), known)]}'))
    release_project.edit("release.toml", "[acceptance]\n", '[acceptance]\nchampion = "../champion/release.toml"\n')
    release_project.edit("release.toml", "persistence = 0.0 }", "persistence = 0.0, champion = -1.0 }")
    release_project.run_inprocess("--release-stage", "devtest", "-m", "shadow")
    verdict = release_project.verdict()
    shadow = verdict["findings"]["shadow"]
    assert shadow["production_source"] == "champion release ../champion/release.toml deployed beside the candidate"
    assert shadow["production"]["errors"] == 0 and shadow["production"]["latency_ms"]["p50"] > 0
    assert shadow["recorded_check"]["rows"] == 3197 and shadow["recorded_check"]["mismatches"] > 1000
    reasons = "\n".join(verdict["reasons"])
    assert "test_production_answers_as_recorded: production (champion release ../champion/release.toml deployed " \
           "beside the candidate) now answers " in reasons and "may not be what served that traffic" in reasons
    assert "test_share_of_answers_changed: share changed " in reasons
    assert (release_project.root / "releasetest-out" / "server-devtest-production.log").is_file()


def _replay(predictions: list[Any], probabilities: list[Any] | None = None) -> Replay:
    return Replay("x", predictions, probabilities or [None] * len(predictions), len(predictions), 0, [], [])


def test_regression_changes_by_size_and_segment() -> None:
    """A regression's change is |candidate - production| beyond the parity tolerance; segments of a
    numerical feature are equal-count bins, and a segment under min_segment_rows is not gated."""
    n = 40
    production = _replay([float(i) for i in range(n)])
    candidate = _replay([float(i) + (3.0 if i >= 30 else 1e-9) for i in range(n - 1)] + [None])
    comparison = compare_answers(candidate, production, True, Tolerance(abs=1e-6))
    assert len(comparison.compared) == n - 1  # the row the candidate did not answer is left out
    assert comparison.changed.sum() == 9 and comparison.mean_abs_change == pytest.approx(27 / 39, abs=1e-6)
    config = ShadowConfig(segments=4, max_mean_abs_change_per_segment=1.0, min_segment_rows=5)
    rows = by_segment(comparison, np.arange(n, dtype=np.float64), config, True, "x")
    assert [r["rows"] for r in rows] == [10, 9, 10, 10]  # quartiles of the 39 rows compared
    assert [r["passed"] for r in rows] == [True, True, True, False]
    assert rows[-1]["mean_abs_change"] == pytest.approx(2.7)  # rows 29-38: nine moved by 3


def test_classification_change_counts_labels_and_sizes_by_probability() -> None:
    production = _replay([1, 1, 0, 1], [[0.1, 0.9], [0.4, 0.6], [0.8, 0.2], None])
    candidate = _replay([1, 0, 0, 1], [[0.3, 0.7], [0.6, 0.4], [0.8, 0.2], [0.5, 0.5]])
    comparison = compare_answers(candidate, production, False, Tolerance())
    assert comparison.changed.tolist() == [False, True, False, False]
    assert comparison.change.tolist() == pytest.approx([0.2, 1.0, 0.0, 0.0])
    labels, which = segments(np.array([0.0, 1.0, 1.0, 0.0]), 4)
    assert labels == ["0", "1"] and which.tolist() == [0, 1, 1, 0]


def test_shadow_against_a_champion_url_blocks_on_one_segment(release_project: ReleaseProject,
                                                             recorded: RecordedTarget) -> None:
    """Production given by URL (``[acceptance] champion``): a second recorded target that answers
    every other recorded row of one weather condition with the other label. Overall the share
    changed stays under max_changed, the segment does not; and the champion no longer answers as
    production recorded."""
    from releasetest.release.traffic import read_traffic

    from .recorded_target import recorded_target

    release = load_release(release_project.release / "release.toml")
    assert release.production is not None and release.data is not None
    traffic = read_traffic(release.production.traffic, release.data.features, sample=10**9,
                           base=release_project.release, key=release.production.key,
                           outputs=release.production.outputs)
    rare = [tuple(float(v) for v in row) for row in traffic.rows if row[-1] == 0.0][::2]
    with recorded_target() as champion:
        champion.retrained = frozenset(rare)
        release_project.edit("release.toml", "[acceptance]\n", f'[acceptance]\nchampion = "{champion.url}/score"\n')
        release_project.edit("release.toml", "persistence = 0.0 }", "persistence = 0.0, champion = -1.0 }")
        release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m", "shadow")
        assert "POST /score" in champion.requests
    verdict = release_project.verdict()
    shadow = verdict["findings"]["shadow"]
    assert shadow["production_source"] == f"champion at {champion.url}/score"
    assert (shadow["compared_rows"], shadow["changed_rows"]) == (3197, len(rare)) and len(rare) == 144
    assert shadow["production"]["errors"] == 0 and shadow["production"]["latency_ms"]["p50"] > 0
    assert [(s["segment"], s["rows"], s["changed_share"], s["passed"]) for s in shadow["segments"]] == [
        ("0", 288, 0.5, False), ("1", 2909, 0.0, True)]
    assert shadow["recorded_check"] == {"rows": 3197, "mismatches": 144, "share": round(144 / 3197, 6), "bound": 0.0}
    reasons = [r for r in verdict["reasons"] if r.startswith("test_")]  # the others: suites -m left out
    assert verdict["decision"] == "BLOCK" and len(reasons) == 2, verdict["reasons"]
    assert reasons[0] == ("test_segments_within_bounds: 1 segment(s) of Current_weather_condition beyond the "
                          "per-segment bound 0.1: 0 changed_share 0.5 (288 rows)"), reasons
    assert reasons[1].startswith(f"test_production_answers_as_recorded: production (champion at {champion.url}/score)"
                                 " now answers 144 of 3197 recorded rows differently"), reasons
    assert verdict["suites"]["shadow"]["passed"] == 2, "errors and the overall share are within bounds"


REGRESSION = EXAMPLE.parent / "diabetes-regression"


@contextmanager
def _regression_target(shift: Callable[[tuple[float, ...]], float]) -> Iterator[str]:
    """A scoring URL answering the diabetes example's recorded predictions for its holdout rows,
    each moved by ``shift(row)``."""
    data = REGRESSION / "data"
    with open(data / "holdout.csv") as rows, open(data / "expected_predictions.csv") as exp:
        answers = {tuple(float(v) for v in row[:-1]): float(want[0])
                   for row, want in zip(list(csv.reader(rows))[1:], list(csv.reader(exp))[1:], strict=True)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as tests/recorded_target.py: 40 ms a request otherwise

        def log_message(self, *args: Any) -> None:
            """Quiet."""

        def _send(self, body: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            live = self.path == "/"
            self._send(b'"Healthy"' if live else b'{"message": "not found"}', 200 if live else 404)

        def do_POST(self) -> None:  # noqa: N802
            rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["data"]
            keys = [tuple(float(v) for v in row) for row in rows]
            self._send(json.dumps({"predictions": [answers[k] + shift(k) for k in keys]}).encode())

    with loopback_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/score"


def test_shadow_of_a_regression_bounds_values_within_tolerance(pytester: pytest.Pytester,
                                                               recorded: RecordedTarget) -> None:
    """A regression release against a champion URL: rows moved within the parity tolerance do not
    change; rows of one segment (sex = 2) moved by 5 do. The overall mean change is within
    max_mean_abs_change, the segment's beyond its per-segment bound."""
    release = pytester.path / "release"
    shutil.copytree(REGRESSION, release, ignore=shutil.ignore_patterns("diabetes.csv", "__pycache__", "train.py"))
    pytester.makeini(INI)
    with open(REGRESSION / "data" / "holdout.csv") as fh, open(release / "data" / "traffic.csv", "w") as out:
        out.writelines(line.rsplit(",", 1)[0] + "\n" for line in fh)
    with open(release / "release.toml", "a") as fh:
        fh.write('\n[production]\ntraffic = "data/traffic.csv"\n\n[shadow]\nmax_mean_abs_change = 5.0\n'
                 'segment = "sex"\nmax_mean_abs_change_per_segment = 1.0\n')
    project = ReleaseProject(pytester, pytester.path)
    with _regression_target(lambda row: 0.0) as candidate, \
            _regression_target(lambda row: 5.0 if row[1] == 2.0 else 1e-9) as champion:
        project.edit("release.toml", "[acceptance]\n", f'[acceptance]\nchampion = "{champion}"\n')
        project.edit("release.toml", "r2 = { min = 0.4 }",
                     "r2 = { min = 0.4, min_absolute_change = { champion = -1.0 } }")
        project.run_inprocess("--release-stage", "devtest", "--release-target", "url", f"--release-url={candidate}",
                              "-m", "shadow")
    verdict = project.verdict()
    shadow = verdict["findings"]["shadow"]
    with open(REGRESSION / "data" / "holdout.csv") as fh:
        sex = [row["sex"] for row in csv.DictReader(fh)]
    moved = sex.count("2.0")
    assert shadow["production_source"] == f"champion at {champion}" and shadow["task"] == "regression"
    assert (shadow["compared_rows"], shadow["changed_rows"]) == (len(sex), moved), "1e-9 is within the tolerance"
    assert shadow["mean_abs_change"] == pytest.approx(5.0 * moved / len(sex), abs=1e-5)
    assert shadow["max_mean_abs_change"] == 5.0 and "max_changed" not in shadow
    assert shadow["change_quantiles"]["q100"] == pytest.approx(5.0)
    assert [(s["segment"], s["rows"], s["passed"]) for s in shadow["segments"]] == [
        ("1", len(sex) - moved, True), ("2", moved, False)]
    reasons = [r for r in verdict["reasons"] if r.startswith("test_")]
    assert reasons == [f"test_segments_within_bounds: 1 segment(s) of sex beyond the per-segment bound 1: "
                       f"2 mean_abs_change 5 ({moved} rows)"], verdict["reasons"]
    assert verdict["suites"]["shadow"]["passed"] == 2 and verdict["suites"]["shadow"]["skipped"] == 1
    assert "By segment of sex" in (project.root / "releasetest-out" / "report.html").read_text()
