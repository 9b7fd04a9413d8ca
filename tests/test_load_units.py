"""Unit tests of the load suite's pure modules: latency math, schedules, SLO parsing, capacity."""

from __future__ import annotations

import json
import math
import socket
import socketserver
import threading
from pathlib import Path

import pytest

from releasetest.checks.load.latency import LoadResult, summarize, timeline
from releasetest.checks.load.loadgen import Profile, open_schedule, request_bodies, run_load
from releasetest.checks.load.slo import evaluate, failure_message, find_capacity, parse_load
from releasetest.errors import ConfigError
from releasetest.release.manifest import load_release

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "port-weather" / "release.toml"
NAN = math.nan


def _stalled_open_run() -> dict[str, list[float]]:
    """100 req/s for 10 s, 1 ms service, the server frozen from t=5 s to t=6 s; every request sent
    on time (open model). Requests due during the stall answer at 6.001 s."""
    intended = [i / 100 for i in range(1000)]
    done = [max(t, 6.0) + 0.001 if 5.0 <= t < 6.0 else t + 0.001 for t in intended]
    return {"intended": intended, "sent": intended, "done": done, "status": [200] * 1000}


def test_open_model_latency_counts_the_whole_stall() -> None:
    # Due at 5.00, 5.01, ... 5.99: latencies 1001, 991, ..., 11 ms; 900 others at 1 ms.
    # Nearest rank: p95 = 50th slowest-ascending stalled = 501 ms, p99 = 901, p99.9 = 991.
    res = summarize(mode="open", warmup_s=0.0, end_s=10.0, concurrency=16, target_rps=100.0, **_stalled_open_run())
    lat = res.latency_ms
    assert lat["p50"] == pytest.approx(1.0, rel=1e-3)
    assert lat["p90"] == pytest.approx(1.0, rel=1e-3)
    assert lat["p95"] == pytest.approx(501.0, rel=1e-3)
    assert lat["p99"] == pytest.approx(901.0, rel=1e-3)
    assert lat["p99_9"] == pytest.approx(991.0, rel=1e-3)
    assert lat["max"] == pytest.approx(1001.0, rel=1e-3)
    assert res.requests == 1000 and res.errors == {} and res.timeouts == 0


def test_closed_model_sees_the_same_stall_once() -> None:
    # One closed client pacing 10 ms: during the stall it waits on its one request, so the stall
    # is a single sample; 901 samples in all, p99 stays at the service time.
    intended, done = [], []
    t = 0.0
    while t < 10.0:
        end = 6.001 if 5.0 <= t < 6.0 else t + 0.001
        intended.append(t)
        done.append(end)
        t = max(t + 0.01, end)
    res = summarize(mode="closed", intended=intended, sent=intended, done=done, status=[200] * len(done),
                    warmup_s=0.0, end_s=10.0, concurrency=1, target_rps=None)
    assert res.latency_ms["p99"] == pytest.approx(1.0, rel=1e-3)
    assert res.latency_ms["max"] > 990.0  # the stall is there, as one sample of ~1 s


def test_warmup_errors_timeouts_and_rate() -> None:
    run = _stalled_open_run()
    run["status"] = [500 if i % 100 == 7 else 200 for i in range(1000)]
    run["status"][950] = -1  # timed out: recorded at the time it waited, counted apart
    run["status"][951] = 0  # no HTTP answer
    run["sent"] = list(run["intended"])
    run["sent"][952] = NAN  # never sent, answered by its timeout
    run["status"][952] = -1
    res = summarize(mode="open", warmup_s=2.0, end_s=10.0, concurrency=4, target_rps=100.0, **run)
    assert res.requests == 800  # due in [2, 10)
    assert res.errors == {"500": 8, "connection_error": 1}
    assert res.timeouts == 2
    assert res.error_rate == pytest.approx(11 / 800)
    # 800 answers land inside the window; the two timeouts and the connection error are no answer.
    assert res.achieved_rps == pytest.approx(797 / 8.0)
    assert res.findings().to_json()["latency_ms"]["max"] == pytest.approx(1001.0, rel=1e-3)


def test_timeline_is_bounded_and_keeps_the_stall() -> None:
    points = [(i / 1000, 1.0) for i in range(10_000)]
    points[5123] = (5.123, 777.0)
    tl = timeline(points, max_points=500)
    assert len(tl) <= 500
    assert max(v for _, v in tl) == 777.0
    assert timeline([(0.5, 2.0), (0.1, 1.0)]) == [[0.1, 1.0], [0.5, 2.0]]


def test_open_schedule_rate_ramp_and_bounds() -> None:
    flat = open_schedule(50, 2.0)
    assert len(flat) == 100 and flat[1] - flat[0] == pytest.approx(0.02)
    ramp = open_schedule(100, 4.0, ramp_s=2.0)
    assert len(ramp) == pytest.approx(100 * 2 / 2 + 100 * 2, abs=1)  # half a ramp, then full rate
    assert all(b > a for a, b in zip(ramp, ramp[1:], strict=False))
    assert ramp[1] - ramp[0] > ramp[-1] - ramp[-2]  # sparse at first, dense at the end
    assert len(open_schedule(1000, 10.0, max_requests=7)) == 7
    assert open_schedule(0, 10.0) == []


def test_request_bodies_are_real_rows_round_robin() -> None:
    rows = [[float(i), 1.0] for i in range(5)]
    bodies = request_bodies(rows, rows_per_request=2, limit=10)
    assert [json.loads(b)["data"] for b in bodies] == [[[0.0, 1.0], [1.0, 1.0]], [[2.0, 1.0], [3.0, 1.0]],
                                                       [[4.0, 1.0], [0.0, 1.0]]]
    assert len(request_bodies(rows, limit=3)) == 3


def test_generator_times_out_a_server_that_never_answers() -> None:
    """A listening socket nobody accepts from: connections queue in the kernel, nothing answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        res = run_load(f"http://127.0.0.1:{port}/score", {}, [b"{}"],
                       Profile(rate=40, duration_s=0.5, warmup_s=0.0, concurrency=4, timeout_s=0.2))
    assert res.requests == 20 and res.timeouts == 20 and res.errors == {}
    assert res.latency_ms["p50"] >= 200.0  # recorded at the time waited, never dropped


class _FramingServer(socketserver.ThreadingTCPServer):
    """A raw HTTP/1.1 server on 127.0.0.1 answering every POST with ``{"n": <count>}`` in one framing,
    each answer written in small pieces (with TCP_NODELAY) so the generator meets answers that span
    several reads: the head cut in the middle, then the body."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, framing: str) -> None:
        self.framing = framing
        self.answered = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _FramingHandler)


class _FramingHandler(socketserver.StreamRequestHandler):
    server: _FramingServer

    def handle(self) -> None:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        framing = self.server.framing
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            self.rfile.read(length)
            with self.server.lock:
                self.server.answered += 1
                body = json.dumps({"n": self.server.answered}).encode()
            version = b"HTTP/1.0" if framing == "http10" else b"HTTP/1.1"
            if framing == "chunked":
                fields = b"Transfer-Encoding: chunked\r\n"
                payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            elif framing == "until-close":
                fields, payload = b"Connection: close\r\n", body
            else:
                fields = b"Content-Length: %d\r\n" % len(body)
                fields += b"Connection: close\r\n" if framing == "length-close" else b""
                payload = body
            answer = version + b" 200 OK\r\nContent-Type: application/json\r\n" + fields + b"\r\n" + payload
            for piece in (answer[:10], answer[10:30], answer[30:-5], answer[-5:]):
                self.wfile.write(piece)
                self.wfile.flush()
            if framing in ("until-close", "length-close", "http10"):
                return


@pytest.mark.parametrize("framing", ["length-keepalive", "length-close", "chunked", "until-close", "http10"])
def test_generator_reads_every_framing_across_split_reads(framing: str) -> None:
    """Answers delimited by Content-Length (kept alive or closed), chunked, or by the server closing;
    each request must count once, as a 200, whichever way the reads split."""
    server = _FramingServer(framing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        res = run_load(f"http://127.0.0.1:{port}/score", {}, request_bodies([[1.0, 2.0]] * 3),
                       Profile(mode="closed", duration_s=30.0, warmup_s=0.0, concurrency=3, timeout_s=10.0,
                               max_requests=60))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)
    assert res.requests == 60 and res.failed == 0 and res.errors == {}
    assert server.answered == 60


def test_generator_refuses_https_with_a_fix() -> None:
    with pytest.raises(ConfigError, match="engine = \"locust\""):
        run_load("https://example.invalid/score", {}, [b"{}"], Profile(duration_s=0.1))


# -- [load] settings -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def release():  # type: ignore[no-untyped-def]
    return load_release(EXAMPLE)


def test_defaults_derive_from_the_deployment_config(release) -> None:  # type: ignore[no-untyped-def]
    spec = parse_load({}, release, release.stage("production"))  # AKS: scoringTimeoutMs 1000, 2 per container
    assert spec.p99_ms == 1000 and spec.concurrency == 2 and spec.timeout_ms == 2000
    assert spec.rate == 20 and spec.min_rps == pytest.approx(19)
    text = "\n".join(spec.derivation)
    assert "p99_ms = 1000: scoringTimeoutMs of AksDeploymentConfig.yml" in text
    assert "concurrency = 2: maxConcurrentRequestsPerContainer of AksDeploymentConfig.yml" in text
    aci = parse_load({}, release, release.stage("devtest"))
    assert aci.p99_ms == 60000 and aci.concurrency == 16
    assert "Azure ML's default scoring timeout (AciDeploymentConfig.yml sets no scoringTimeoutMs)" in \
        "\n".join(aci.derivation)
    given = parse_load({"rate": 40, "p99_ms": 45}, release, release.stage("devtest"))
    assert given.p99_ms == 45 and "p99_ms = 45: set in [load] of release.toml" in given.derivation


@pytest.mark.parametrize(("table", "message"), [
    ({"concurrency": 5}, "load.concurrency: 5 exceeds maxConcurrentRequestsPerContainer 2 of AksDeploymentConfig.yml"),
    ({"p99ms": 5}, "load.p99ms: unknown key (fix: did you mean 'p99_ms'?)"),
    ({"rate": "fast"}, "load.rate: expected a number, got str 'fast'"),
    ({"rate": 0}, "load.rate: expected a number > 0, got 0 (fix: requests per second production expects"),
    ({"duration_s": 2, "warmup_s": 2}, "load.warmup_s: warm-up 2 s leaves nothing"),
    ({"engine": "jmeter"}, "load.engine: unknown engine 'jmeter'"),
    ({"max_error_rate": 2}, "load.max_error_rate: expected a number >= 0 and <= 1, got 2"),
    ({"warmup_s": -1}, "load.warmup_s: expected a number >= 0, got -1"),
    ({"engine": "locus"}, "load.engine: unknown engine 'locus' (fix: did you mean 'locust'?)"),
    ({"workers": 2}, 'load.workers: remote workers need the Locust engine (fix: set engine = "locust"'),
    ({"engine": "locust", "workers": 2, "locust_processes": 2}, "load.locust_processes: with workers, the load"),
    ({"engine": "locust", "workers": 2, "capacity": True}, "load.capacity: capacity mode runs one Locust per step"),
    ({"engine": "locust", "workers": -1}, "load.workers: expected a whole number >= 0, got -1"),
    ({"engine": "locust", "master_port": 70000}, "load.master_port: expected a whole number > 0 and <= 65535"),
])
def test_bad_load_table_names_key_and_fix(release, table, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as exc:
        parse_load(table, release, release.stage("production"))
    assert message in str(exc.value) and str(exc.value).startswith(str(release.manifest))


def test_workers_make_the_gate_a_locust_master(release) -> None:  # type: ignore[no-untyped-def]
    spec = parse_load({"engine": "locust", "workers": 3, "master_bind": "0.0.0.0", "master_port": 6000},
                      release, release.stage("production"))
    assert spec.master is not None
    assert spec.master.args() == ["--master", "--expect-workers", "3", "--master-bind-host", "0.0.0.0",
                                  "--master-bind-port", "6000", "--expect-workers-max-wait", "60"]
    assert spec.master.join_command() == "releasetest load-worker --master HOST:6000"
    assert parse_load({"engine": "locust"}, release, release.stage("production")).master is None


def _result(p99: float, achieved: float, errors: dict[str, int] | None = None) -> LoadResult:
    return LoadResult(mode="open", target_rps=40.0, measured_s=3.0, requests=120,
                      latency_ms={"p50": 1.0, "p90": 2.0, "p95": 3.0, "p99": p99, "p99_9": p99, "max": p99},
                      achieved_rps=achieved, errors=errors or {}, timeouts=0, timeline=[], concurrency=16)


def test_evaluate_and_message(release) -> None:  # type: ignore[no-untyped-def]
    spec = parse_load({"rate": 40, "p99_ms": 45, "p95_ms": 10}, release, release.stage("devtest"))
    slos = evaluate(spec, _result(60.0, 40.0, {"500": 6}))
    assert [(s["name"], s["passed"]) for s in slos] == [
        ("p95_ms", True), ("p99_ms", False), ("max_error_rate", False), ("min_rps", True)]
    msg = failure_message(slos, _result(60.0, 40.0, {"500": 6}))
    assert msg == ("load SLO failed at 40 req/s open model, 16 connections, 120 requests over 3 s (builtin): "
                   "p99 60 ms exceeds 45 ms; error rate 5.00% exceeds 0.10% (500: 6 of 120)")


def test_capacity_steps_until_an_slo_breaks(release) -> None:  # type: ignore[no-untyped-def]
    spec = parse_load({"rate": 100, "p99_ms": 45, "capacity_step": 2.0}, release, release.stage("devtest"))
    seen: list[float] = []

    def run(rate: float) -> LoadResult:  # the server holds up to 450 req/s
        seen.append(rate)
        return _result(10.0 if rate <= 450 else 300.0, min(rate, 450))

    capacity, steps = find_capacity(spec, run)
    assert seen == [100, 200, 400, 800] and capacity == 400
    assert [s["held"] for s in steps] == [True, True, True, False]
    assert find_capacity(spec, lambda rate: _result(99.0, rate))[0] is None
