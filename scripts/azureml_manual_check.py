"""Manual check of the Azure ML target against a REAL workspace (costs money; never run in CI).

    pip install -e '.[azureml]'
    az login            # or AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET of a service principal
    python scripts/azureml_manual_check.py examples/port-weather/release.toml --stage devtest \
        --workspace-config path/to/config.json [--keep]

Steps, each timed: token from DefaultAzureCredential, workspace reachable, plan and drift, deploy
(model register-or-reuse with the sha256 tag, endpoint, deployment, keys, readiness with the
golden rows), one scoring request with the ``azureml-model-deployment`` header, teardown (endpoint
deleted unless --keep). Exit status 0 when every step passed. What it cannot show on the stand-in
and should be looked at here: real provisioning time, the model mount layout the entry script
sees ($AZUREML_MODEL_DIR), liveness on ``/`` of a managed endpoint, and the server log text.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from releasetest.errors import ReleaseTestError
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--stage", default="devtest")
    parser.add_argument("--workspace-config", type=Path, default=None,
                        help="default: aml_config/config.json next to the manifest")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    from azure.identity import DefaultAzureCredential

    from releasetest.azureml.workspace import read_workspace_config
    from releasetest.endpoint.azureml import AzureMLEndpoint
    from releasetest.endpoint.client import ScoringClient

    def step(name: str, started: float) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {name}", flush=True)

    t0 = time.monotonic()
    release = load_release(args.manifest)
    stage = release.stage(args.stage)
    assert release.data is not None, "the manifest needs a [data] table for the golden rows"
    holdout = load_holdout(release.data)
    golden = holdout.golden(release.data.golden_rows)
    credential = DefaultAzureCredential()
    credential.get_token("https://management.azure.com/.default")
    step("token from DefaultAzureCredential", t0)
    endpoint = AzureMLEndpoint(release, stage, golden, log_path=Path("releasetest-out") / f"azureml-{stage.name}.log",
                               workspace_config=args.workspace_config, ready_timeout_s=args.ready_timeout,
                               credential=credential)
    ws = read_workspace_config(endpoint.workspace_config)
    print(f"workspace {ws['workspace_name']} (resource group {ws['resource_group']})")
    print(endpoint.plan.to_yaml())
    ok = False
    try:
        handle = endpoint.deploy()
        step(f"deployed and ready: {handle.scoring_uri}", t0)
        with ScoringClient(handle, timeout=handle.timeout_s) as client:
            got = client.score(golden[0]).predictions
        print(f"golden rows -> {got} (expected {golden[1]})")
        ok = got == golden[1]
    except ReleaseTestError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept: endpoint {endpoint.endpoint_name}; delete it with "
                  f"az ml online-endpoint delete -n {endpoint.endpoint_name} --yes")
        else:
            endpoint.teardown()
            step("endpoint deleted", t0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
