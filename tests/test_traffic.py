"""Reading recorded production traffic (releasetest.release.traffic): the three formats, the
errors, the time-stratified sample, and pairing with recorded outputs. In-process, no endpoint."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from releasetest.errors import ConfigError
from releasetest.release.traffic import body_rows, read_traffic, stratified_indices

from .conftest import EXAMPLE

COLLECTOR = Path(__file__).parent / "data" / "collector"
AB = ("a", "b")


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_collector_files_read_in_time_order_with_ids_and_recorded_outputs() -> None:
    traffic = read_traffic(COLLECTOR, AB)
    assert traffic.formats == ("collector", "collector")
    assert traffic.rows.tolist() == [[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]]
    assert traffic.times[0] == _stamp("2026-11-30T14:05:30")
    assert traffic.correlation_ids[:2] == ("3711655d-b04c-4aa2-a6c4-6a90cbfcb73f",) * 2
    assert traffic.sources[1].endswith("5f0e7c1a-1111-4aa2-a6c4-6a90cbfcb701.jsonl:1#2")
    # custom logging pairs the row's own record; payload logging the row's slice of each list
    assert traffic.recorded[:3] == ({"predictions": 0}, {"predictions": 1}, None)
    assert traffic.recorded[3] == {"predictions": 1, "probabilities": [0.2, 0.8]}
    assert traffic.recorded[4] == {"predictions": 0, "probabilities": [0.9, 0.1]}


def test_a_glob_into_model_inputs_finds_the_outputs_beside_it() -> None:
    traffic = read_traffic("localdev-endpoint/*/model_inputs/**/*.jsonl", AB, base=COLLECTOR)
    assert len(traffic) == 5 and traffic.has_recorded_outputs


def test_plain_json_lines_of_request_bodies(tmp_path: Path) -> None:
    path = tmp_path / "bodies.jsonl"
    path.write_text("\n".join(json.dumps(b) for b in [
        {"data": [[1, 2], [3, 4]]},
        {"data": [{"b": 6, "a": 5}]},
        {"input_data": {"columns": ["b", "a"], "index": [0], "data": [[8, 7]]}},
        {"data": {"a": [9, 11], "b": [10, 12]}},
        [{"a": 13, "b": 14}],
    ]) + "\n\n")
    traffic = read_traffic(path, AB)
    assert traffic.formats == ("jsonl",)
    assert traffic.rows.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14]]
    assert np.isnan(traffic.times).all() and not traffic.has_recorded_outputs


def test_csv_of_feature_rows_with_a_time_column(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("Timestamp,b,a,extra\n2026-01-02 10:00:00,20,2,x\n2026-01-01 09:00:00,10,1,y\n")
    traffic = read_traffic(path, AB)
    assert traffic.rows.tolist() == [[1, 10], [2, 20]]  # sorted by time
    assert traffic.times.tolist() == [_stamp("2026-01-01T09:00:00"), _stamp("2026-01-02T10:00:00")]


def test_example_traffic_is_the_collector_layout_and_never_a_holdout_row() -> None:
    traffic = read_traffic(EXAMPLE / "data" / "production", _example_features())
    assert set(traffic.formats) == {"collector"} and 2000 < len(traffic) <= 5000
    assert all(r is not None for r in traffic.recorded)
    holdout = np.loadtxt(EXAMPLE / "data" / "holdout.csv", delimiter=",", skiprows=1,
                         usecols=range(1, 8), dtype=np.float64)
    assert not {tuple(r) for r in traffic.rows.tolist()} & {tuple(r) for r in holdout.tolist()}


def _example_features() -> tuple[str, ...]:
    import tomllib
    return tuple(tomllib.loads((EXAMPLE / "release.toml").read_text())["data"]["features"])


@pytest.mark.parametrize(("content", "expected"), [
    ("{not json\n", "bad.jsonl: line 1: not JSON"),
    ('{"data": [[1, 2]]}\n{"data": "x"}\n', "bad.jsonl: line 2: holds no feature rows"),
    ('{"data": [[1, 2, 3]]}\n', "bad.jsonl: line 1, field 'data': a row has 3 values, the model takes 2 (a, b)"),
    ('{"data": [{"a": 1}]}\n', "bad.jsonl: line 1, field 'data': no value for b"),
    ('{"data": [["x", 2]]}\n', "bad.jsonl: line 1, field 'a': 'x' is not a number"),
    ('{"specversion": "1.0", "type": "azureml.inference.inputs", "time": "yesterday", "data": [[1, 2]]}\n',
     "bad.jsonl: line 1, field 'time': 'yesterday' is not an ISO 8601 time"),
    ('{"specversion": "1.0", "type": "azureml.inference.inputs", "data": [[1, 2]]}\n',
     "bad.jsonl: line 1, field 'time': the event has no time"),
    ('{"specversion": "1.0", "type": "azureml.inference.request", "time": "2026-01-01T00:00:00Z", '
     '"data": "https://x.blob.core.windows.net/y", "datainblob": "true"}\n',
     "bad.jsonl: line 1, field 'data': the payload was over 256 KB"),
    ('{"specversion": "1.0", "type": "azureml.inference.outputs", "time": "2026-01-01T00:00:00Z", "data": [1]}\n',
     "bad.jsonl: line 1, field 'type': azureml.inference.outputs is an output event"),
    ('{"data": [[1, 2]]}\n{"specversion": "1.0", "type": "azureml.inference.inputs", "data": [[1, 2]]}\n',
     "bad.jsonl: line 2: a collector line in a file whose first line is jsonl"),
])
def test_bad_json_lines_get_one_line_naming_file_line_field_and_fix(tmp_path: Path, content: str,
                                                                    expected: str) -> None:
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(ConfigError) as info:
        read_traffic(tmp_path / "bad.jsonl", AB)
    message = str(info.value)
    assert expected in message and "(fix: " in message and "\n" not in message


@pytest.mark.parametrize(("content", "expected"), [
    ("", "bad.csv: line 1: empty CSV file"),
    ("a,c\n1,2\n", "bad.csv: line 1, field 'b': feature column(s) missing"),
    ("a,b\n1,2\n3\n", "bad.csv: line 3: 1 fields, the header has 2"),
    ("a,b,time\n1,2,soon\n", "bad.csv: line 2, field 'time': 'soon' is not an ISO 8601 time"),
])
def test_bad_csv_gets_one_line(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(ConfigError, match="fix: ") as info:
        read_traffic(tmp_path / "bad.csv", AB)
    assert expected in str(info.value)


def test_nothing_matching_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing\*\.jsonl: no recorded traffic matches this path \(fix: point"):
        read_traffic("nothing*.jsonl", AB, base=tmp_path)


def test_sample_is_bounded_and_keeps_everything_when_small(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"data": [[i, i]]}) + "\n" for i in range(50)))
    assert len(read_traffic(path, AB, sample=50)) == 50
    small = read_traffic(path, AB, sample=7)
    assert len(small) == 7 and small.total == 50
    assert len(set(small.rows[:, 0].tolist())) == 7
    with pytest.raises(ConfigError, match="production.sample"):
        read_traffic(path, AB, sample=0)


def test_sample_is_stratified_by_time_not_by_traffic_order() -> None:
    """A busy day and a quiet week: each stretch keeps its share, the quiet days are not lost."""
    start = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
    busy = start + np.arange(9000) * 8.0              # 9,000 requests in 20 hours
    quiet = start + 86400 + np.arange(1000) * 604.8    # 1,000 over the next 7 days
    times = np.concatenate([quiet, busy])               # file order is not time order
    picks = stratified_indices(times, 1000, seed=3)
    assert len(picks) == 1000 and len(set(picks.tolist())) == 1000
    chosen = times[picks]
    assert np.all(np.diff(chosen) >= 0)
    assert abs(int(np.sum(chosen < start + 86400)) - 900) <= 1
    per_day = np.histogram(chosen[chosen >= start + 86400], bins=7, range=(start + 86400, start + 8 * 86400))[0]
    assert per_day.min() >= 13 and per_day.max() <= 16  # about 100 / 7 each
    assert not np.array_equal(picks, stratified_indices(times, 1000, seed=4))


def test_body_rows_of_a_named_input() -> None:
    assert body_rows({"Inputs": {"data": [[1, 2]]}, "GlobalParameters": 1.0}, AB, key="Inputs.data") == [[1, 2]]
    assert body_rows({"other": 1}, AB) is None


def test_time_falls_back_to_the_hour_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ep" / "blue" / "model_inputs" / "2026" / "02" / "03" / "04"
    folder.mkdir(parents=True)
    (folder / "x.jsonl").write_text(json.dumps(
        {"specversion": "1.0", "type": "azureml.inference.inputs", "data": [{"a": 1, "b": 2}]}) + "\n")
    traffic = read_traffic(tmp_path, AB)
    assert traffic.times[0] == datetime(2026, 2, 3, 4, tzinfo=timezone.utc).timestamp()
