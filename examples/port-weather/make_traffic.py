"""Write recorded production traffic for the port-weather example, in the Azure ML data
collector's format, from rows of its licensed data that are not in the holdout.

Every row of weather.csv is either training data (the earliest 80 % by time) or holdout (the
latest 20 %, from 2016-07-24 05:00), so the traffic is drawn from training rows: those of the
holdout's calendar window one year earlier (2015-07-24 to 2015-12-31), so production sees the
same season the holdout covers but never a holdout row. The requests are dated two years after
the observations (2017, after the model was trained): each day the port's planning system
sends the previous 24 hours of observations in one request, a few minutes past 06:00 UTC.

The collector rolls files by hour under
``{endpoint}/{deployment}/{model_inputs|model_outputs}/{yyyy}/{MM}/{dd}/{HH}/{instance_id}.jsonl``;
each line is one collected event (fields as documented for custom logging: ``specversion``,
``id``, ``source``, ``type``, ``datacontenttype``, ``time``, ``data``, ``correlationid``,
``xrequestid``, ``modelversion``, ``collectdatatype``, ``agent``, ``contentrange``). The inputs'
``data`` is the request's rows as records; the outputs' ``data`` is what the production
release (this example's model, through the same scaler, float32 cast and onnxruntime path as
score.py) answered for each row. Deterministic: the same weather.csv gives the same files.

Usage:
    python examples/port-weather/make_traffic.py [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import joblib
import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
FEATURES = ["Temperature_C", "Humidity", "Wind_speed_kmph", "Wind_bearing_degrees", "Visibility_km",
            "Pressure_millibars", "Current_weather_condition"]
WINDOW = ("2015-07-24 05:00:00", "2016-01-01 00:00:00")
YEARS_LATER = 2
ENDPOINT, DEPLOYMENT = "port-weather", "blue"
SOURCE = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mlops-rg/providers/"
          "Microsoft.MachineLearningServices/workspaces/mlops-ws/onlineEndpoints/"
          f"{ENDPOINT}/deployments/{DEPLOYMENT}")
AGENT = "monitoring-sdk/0.1.2"


def predict(rows: list[list[float]]) -> tuple[list[int], list[list[float]]]:
    """The production release's answers: the serving path of score.py, from the saved files."""
    scaler = joblib.load(os.path.join(HERE, "models", "model-scaler.pkl"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(HERE, "models", "support-vector-classifier.onnx"), so,
                                providers=["CPUExecutionProvider"])
    x = scaler.transform(np.asarray(rows, dtype=np.float64)).astype(np.float32)
    label, proba = sess.run(["label", "probabilities"], {"float_input": x})
    return [int(v) for v in label], [[float(format(p, ".9g")) for p in pair] for pair in proba.tolist()]


def event(kind: str, when: datetime, data: list, cid: str, rng: random.Random) -> dict:
    body = json.dumps(data, separators=(",", ":"))
    return {
        "specversion": "1.0",
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "source": SOURCE,
        "type": f"azureml.inference.{kind}",
        "datacontenttype": "application/json",
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": data,
        "correlationid": cid,
        "xrequestid": cid,
        "modelversion": "default",
        "collectdatatype": "pandas.core.frame.DataFrame",
        "agent": AGENT,
        "contentrange": f"bytes 0-{len(body) - 1}/{len(body)}",
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(HERE, "data", "weather.csv"))
    ap.add_argument("--out", default=os.path.join(HERE, "data", "production"))
    args = ap.parse_args(argv)
    with open(args.data, newline="", encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["Timestamp"])
    n_train = int(len(rows) * 0.8)
    holdout_start = rows[n_train]["Timestamp"]
    chosen = [r for r in rows[:n_train] if WINDOW[0] <= r["Timestamp"] < WINDOW[1]]
    assert chosen and chosen[-1]["Timestamp"] < holdout_start

    by_day: dict[str, list[dict]] = defaultdict(list)
    for r in chosen:
        by_day[r["Timestamp"][:10]].append(r)
    rng = random.Random(24)
    root = os.path.join(args.out, ENDPOINT, DEPLOYMENT)
    shutil.rmtree(root, ignore_errors=True)
    n_rows = 0
    for day, batch in sorted(by_day.items()):
        observed = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        sent = (observed.replace(year=observed.year + YEARS_LATER) + timedelta(days=1, hours=6)
                + timedelta(seconds=rng.randint(20, 25 * 60)))
        records = [{f: float(r[f]) for f in FEATURES} for r in batch]
        labels, probabilities = predict([[rec[f] for f in FEATURES] for rec in records])
        answers = [{"predictions": lab, "probabilities": p} for lab, p in zip(labels, probabilities, strict=True)]
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        answered = sent + timedelta(milliseconds=rng.randint(15, 180))
        instance = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for collection, kind, when, data in (("model_inputs", "inputs", sent, records),
                                             ("model_outputs", "outputs", answered, answers)):
            folder = os.path.join(root, collection, when.strftime("%Y/%m/%d/%H"))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{instance}.jsonl"), "w", encoding="utf-8", newline="\n") as fh:
                fh.write(json.dumps(event(kind, when, data, cid, rng), separators=(",", ":")) + "\n")
        n_rows += len(batch)
    print(f"{n_rows} rows in {len(by_day)} daily requests ({chosen[0]['Timestamp']} .. {chosen[-1]['Timestamp']} "
          f"observations, sent {YEARS_LATER} years later) under {root}")


if __name__ == "__main__":
    main()
