"""A scoring endpoint in this process that answers with the example release's recorded predictions.

For the tests of the plugin's wiring (options, markers, hooks, the end of the run, partial runs,
the xdist hand-over), which run the gate in-process with ``pytester`` and point it at this server
with ``--release-target url``: no azmlinfsrv to start, no child interpreter. It speaks what the url
target checks at readiness and the smoke suite asks: ``GET /`` (liveness), ``GET /swagger.json``
(v2, and v3 with ``?version=3``: what azmlinfsrv 1.5.1 published for the example, tests/data) and
``POST /score`` with ``{"data": rows}``, answered ``{"predictions", "probabilities"}`` from
``data/expected_predictions.csv`` for holdout rows and from the recorded ``model_outputs`` for
recorded production rows (class 1 for a row it has no record of).
Behaviour about the endpoint itself stays end to end against the real server.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLE, loopback_server

DATA = Path(__file__).resolve().parent / "data"


@functools.cache
def _example_answers() -> dict[tuple[float, ...], tuple[int, list[float]]]:
    """The example's answers, read once per process: its files are the repository's, never edited."""
    return _recorded(EXAMPLE)


def _recorded(release: Path) -> dict[tuple[float, ...], tuple[int, list[float]]]:
    """Holdout row (its features as floats) -> recorded (label, probabilities)."""
    with open(release / "data" / "holdout.csv") as rows, open(release / "data" / "expected_predictions.csv") as exp:
        holdout = list(csv.reader(rows))[1:]
        expected = list(csv.reader(exp))[1:]
    answers = {tuple(float(v) for v in row[1:-1]): (int(want[0]), [float(p) for p in want[1:]])
               for row, want in zip(holdout, expected, strict=True)}
    return {**_production(release, len(holdout[0]) - 2), **answers}


def _production(release: Path, width: int) -> dict[tuple[float, ...], tuple[int, list[float]]]:
    """Recorded production row -> the answer production recorded for it (``model_outputs``), so the
    shadow suite finds this target answering as production did."""
    from releasetest.release.manifest import load_release
    from releasetest.release.traffic import read_traffic

    loaded = load_release(release / "release.toml")
    spec = loaded.production
    if spec is None or loaded.data is None:
        return {}
    traffic = read_traffic(spec.traffic, loaded.data.features, sample=10**9, base=release, key=spec.key,
                           outputs=spec.outputs)
    assert traffic.rows.shape[1] == width
    return {tuple(float(v) for v in row): (int(answer["predictions"]), [float(p) for p in answer["probabilities"]])
            for row, answer in zip(traffic.rows, traffic.recorded, strict=True) if isinstance(answer, dict)}


@dataclass
class RecordedTarget:
    """The running server: its address, the requests it got, and ``flip``, which turns every
    predicted label to the other class (a golden mismatch: the deploy fails), and ``retrained``, rows
answered with the other class."""

    url: str
    requests: list[str]
    flip: bool = False
    #: The bodies of the POSTs, in order.
    bodies: list[bytes] = field(default_factory=list)
    #: Holdout rows (their features as floats) whose label is flipped: a retrained model that
    #: answers most rows, and the golden ones, as the tested one does.
    retrained: frozenset[tuple[float, ...]] = frozenset()

    @property
    def args(self) -> tuple[str, ...]:
        return ("--release-target", "url", f"--release-url={self.url}/score")


@contextmanager
def recorded_target(release: Path = EXAMPLE) -> Iterator[RecordedTarget]:
    """The server on a free loopback port, stopped on exit."""
    answers = _example_answers() if release == EXAMPLE else _recorded(release)
    swagger = {version: (DATA / f"swagger-v{version}.json").read_bytes() for version in (2, 3)}
    state = RecordedTarget("", [])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        #: The headers and the body go out in two writes: with Nagle's algorithm on, the body waits
        #: for the client's delayed ACK of the headers, 40 ms per request on a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            """Quiet: the tests read the gate's output, not this server's."""

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append(f"GET {self.path}")
            if self.path == "/":
                self._send(200, b'"Healthy"')
            elif self.path.startswith("/swagger.json"):
                self._send(200, swagger[3 if "version=3" in self.path else 2])
            else:
                self._send(404, b'{"message": "not found"}')

        def do_POST(self) -> None:  # noqa: N802
            state.requests.append(f"POST {self.path}")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.bodies.append(body)
            try:
                rows = json.loads(body)["data"]
                keys = [tuple(float(v) for v in row) for row in rows]
                found = [answers.get(key, (1, [0.5, 0.5])) for key in keys]
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                self._send(400, json.dumps({"message": f"bad input: {exc}"}).encode())
                return
            labels = [1 - label if state.flip or key in state.retrained else label
                      for key, (label, _) in zip(keys, found, strict=True)]
            self._send(200, json.dumps({"predictions": labels, "probabilities": [p for _, p in found]}).encode())

    with loopback_server(Handler) as server:
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield state
