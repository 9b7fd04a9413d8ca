"""``releasetest`` command: the release checks and verdict reading a CI step needs outside pytest."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ReleaseTestError
from .gate import summary_line
from .spec import load_release, sha256_file


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
    """Print the verdict's summary; exit 0 only for a PROMOTE bound to the given release."""
    path = Path(args.verdict)
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseTestError(f"{path}: no verdict file (run pytest --release-stage first)") from None
    except ValueError as exc:
        raise ReleaseTestError(f"{path}: not a verdict file: {exc}") from None
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


def _cmd_azureml_plan(args: argparse.Namespace) -> int:
    """Print the v2 endpoint and deployment a stage maps to, with its drift warnings; deploys nothing."""
    from .azureml.mapping import plan_for

    release = load_release(args.manifest)
    print(plan_for(release, release.stage(args.stage), name=args.endpoint_name).to_yaml(), end="")
    return 0


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
    p.add_argument("verdict", nargs="?", default="releasetest-out/verdict.json")
    p.add_argument("--manifest", help="also require the verdict to be for this release as it is now")
    p.set_defaults(func=_cmd_verdict)
    p = sub.add_parser("azureml-plan", help="print the Azure ML v2 endpoint and deployment YAML a stage maps to")
    p.add_argument("manifest", nargs="?", default="release.toml")
    p.add_argument("--stage", default="devtest", help="stage whose v1 deployment config is mapped")
    p.add_argument("--endpoint-name", help="endpoint name (default: <stage>-<release short id>)")
    p.set_defaults(func=_cmd_azureml_plan)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ReleaseTestError, OSError) as exc:
        print(f"releasetest: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
