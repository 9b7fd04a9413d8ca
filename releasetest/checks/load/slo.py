"""Load SLOs: the ``[load]`` table of release.toml, defaults from the stage, and the checks.

A release team states the traffic production expects and the service level it must hold. What
the team does not state is derived from the stage's own deployment config, because that is the
contract Azure ML enforces anyway: ``scoringTimeoutMs`` cuts off slower answers, so it bounds
p99; ``maxConcurrentRequestsPerContainer`` is how many requests one container takes at once, so
it caps the generator's concurrency. A v2 deployment's ``max_concurrent_requests_per_instance``
sets the concurrency the same way; Azure admits twice that per instance and answers 429 beyond, so
a ``[load] concurrency`` above it is allowed (a burst test) and its 429s are errors named for the
cap. Every value says where it came from (``derivation``), and that text goes into the verdict,
so a reviewer sees why the bar sits where it does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.azureml.v2 import DeploymentV2
from releasetest.checks.load.latency import LoadResult
from releasetest.checks.load.loadgen import Profile, open_schedule
from releasetest.checks.load.locust_engine import Master, require
from releasetest.errors import ConfigError
from releasetest.release.manifest import Release, Stage
from releasetest.tables import Key, Table, check

DEFAULT_RATE = 20.0
DEFAULT_DURATION_S = 10.0
DEFAULT_WARMUP_S = 2.0
DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_ERROR_RATE = 0.001
#: Achieved rate must reach this share of the target unless min_rps is given.
DEFAULT_MIN_RATE_SHARE = 0.95
#: Client timeout beyond the server's own scoring timeout, so the server's answer (504) is seen.
TIMEOUT_GRACE_MS = 1000
ENGINES = ("builtin", "locust")

#: The [load] table. Keys without a default are derived from the stage in :func:`parse_load`.
LOAD = Table({
    "rate": Key("number", "requests per second production expects (open model)", default=DEFAULT_RATE, gt=0),
    "duration_s": Key("number", "length of a run, warm-up included", default=DEFAULT_DURATION_S, gt=0),
    "warmup_s": Key("number", "first seconds left out of the figures; 0 for none", ge=0, example=DEFAULT_WARMUP_S),
    "ramp_s": Key("number", "seconds over which the rate rises from 0 to rate; 0 for none", default=0.0, ge=0),
    "concurrency": Key("int", "most requests in flight at once", gt=0, example=DEFAULT_CONCURRENCY),
    "timeout_ms": Key("number", "client timeout per request, from its intended start", gt=0, example=2000),
    "rows_per_request": Key("int", "holdout rows in each request body", default=1, gt=0),
    "p95_ms": Key("number", "bound on the 95th percentile latency", gt=0, example=200),
    "p99_ms": Key("number", "bound on the 99th percentile latency", gt=0, example=500),
    "max_error_rate": Key("number", "largest share of requests that may fail (non-2xx, no answer, timeout)",
                          default=DEFAULT_MAX_ERROR_RATE, ge=0, le=1),
    "min_rps": Key("number", "smallest achieved rate that passes", gt=0, example=19),
    "engine": Key("str", "the load generator", default="builtin", choices=ENGINES),
    "locust_processes": Key("int", "Locust worker processes on this machine (engine = locust)", default=1, gt=0),
    "workers": Key("int", "remote Locust workers the gate's Locust master waits for (engine = locust); 0 runs "
                   "Locust on this machine only", default=0, ge=0),
    "master_bind": Key("str", "address the Locust master listens on for workers; 0.0.0.0 for other machines",
                       default="127.0.0.1"),
    "master_port": Key("int", "port the Locust master listens on for workers", default=5557, gt=0, le=65535),
    "workers_wait_s": Key("number", "longest wait for all workers to join before the run fails", default=60.0,
                          gt=0),
    "capacity": Key("bool", "also step the rate up until an SLO breaks", default=False),
    "capacity_step": Key("number", "factor between capacity steps, e.g. 1.5 to raise the rate by half each step",
                         default=1.5, gt=1),
    "capacity_max_rps": Key("number", "highest rate capacity mode tries (default: 20 times rate)", gt=0),
    "capacity_step_s": Key("number", "length of each capacity step (default: 5 s or duration_s)", gt=0),
})


@dataclass(frozen=True)
class LoadSpec:
    rate: float
    duration_s: float
    warmup_s: float
    ramp_s: float
    concurrency: int
    timeout_ms: float
    rows_per_request: int
    p95_ms: float | None
    p99_ms: float
    max_error_rate: float
    min_rps: float
    engine: str
    locust_processes: int
    master: Master | None
    capacity: bool
    capacity_step: float
    capacity_max_rps: float
    capacity_step_s: float
    derivation: tuple[str, ...]
    #: Why the endpoint answers 429 (a v2 stage's admission limit), for the failure message.
    refusal: str | None = None

    def profile(self, mode: str = "open", rate: float | None = None, duration_s: float | None = None) -> Profile:
        duration = duration_s if duration_s is not None else self.duration_s
        return Profile(mode=mode, rate=rate if rate is not None else self.rate, duration_s=duration,
                       warmup_s=min(self.warmup_s, duration / 2), ramp_s=min(self.ramp_s, duration / 2),
                       concurrency=self.concurrency, timeout_s=self.timeout_ms / 1000.0)

    def measured_requests(self) -> int:
        """Requests the window schedules after warm-up: what its figures (and memory growth) cover."""
        p = self.profile()
        return sum(t >= p.warmup_s for t in open_schedule(p.rate, p.duration_s, p.ramp_s, p.max_requests))

    def min_rps_at(self, rate: float) -> float:
        """The achieved-rate bound at another target rate (capacity steps scale it)."""
        return self.min_rps * rate / self.rate


def parse_load(table: dict[str, Any], release: Release, stage: Stage) -> LoadSpec:
    """The ``[load]`` table, checked, with every unstated value derived and explained."""
    m = release.manifest
    v = check(table, LOAD, m, "load.")
    engine = v["engine"]
    if engine == "locust":
        require(m)
    master = _master(v, table, m)
    dc = stage.deployment
    dc_name = dc.path.name
    why: list[str] = []

    def given(key: str) -> bool:
        if key in table:
            why.append(f"{key} = {table[key]}: set in [load] of {m.name}")
            return True
        return False

    rate = float(v["rate"])
    if not given("rate"):
        why.append(f"rate = {DEFAULT_RATE:g} req/s: releasetest default; set [load] rate to the traffic "
                   "production expects")
    duration = float(v["duration_s"])
    warmup = float(v["warmup_s"] if v["warmup_s"] is not None else min(DEFAULT_WARMUP_S, duration / 5))
    if warmup >= duration:
        raise ConfigError(m, "load.warmup_s", f"warm-up {warmup:g} s leaves nothing of duration_s {duration:g} s",
                          "make warmup_s shorter than duration_s")
    given("duration_s")
    given("warmup_s")
    cap = dc.max_concurrent_requests_per_container
    refusal = None
    if isinstance(dc, DeploymentV2):
        admits = dc.admits_per_instance
        refusal = (f"429 is the answer beyond the {admits} scoring requests one instance admits at once "
                   f"(2 x max_concurrent_requests_per_instance {cap} of {dc_name})")
        if given("concurrency"):
            concurrency = int(table["concurrency"])
            if concurrency > admits:
                why.append(f"concurrency {concurrency} is beyond the {admits} requests one instance of {dc_name} "
                           "admits at once: requests beyond get 429 (Too many pending requests) and count as errors")
        else:
            concurrency = dc.max_concurrent_requests_per_container
            why.append(f"concurrency = {cap}: max_concurrent_requests_per_instance of {dc_name} (what one instance "
                       f"scores at once; it admits {admits} and answers 429 beyond; further requests wait in the "
                       "generator's queue and that wait counts)")
    elif "concurrency" in table:
        if cap is not None and table["concurrency"] > cap:
            raise ConfigError(m, "load.concurrency",
                              f"{table['concurrency']} exceeds maxConcurrentRequestsPerContainer {cap} of {dc_name}",
                              f"lower it to {cap} or raise maxConcurrentRequestsPerContainer for stage {stage.name}")
        given("concurrency")
        concurrency = int(table["concurrency"])
    elif cap is not None:
        concurrency = int(cap)
        why.append(f"concurrency = {cap}: maxConcurrentRequestsPerContainer of {dc_name} (one container takes "
                   "no more at once; further requests wait in the generator's queue and that wait counts)")
    else:
        concurrency = DEFAULT_CONCURRENCY
        why.append(f"concurrency = {DEFAULT_CONCURRENCY}: releasetest default ({dc_name} sets no "
                   "maxConcurrentRequestsPerContainer)")
    if given("p99_ms"):
        p99 = float(table["p99_ms"])
    else:
        p99 = float(dc.scoring_timeout_ms)
        src = (f"scoringTimeoutMs of {dc_name}" if dc.scoring_timeout_from_config else
               f"Azure ML's default scoring timeout ({dc_name} sets no scoringTimeoutMs)")
        why.append(f"p99_ms = {p99:g}: {src}; an answer slower than that is cut off by the service")
    if given("timeout_ms"):
        timeout = float(table["timeout_ms"])
    else:
        timeout = float(dc.scoring_timeout_ms + TIMEOUT_GRACE_MS)
        why.append(f"timeout_ms = {timeout:g}: the scoring timeout plus {TIMEOUT_GRACE_MS} ms, so the "
                   "service's own timeout answer is seen")
    p95 = float(table["p95_ms"]) if given("p95_ms") else None
    max_err = float(v["max_error_rate"])
    if not given("max_error_rate"):
        why.append(f"max_error_rate = {DEFAULT_MAX_ERROR_RATE:g}: releasetest default")
    if given("min_rps"):
        min_rps = float(table["min_rps"])
    else:
        min_rps = rate * DEFAULT_MIN_RATE_SHARE
        why.append(f"min_rps = {min_rps:g}: {DEFAULT_MIN_RATE_SHARE:.0%} of rate")
    given("engine")
    return LoadSpec(
        rate=rate, duration_s=duration, warmup_s=warmup, ramp_s=float(v["ramp_s"]),
        concurrency=concurrency, timeout_ms=timeout, rows_per_request=v["rows_per_request"],
        p95_ms=p95, p99_ms=p99, max_error_rate=max_err, min_rps=min_rps, engine=engine,
        locust_processes=v["locust_processes"], master=master, capacity=v["capacity"],
        capacity_step=float(v["capacity_step"]),
        capacity_max_rps=float(v["capacity_max_rps"] if v["capacity_max_rps"] is not None else rate * 20),
        capacity_step_s=float(v["capacity_step_s"] if v["capacity_step_s"] is not None else min(duration, 5.0)),
        derivation=tuple(why), refusal=refusal)


def _master(v: dict[str, Any], table: dict[str, Any], manifest: Path) -> Master | None:
    """The distributed run ``workers`` asks for, or None; settings that cannot go with it fail here."""
    workers = v["workers"]
    if not workers:
        return None
    if v["engine"] != "locust":
        raise ConfigError(manifest, "load.workers", "remote workers need the Locust engine",
                          'set engine = "locust" in [load], or remove workers')
    if "locust_processes" in table:
        raise ConfigError(manifest, "load.locust_processes", "with workers, the load comes from the workers",
                          "remove locust_processes; start more workers (each with its own --processes) instead")
    if v["capacity"]:
        raise ConfigError(manifest, "load.capacity", "capacity mode runs one Locust per step, and workers "
                          "leave when a run ends", "run capacity mode without workers")
    return Master(workers=workers, bind=v["master_bind"], port=v["master_port"], wait_s=float(v["workers_wait_s"]))


def evaluate(spec: LoadSpec, result: LoadResult, rate: float | None = None) -> list[dict[str, Any]]:
    """Each SLO as ``{name, bound, value, passed}`` (the findings' ``slo`` list)."""
    min_rps = spec.min_rps_at(rate) if rate is not None else spec.min_rps
    checks: list[tuple[str, float, float, bool]] = []
    if spec.p95_ms is not None:
        checks.append(("p95_ms", spec.p95_ms, result.latency_ms["p95"], result.latency_ms["p95"] <= spec.p95_ms))
    checks.append(("p99_ms", spec.p99_ms, result.latency_ms["p99"], result.latency_ms["p99"] <= spec.p99_ms))
    checks.append(("max_error_rate", spec.max_error_rate, round(result.error_rate, 6),
                   result.error_rate <= spec.max_error_rate))
    checks.append(("min_rps", round(min_rps, 3), round(result.achieved_rps, 2), result.achieved_rps >= min_rps))
    if result.requests == 0:
        checks.append(("requests", 1, 0, False))
    return [{"name": n, "bound": b, "value": v, "passed": ok} for n, b, v, ok in checks]


def failure_message(slos: list[dict[str, Any]], result: LoadResult, refusal: str | None = None) -> str:
    """One line a reviewer understands: which SLO broke, by how much, at what load; ``refusal``
    (:attr:`LoadSpec.refusal`) says where 429s among the errors come from."""
    parts = []
    for s in slos:
        if s["passed"]:
            continue
        if s["name"] == "max_error_rate":
            by_status = ", ".join(f"{k}: {v}" for k, v in result.errors.items())
            if result.timeouts:
                by_status += (", " if by_status else "") + f"timeouts: {result.timeouts}"
            by_status += f" of {result.requests}" + (f"; {refusal}" if refusal and "429" in result.errors else "")
            parts.append(f"error rate {s['value']:.2%} exceeds {s['bound']:.2%} ({by_status})")
        elif s["name"] == "min_rps":
            parts.append(f"achieved {s['value']:g} req/s is below {s['bound']:g} req/s")
        elif s["name"] == "requests":
            parts.append("no request was measured")
        else:
            parts.append(f"{s['name'][:-3]} {s['value']:g} ms exceeds {s['bound']:g} ms")
    load = (f"{result.target_rps:g} req/s open model" if result.target_rps else f"{result.concurrency} clients closed")
    return (f"load SLO failed at {load}, {result.concurrency} connections, {result.requests} requests over "
            f"{result.measured_s:g} s ({result.engine}): " + "; ".join(parts))


def find_capacity(
    spec: LoadSpec, run: Callable[[float], LoadResult], start_rps: float | None = None,
) -> tuple[float | None, list[dict[str, Any]]]:
    """Step the rate up by ``capacity_step`` until an SLO breaks; the highest rate that held.

    ``run(rate)`` performs one bounded step. Returns ``(capacity, steps)``; capacity is None
    when even the first step broke an SLO.
    """
    rate = start_rps or spec.rate
    best: float | None = None
    steps: list[dict[str, Any]] = []
    while rate <= spec.capacity_max_rps:
        result = run(rate)
        slos = evaluate(spec, result, rate)
        held = all(s["passed"] for s in slos)
        steps.append({"rate": round(rate, 2), "achieved_rps": round(result.achieved_rps, 2),
                      "p99_ms": result.latency_ms["p99"], "error_rate": round(result.error_rate, 6), "held": held})
        if not held:
            break
        best = rate
        rate *= spec.capacity_step
    return best, steps
