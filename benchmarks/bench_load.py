"""Load generator benchmark: built-in generator vs wrk vs Locust FastHttpUser, in one run.

Against the same local endpoint (the example release under azmlinfsrv, 1 and 2 gunicorn
workers), each tool drives 16 connections back to back (closed model, the only model wrk has)
for the same time, one after the other, repeated and interleaved; the table shows medians.
Generator CPU is the tool's own CPU time (user + system) per request: for the built-in generator
measured inside its process around the run (no interpreter start-up), for wrk and Locust the
child process's whole rusage (Locust's includes its ~1 s start-up, stated in the table).

Run on a quiet machine (other load on the CPU lowers every figure, not always equally):

    python benchmarks/bench_load.py                      # 10 s per run, 5 rounds, 1 and 2 workers
    python benchmarks/bench_load.py --duration 5 --repeats 1 --workers 1

Needs wrk (``apt-get install wrk``) and Locust (``pip install 'releasetest[locust]'``); a
missing tool is left out of the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "examples" / "port-weather" / "release.toml"
BODIES = 512


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _steal_s() -> float:
    """CPU time the hypervisor gave to others (the 'steal' column of /proc/stat), in seconds."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _bodies() -> list[bytes]:
    from releasetest.checks.load.loadgen import request_bodies
    from releasetest.release.data import load_holdout
    from releasetest.release.manifest import load_release

    release = load_release(MANIFEST)
    assert release.data is not None
    return request_bodies(load_holdout(release.data).rows.tolist(), limit=BODIES)


# -- the built-in generator (in a child process, like the others) ----------------------------------

def child_builtin(uri: str, duration: float, connections: int) -> None:
    from releasetest.checks.load.loadgen import Profile, run_load

    bodies = _bodies()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    res = run_load(uri, {}, bodies, Profile(mode="closed", duration_s=duration, warmup_s=0.0,
                                            concurrency=connections, timeout_s=30.0))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(json.dumps({"rps": res.achieved_rps, "p50": res.latency_ms["p50"], "p99": res.latency_ms["p99"],
                      "requests": res.requests, "cpu_s": cpu, "errors": res.failed}))


def run_builtin(uri: str, duration: float, connections: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", uri, str(duration), str(connections)],
                         capture_output=True, text=True, check=True, timeout=duration + 120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    got["cpu_ms_per_req"] = got.pop("cpu_s") * 1000 / max(1, got["requests"])
    return got


# -- wrk -------------------------------------------------------------------------------------------

WRK_LUA = """
local bodies = {%s}
local reqs = {}
for i, b in ipairs(bodies) do
  reqs[i] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, b)
end
local n = 0
request = function()
  n = n %% #reqs + 1
  return reqs[n]
end
"""


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def run_wrk(uri: str, duration: float, connections: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(WRK_LUA % ", ".join(json.dumps(b.decode()) for b in _bodies()))
    c0 = _children_cpu()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", "-s", str(script),
                          uri], capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    cpu = _children_cpu() - c0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            # Anchored: a "+/- Stdev" column such as "71.50%" must not pass for the 50% line.
            "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
            "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
            "requests": requests, "cpu_ms_per_req": cpu * 1000 / max(1, requests),
            "errors": int(errors.group(1)) if errors else 0}


# -- Locust FastHttpUser ---------------------------------------------------------------------------

LOCUSTFILE = """
import json
from pathlib import Path
from locust import FastHttpUser, task

BODIES = json.loads((Path(__file__).parent / "bodies.json").read_text())
HEADERS = {"Content-Type": "application/json"}


class Bench(FastHttpUser):
    i = 0

    @task
    def score(self):
        self.i += 1
        self.client.post(%r, data=BODIES[self.i %% len(BODIES)], headers=HEADERS)
"""


def run_locust(uri: str, duration: float, connections: int, workdir: Path) -> dict[str, Any]:
    from releasetest.checks.load.latency import LatencyRecorder

    base, path = uri.rsplit("/", 1)
    (workdir / "bodies.json").write_text(json.dumps([b.decode() for b in _bodies()]))
    (workdir / "bench_locustfile.py").write_text(LOCUSTFILE % ("/" + path))
    c0 = _children_cpu()
    subprocess.run([sys.executable, "-m", "locust", "-f", str(workdir / "bench_locustfile.py"), "--headless",
                    "-u", str(connections), "-r", str(connections), "-t", f"{int(duration)}s", "--host", base,
                    "--json-file", str(workdir / "locust"), "--only-summary", "--loglevel", "ERROR"],
                   capture_output=True, text=True, cwd=workdir, timeout=duration + 120)
    cpu = _children_cpu() - c0
    entries = json.loads((workdir / "locust.json").read_text())
    rec = LatencyRecorder()
    requests = failures = 0
    for e in entries:
        requests += e["num_requests"]
        failures += e["num_failures"]
        for ms, n in e["response_times"].items():
            for _ in range(n):
                rec.record_ms(float(ms))
    span = max(e["last_request_timestamp"] for e in entries) - min(e["start_time"] for e in entries)
    return {"rps": requests / span, "p50": rec.percentile_ms(50), "p99": rec.percentile_ms(99),
            "requests": requests, "cpu_ms_per_req": cpu * 1000 / max(1, requests), "errors": failures}


# -- driver ----------------------------------------------------------------------------------------

def endpoint(workers: int, workdir: Path) -> Any:
    from releasetest.endpoint.local import LocalEndpoint
    from releasetest.release.data import load_holdout
    from releasetest.release.manifest import load_release

    release = load_release(MANIFEST)
    assert release.data is not None
    stage = release.stage("devtest")
    stage = dataclasses.replace(stage, deployment=dataclasses.replace(stage.deployment, cpu=float(workers)))
    return LocalEndpoint(release, stage, load_holdout(release.data).golden(5), log_path=workdir / "server.log")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_builtin(args.child[0], float(args.child[1]), int(args.child[2]))
        return
    tools = {"builtin": run_builtin}
    if shutil.which("wrk"):
        tools["wrk"] = run_wrk  # type: ignore[assignment]
    try:
        import locust  # noqa: F401

        tools["locust"] = run_locust  # type: ignore[assignment]
    except ImportError:
        pass
    rows = []
    steal0 = _steal_s()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        workdir = Path(tmp)
        for workers in (int(w) for w in args.workers.split(",")):
            ep = endpoint(workers, workdir)
            handle = ep.deploy()
            try:
                runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
                for rep in range(args.repeats):
                    order = list(tools) if rep % 2 == 0 else list(reversed(tools))
                    for name in order:
                        fn = tools[name]
                        got = (fn(handle.scoring_uri, args.duration, args.connections) if name == "builtin"
                               else fn(handle.scoring_uri, args.duration, args.connections, workdir))  # type: ignore[call-arg]
                        runs[name].append(got)
                        print(f"workers={workers} {name} rep {rep + 1}: " + json.dumps(
                            {k: round(v, 3) for k, v in got.items()}), file=sys.stderr, flush=True)
                        time.sleep(0.5)  # let the server's accept queue settle between tools
            finally:
                ep.teardown()
            med = {t: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for t, rs in runs.items()}
            # "vs wrk" is the median of per-round ratios: each tool ran right next to wrk in a round,
            # so a slow minute of the shared machine moves both sides of a ratio, not one median.
            ratios = ({t: {k: statistics.median(r[k] / w[k] for r, w in zip(rs, runs["wrk"], strict=True))
                           for k in ("rps", "p50", "p99")} for t, rs in runs.items()} if "wrk" in runs else {})
            for name, m in med.items():
                rows.append((workers, name, m, ratios.get(name)))
    steal = _steal_s() - steal0
    print(f"\n{args.connections} connections, {args.duration:g} s per run, median of {args.repeats} rounds "
          f"(tools interleaved, 'vs wrk' = median of per-round ratios); generator CPU per request = the "
          f"tool's user+sys CPU / requests; CPU time stolen by the hypervisor during the benchmark: {steal:.1f} s\n")
    print("| server workers | generator | req/s | vs wrk | p50 ms | p99 ms | p50 vs wrk | p99 vs wrk "
          "| CPU ms/req | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for workers, name, m, ratio in rows:
        def rel(key: str, ratio: dict[str, float] | None = ratio) -> str:
            return f"{ratio[key]:.0%}" if ratio else "-"
        label = name + (" (incl. start-up)" if name == "locust" else "")
        print(f"| {workers} | {label} | {m['rps']:.0f} | {rel('rps')} | {m['p50']:.2f} | {m['p99']:.2f} | "
              f"{rel('p50')} | {rel('p99')} | {m['cpu_ms_per_req']:.3f} | {m['errors']:.0f} |")


if __name__ == "__main__":
    main()
