"""``releasetest`` command: the release checks and verdict reading a CI step needs outside pytest."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from releasetest.errors import ReleaseTestError
from releasetest.files import sha256_file
from releasetest.release.manifest import load_release
from releasetest.settings import TARGETS
from releasetest.verdict.decision import summary_line
from releasetest.verdict.history import Store, check_verdict, read_verdict
from releasetest.verdict.seal import verdict_digest
from releasetest.verdict.signing import SealRefused

DEFAULT_VERDICT = "releasetest-out/verdict.json"


def _store(args: argparse.Namespace) -> Store:
    """The history store: --store, else $RELEASETEST_HISTORY, else the pytest run's default."""
    return Store(Path(args.store or os.environ.get("RELEASETEST_HISTORY") or "releasetest-out/history"))


def _cmd_check(args: argparse.Namespace) -> int:
    release = load_release(args.manifest)
    if args.stage:
        release.stage(args.stage)
    print(f"release {release.name} id {release.release_id}")
    for art in release.artifacts:
        for f in art.files:
            print(f"  {art.name}:{art.version}  {f.sha256}  {f.path}")
    print(f"  entry script {release.inference.entry_script}  {release.entry_script_sha256}")
    for name, stage in release.stages.items():
        print(f"  stage {name}: {stage.deployment.path.name} -> promote to {stage.promote_to}")
    return 0


def _cmd_hash(args: argparse.Namespace) -> int:
    for path in args.files:
        print(f"{sha256_file(Path(path))}  {path}")
    return 0


def _cmd_verdict(args: argparse.Namespace) -> int:
    """Print the verdict's summary; exit 0 only for an unedited (and, with a key, signed) PROMOTE
    bound to the given release."""
    path = Path(args.verdict)
    verdict = read_verdict(path)
    check_verdict(verdict, str(path))
    print(summary_line(verdict))
    for reason in verdict.get("reasons", []):
        print(f"  - {reason.splitlines()[0]}")
    if args.manifest:
        current = load_release(args.manifest).release_id
        tested = (verdict.get("release") or {}).get("id")
        if current != tested:
            print(f"release changed since the test: verdict is for {tested}, the manifest now gives {current}")
            return 1
    return 0 if verdict.get("decision") == "PROMOTE" else 1


def _cmd_keygen(args: argparse.Namespace) -> int:
    """Make an Ed25519 key pair for signing verdicts; prints where it is and its id, never the key."""
    from releasetest.verdict.signing import keygen

    out = Path(args.out)
    if out.exists():
        raise ReleaseTestError(f"{out} exists; choose another --out (an existing key is never overwritten)")
    key = keygen(out)
    print(f"private key: {out} (mode 0600; store it as a CI secret: RELEASETEST_SIGNING_KEY or "
          "RELEASETEST_SIGNING_KEY_FILE)")
    print(f"public key:  {out}.pub (for the promotion job: RELEASETEST_VERIFY_KEY or RELEASETEST_VERIFY_KEY_FILE)")
    print(f"key id:      {key.key_id}")
    return 0


def _cmd_azureml_plan(args: argparse.Namespace) -> int:
    """Print the v2 endpoint and deployment a stage maps to, with its drift warnings; deploys nothing."""
    from releasetest.azureml.mapping import plan_for

    release = load_release(args.manifest)
    print(plan_for(release, release.stage(args.stage), name=args.endpoint_name).to_yaml(), end="")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Re-render the HTML report (and Markdown summary) from a verdict file."""
    from releasetest.verdict.report import write_report
    from releasetest.verdict.summary import summary_markdown

    path = Path(args.verdict)
    verdict = read_verdict(path)
    ok = verdict.get("digest") == verdict_digest(verdict)
    out = Path(args.output) if args.output else path.parent / "report.html"
    write_report(verdict, out, digest_ok=ok if verdict.get("digest") else None)
    print(f"report: {out}")
    if args.markdown:
        Path(args.markdown).write_text(summary_markdown(verdict, out.name), encoding="utf-8")
        print(f"summary: {args.markdown}")
    if not ok:
        print("warning: the verdict's digest does not match its content (edited after the run?)", file=sys.stderr)
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    """Past verdicts with approvals and promotions, oldest first."""
    rows = _store(args).history()
    if args.release:
        rows = [r for r in rows if r["release"] == args.release]
    if not rows:
        print(f"no verdicts recorded in {_store(args).root}")
        return 0
    print(f"{'when':25} {'release':28} {'stage':11} {'decision':8} {'approved by':20} promoted")
    for r in rows[-args.last:]:
        name = f"{r['release']}@{r['release_id'].split(':', 1)[-1][:12]}"
        print(f"{str(r['when']):25} {name:28} {str(r['stage']):11} {str(r['decision']):8} "
              f"{', '.join(r['approved_by']) or '-':20} {'; '.join(r['promoted']) or '-'}")
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    from releasetest.verdict.promotion import approve

    record = approve(Path(args.verdict), _store(args), args.by, args.note)
    print(f"approved {record['release_id']} ({record['stage']} -> {record['promote_to']}) by {record['by']} "
          f"at {record['at']}")
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from releasetest.verdict.promotion import promote

    done = promote(Path(args.verdict), args.from_stage, args.to_stage, _store(args),
                   manifest=Path(args.manifest) if args.manifest else None, target=args.target, url=args.url,
                   keep=args.keep, by=args.by, port=args.port, ready_timeout=args.ready_timeout,
                   workspace_config=Path(args.workspace_config) if args.workspace_config else None,
                   endpoint_name=args.endpoint_name, key_env=args.key_env,
                   expect_headers=dict(args.expect_header or ()))
    rec = done.record
    ep = rec["endpoint"]
    print(f"promoted {rec['release']}@{rec['release_id'].split(':', 1)[1][:12]} {rec['from']} -> {rec['to']} "
          f"({rec['target']}, {rec['deployment_config']}): {ep['scoring_uri']}"
          + (f", approved by {', '.join(rec['approved_by'])}" if rec["approved_by"] else ""))
    if done.endpoint is not None:
        print(f"endpoint kept running (stop it with: kill -TERM -{ep.get('pid')})")
    elif rec["target"] == "local":
        print("deployed, answered liveness and the golden rows, and stopped (use --keep to leave it running)")
    elif rec["target"] == "url":
        shown = ", ".join(f"{k}: {v}" for k, v in ep["verified"]["headers"].items())
        print("the endpoint answered liveness and the golden rows as recorded at training time"
              + (f" ({shown})" if shown else ""))
    elif rec["target"] == "azureml":
        print(f"endpoint {ep['endpoint']}: traffic {ep['traffic']} (was {ep['traffic_before'] or 'none'})")
        if ep["rollback"]:
            print(f"previous deployment(s) kept: {', '.join(ep['kept_deployments'])}; roll back with: "
                  f"{ep['rollback']}")
    return 0


def _header(value: str) -> tuple[str, str]:
    """``NAME=VALUE`` of --expect-header; header names compare case-insensitively."""
    name, sep, want = value.partition("=")
    if not sep or not name.strip() or not want.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=VALUE (e.g. azureml-model-deployment=blue)")
    return name.strip().lower(), want.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="releasetest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a release manifest and print its release id")
    p.add_argument("manifest", nargs="?", default="release.toml")
    p.add_argument("--stage", help="also check this stage exists")
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("hash", help="print sha256 digests to pin in the manifest")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=_cmd_hash)
    p = sub.add_parser("verdict", help="print a verdict; exit 0 only if it is PROMOTE")
    p.add_argument("verdict", nargs="?", default=DEFAULT_VERDICT)
    p.add_argument("--manifest", help="also require the verdict to be for this release as it is now")
    p.set_defaults(func=_cmd_verdict)
    p = sub.add_parser("keygen", help="make an Ed25519 key pair to sign verdicts and approvals")
    p.add_argument("--out", default="releasetest-signing.pem", help="private key file; the public key goes to "
                   "<out>.pub (default: releasetest-signing.pem)")
    p.set_defaults(func=_cmd_keygen)
    p = sub.add_parser("azureml-plan", help="print the Azure ML v2 endpoint and deployment YAML a stage maps to")
    p.add_argument("manifest", nargs="?", default="release.toml")
    p.add_argument("--stage", default="devtest", help="stage whose v1 deployment config is mapped")
    p.add_argument("--endpoint-name", help="endpoint name (default: <stage>-<release short id>)")
    p.set_defaults(func=_cmd_azureml_plan)
    store_help = "history directory (default: $RELEASETEST_HISTORY, else releasetest-out/history)"
    p = sub.add_parser("report", help="re-render the HTML report from a verdict")
    p.add_argument("verdict", nargs="?", default=DEFAULT_VERDICT)
    p.add_argument("-o", "--output", help="HTML file to write (default: report.html beside the verdict)")
    p.add_argument("--markdown", help="also write the Markdown summary here")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("history", help="list past verdicts, approvals and promotions")
    p.add_argument("--store", help=store_help)
    p.add_argument("--release", help="only this release name")
    p.add_argument("--last", type=int, default=50, help="show the last N verdicts (default 50)")
    p.set_defaults(func=_cmd_history)
    p = sub.add_parser("approve", help="record a reviewer's approval of a PROMOTE verdict")
    p.add_argument("verdict", nargs="?", default=DEFAULT_VERDICT)
    p.add_argument("--by", required=True, help="who approves (recorded in the history)")
    p.add_argument("--note", help="free text kept with the approval")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=_cmd_approve)
    p = sub.add_parser("promote", help="deploy the tested release to the next stage, if its verdict allows it",
                       epilog="exit status: 0 promoted and recorded; 3 refused (verdict, release, approval, or an "
                              "endpoint that does not serve the release), nothing recorded; 2 error")
    p.add_argument("--from", dest="from_stage", required=True, help="stage the verdict is for, e.g. devtest")
    p.add_argument("--to", dest="to_stage", required=True, help="stage to deploy, e.g. production")
    p.add_argument("--verdict", default=DEFAULT_VERDICT)
    p.add_argument("--manifest", help="release manifest (default: the one the verdict names)")
    p.add_argument("--target", choices=TARGETS, default="local",
                   help="local: deploy with azmlinfsrv on 127.0.0.1; azureml: blue/green into the stage's "
                        "Azure ML endpoint; url: verify an endpoint deployed by something else serves the release")
    p.add_argument("--url", help="scoring URI of the target stage's endpoint, for --target url: it must answer "
                   "liveness and the golden rows as recorded at training time before anything is recorded")
    p.add_argument("--key-env", default="RELEASETEST_ENDPOINT_KEY", metavar="VAR",
                   help="environment variable holding that endpoint's key (default: RELEASETEST_ENDPOINT_KEY)")
    p.add_argument("--expect-header", action="append", type=_header, metavar="NAME=VALUE",
                   help="for --target url: a header the endpoint's answer must carry, e.g. "
                        "azureml-model-deployment=r-f3e14ad970f8 (repeatable)")
    p.add_argument("--workspace-config", help="Azure ML config.json for --target azureml "
                   "(default: aml_config/config.json beside the manifest)")
    p.add_argument("--endpoint-name", help="Azure ML endpoint of the stage (default: <release>-<stage>)")
    p.add_argument("--keep", action="store_true", help="leave the local endpoint running")
    p.add_argument("--port", type=int, default=0, help="port of the local endpoint (0 picks a free one)")
    p.add_argument("--ready-timeout", type=float, default=120.0, help="seconds the endpoint gets to be ready")
    p.add_argument("--by", help="who or what promotes (recorded)")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=_cmd_promote)
    args = parser.parse_args(argv)
    from releasetest.verdict.promotion import PromotionRefused

    try:
        return args.func(args)
    except (PromotionRefused, SealRefused) as exc:
        print(f"releasetest: refused: {exc}", file=sys.stderr)
        return 3
    except (ReleaseTestError, OSError) as exc:
        print(f"releasetest: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
