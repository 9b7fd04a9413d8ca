"""The sandbox's cost on the local endpoint's cold start and teardown.

Deploys the example release's local endpoint ``--repeats`` times in the sandbox this machine
makes (:func:`releasetest.endpoint.sandbox.probe`) and as many times without one, interleaved so
both see the same machine, and prints the cold start (launch to first golden prediction, the
endpoint's ``ready_s``) and the teardown time of each, with the medians.

    python benchmarks/bench_sandbox.py               # 3 + 3 deploys
    python benchmarks/bench_sandbox.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from releasetest.endpoint.local import LocalEndpoint
from releasetest.endpoint.sandbox import Isolation, probe
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "port-weather"


def deploy_once(isolation: Isolation, log: Path) -> tuple[float, float]:
    """(cold start, teardown) in seconds for one deploy of the example."""
    release = load_release(EXAMPLE / "release.toml")
    assert release.data is not None
    endpoint = LocalEndpoint(release, release.stage("devtest"), load_holdout(release.data).golden(5),
                             log_path=log, isolation=isolation)
    try:
        ready = float(endpoint.deploy().info["ready_s"])
    finally:
        began = time.monotonic()
        endpoint.teardown()
    return ready, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sandboxed, bare = probe(), Isolation("none", "benchmark baseline")
    if sandboxed.kind == "none":
        raise SystemExit(f"nothing to compare: {sandboxed.line()}")
    results: dict[str, list[tuple[float, float]]] = {sandboxed.kind: [], "none": []}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        for i in range(args.repeats):
            for isolation in (sandboxed, bare):
                results[isolation.kind].append(deploy_once(isolation, Path(tmp) / f"server-{i}.log"))
    print(sandboxed.line())
    for kind, runs in results.items():
        print(f"{kind:8} cold start (s): {', '.join(f'{r:.2f}' for r, _ in runs)}; "
              f"median {statistics.median(r for r, _ in runs):.2f}; "
              f"teardown (s): {', '.join(f'{t:.2f}' for _, t in runs)}")


if __name__ == "__main__":
    main()
