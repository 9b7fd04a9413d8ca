"""releasetest command: the release checks and verdict reading a CI step needs outside pytest."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from releasetest import __version__
from releasetest.errors import ConfigError, ReleaseTestError
from releasetest.files import sha256_file, short_id, write_json_atomic
from releasetest.release.manifest import load_release
from releasetest.settings import DEFAULT_CONFIG, DEFAULT_HISTORY, DEFAULT_VERDICT, OPTION, add_options
from releasetest.verdict.decision import summary_line
from releasetest.verdict.history import Store, check_verdict, read_verdict
from releasetest.verdict.seal import verdict_digest
from releasetest.verdict.signing import SealRefused

EXIT_CODES = """exit status:
  0  success; for the verdict command: a PROMOTE of this release
  1  the verdict is BLOCK, or is for another release than the manifest now gives
  2  bad input: a missing or malformed file, manifest or argument
  3  refused: promotion or approval not allowed, verdict edited or badly signed
  4  (the gate, pytest --release-stage) a configuration error, pytest's usage error"""


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _store(args: argparse.Namespace) -> Store:
    """The history store: --store, else $RELEASETEST_HISTORY, else the pytest run's default."""
    return Store(Path(args.store or os.environ.get(OPTION["history"].env) or DEFAULT_HISTORY))


def _cmd_check(args: argparse.Namespace) -> int:
    release = load_release(args.manifest)
    if args.stage:
        release.stage(args.stage)
    if args.json:
        _print_json({"release": release.name, "id": release.release_id,
                     "artifacts": [{"name": art.name, "version": art.version, "path": str(f.path), "sha256": f.sha256}
                                   for art in release.artifacts for f in art.files],
                     "entry_script": {"path": str(release.inference.entry_script),
                                      "sha256": release.entry_script_sha256},
                     "stages": {name: {"deployment_config": stage.deployment.path.name, "promote_to": stage.promote_to}
                                for name, stage in release.stages.items()}})
        return 0
    print(f"release {release.name} id {release.release_id}")
    for art in release.artifacts:
        for f in art.files:
            print(f"  {art.name}:{art.version}  {f.sha256}  {f.path}")
    print(f"  entry script {release.inference.entry_script}  {release.entry_script_sha256}")
    for name, stage in release.stages.items():
        print(f"  stage {name}: {stage.deployment.path.name} -> "
              + (f"promote to {stage.promote_to}" if stage.promote_to else "last stage, no promotion"))
    return 0


def _cmd_hash(args: argparse.Namespace) -> int:
    if args.write:
        changed = write_digests(Path(args.write))
        if not changed:
            print(f"{args.write}: an Azure ML v2 release without [[artifacts]]: its deployment YAML names the model "
                  "and the release id binds the model's bytes, so there is nothing to pin")
        for path, (old, new) in changed.items():
            print(f"{args.write}: {path}: {'pinned' if not old else 'changed'} {old[:12] or '(none)'} -> {new[:12]}"
                  if old != new else f"{args.write}: {path}: unchanged")
        if changed:
            print(f"{sum(o != n for o, n in changed.values())} of {len(changed)} pinned digests changed")
    for path in args.files:
        print(f"{sha256_file(Path(path))}  {path}")
    if not args.files and not args.write:
        raise ReleaseTestError("hash: name the files to hash, or --write release.toml to update its pinned digests")
    return 0


#: One inline file entry of [[artifacts]]: ``{ path = "...", sha256 = "..." }`` (either order).
_FILE_ENTRY = re.compile(r"\{[^{}]*\bpath\s*=\s*\"(?P<path>[^\"]+)\"[^{}]*\}")
_SHA = re.compile(r'(\bsha256\s*=\s*")([^"]*)(")')


def write_digests(manifest: Path) -> dict[str, tuple[str, str]]:
    """Set each ``[[artifacts]]`` file's ``sha256`` in ``manifest`` to the file's digest, in place
    (comments and layout kept; written atomically); returns ``{path: (old, new)}``, empty for a v2
    release that pins nothing (``[[artifacts]]`` are optional there: the release id binds the model)."""
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReleaseTestError(f"{manifest}: cannot read it: {exc.strerror}") from None
    changed: dict[str, tuple[str, str]] = {}

    def pin(entry: re.Match[str]) -> str:
        path = entry["path"]
        target = manifest.parent / path
        if not target.is_file():
            raise ReleaseTestError(f"{manifest}: artifacts files path {path!r}: no such file next to the manifest "
                                   "(write it first, e.g. with train.py, or fix the path)")
        digest = sha256_file(target)
        body = entry.group(0)
        old = _SHA.search(body)
        changed[path] = (old.group(2) if old else "", digest)
        if old:
            return _SHA.sub(lambda m: f"{m.group(1)}{digest}{m.group(3)}", body, count=1)
        return body[:-1].rstrip() + f', sha256 = "{digest}" }}'

    updated = _FILE_ENTRY.sub(pin, text)
    if not changed:
        if _is_v2(text):
            return changed
        raise ReleaseTestError(f"{manifest}: no [[artifacts]] files = [{{ path = ..., sha256 = ... }}] entries to pin")
    if updated != text:
        tmp = manifest.with_name(manifest.name + ".tmp")
        tmp.write_text(updated, encoding="utf-8")
        tmp.replace(manifest)
    return changed


def _is_v2(manifest_text: str) -> bool:
    """Whether a manifest's stages name v2 deployment YAML (``deployment =``) rather than v1 configs."""
    import tomllib

    try:
        stages = tomllib.loads(manifest_text).get("stages")
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(stages, dict) and any(isinstance(s, dict) and "deployment" in s for s in stages.values())


def _cmd_init(args: argparse.Namespace) -> int:
    """Write a new release folder to fill in, and the commands that take it to its first gate."""
    from releasetest.scaffold import init_release

    folder = Path(args.folder)
    for path in init_release(folder, args.name, v2=args.v2):
        print(f"wrote {path}")
    pin = "" if args.v2 else "releasetest hash --write release.toml && "
    print(f"next: cd {folder} && python train.py && {pin}pytest --release-stage devtest "
          "(then replace each FILL IN with your own model)")
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    """Write the training data's profile: the drift suite's reference ([drift] reference)."""
    from releasetest.checks.drift.profile import profile_csv, write_profile

    if args.features:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
    else:
        release = load_release(args.manifest, verify_artifacts=False)
        if release.data is None:
            raise ConfigError(release.manifest, "data", "has no [data] features to profile",
                              "name the columns with --features a,b,c")
        features = list(release.data.features)
    categorical = [f.strip() for f in (args.categorical or "").split(",") if f.strip()]
    doc = profile_csv(Path(args.data), features, categorical=categorical)
    write_profile(doc, Path(args.out))
    kinds = ", ".join(f"{name} ({entry['kind']})" for name, entry in doc["features"].items())
    print(f"{args.out}: {doc['source']['rows']} rows of {args.data}: {kinds}")
    return 0


def _cmd_verdict(args: argparse.Namespace) -> int:
    """Print the verdict's summary; exit 0 only for an unedited (and, with a key, signed) PROMOTE
    bound to the given release."""
    path = Path(args.verdict)
    verdict = read_verdict(path)
    check_verdict(verdict, str(path))
    changed = None
    if args.manifest:
        changed = load_release(args.manifest).changed_since(verdict.get("release") or {})
    if args.json:
        _print_json({"summary": summary_line(verdict), "decision": verdict.get("decision"),
                     "partial": bool(verdict.get("partial")), "release": verdict.get("release"),
                     "stage": verdict.get("stage"), "promote_to": verdict.get("promote_to"),
                     "reasons": verdict.get("reasons", []), "release_changed": changed})
    else:
        print(summary_line(verdict))
        for reason in verdict.get("reasons", []):
            print(f"  - {reason.splitlines()[0]}")
        if changed:
            print(changed)
    if changed:
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
    """The v2 resources a stage maps to, named as the gate or promotion will create them; deploys nothing."""
    from releasetest.azureml.mapping import default_purpose, plan_for

    release = load_release(args.manifest)
    stage = release.stage(args.stage)
    purpose = args.purpose or default_purpose(release, stage.name)
    plan = plan_for(release, stage, purpose, name=args.endpoint_name)
    if not args.out:
        print(plan.to_yaml(), end="")
        return 0
    for path in plan.write_files(Path(args.out)):
        print(path)
    print(f"# {purpose}: endpoint {plan.endpoint['name']}, deployment {plan.deployment['name']}; create in this "
          "order with az ml model/environment/online-endpoint/online-deployment create -f", file=sys.stderr)
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Write the CLI v2 release of a v1 release, and check that it reads as one."""
    from releasetest.azureml.migrate import migrate

    release = load_release(args.manifest)
    written = migrate(release, Path(args.out))
    for path in written:
        print(path)
    migrated = load_release(written[-1])
    print(f"# v2 release {migrated.name}@{migrated.short_id} (was v1 {release.short_id}); gate it with "
          f"pytest --release-config {written[-1]} --release-stage {next(iter(migrated.stages))}", file=sys.stderr)
    return 0


def _cmd_trigger(args: argparse.Namespace) -> int:
    """Print what started this CI run as RELEASETEST_TRIGGER (and RELEASETEST_ARTIFACT for a model
    version), in the CI's own syntax for setting variables of later steps."""
    from releasetest.pipeline import describe_trigger

    values = describe_trigger(args.ci, os.environ)
    for name, value in values.items():
        print(f"##vso[task.setvariable variable={name}]{value}" if args.ci == "azure" else f"{name}={value}")
    return 0


def _cmd_dispatch(args: argparse.Namespace) -> int:
    """Start the GitHub release pipeline for a registry event GitHub cannot see (repository_dispatch)."""
    from releasetest.pipeline import dispatch_payload, send_dispatch

    body = dispatch_payload(args.event, {"model": args.model, "version": args.version, "image": args.image})
    url = send_dispatch(args.repo, body, os.environ)
    print(f"sent {args.event} {json.dumps(body['client_payload'], sort_keys=True)} to {url}")
    return 0


def _cmd_workspace_config(args: argparse.Namespace) -> int:
    """Write the Azure ML config.json promote needs from the pipeline's variables."""
    from releasetest.pipeline import workspace_config

    out = Path(args.out)
    write_json_atomic(out, workspace_config(os.environ))
    print(f"workspace config: {out}")
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
    """Each release's path through the stages (gated, approved, promoted, rolled back), oldest first."""
    from releasetest.checks.registry import FIGURE_UNITS
    from releasetest.verdict.formatting import fmt, plural

    if args.prune:
        pruned = _store(args).prune_predictions(args.keep_predictions)
        for path in pruned.removed:
            print(f"deleted {path}")
        print(f"pruned {_store(args).root / 'predictions'}: deleted {plural(len(pruned.removed), 'file')} "
              f"({pruned.freed_bytes / 1e6:.1f} MB); kept the predictions of {plural(pruned.kept, 'release')} (those "
              f"a gate may still compare with, and the last {args.keep_predictions} gated)")
        return 0
    releases = [r for r in _store(args).releases() if not args.release or r["release"] == args.release]
    # The last N by their latest step (a release gated long ago and promoted just now is recent).
    recent = sorted(releases, key=lambda r: str(r["events"][-1].get("at") or ""))[-args.last:] if args.last else []
    releases = [r for r in releases if any(r is x for x in recent)]
    if args.json:
        _print_json(releases)
        return 0
    if not releases:
        print(f"no releases recorded in {_store(args).root}")
        return 0
    for rel in releases:
        label = f"{rel['release']}@{short_id(rel['release_id'])}" if not str(rel["release_id"]).startswith(
            "manifest:") else f"{rel['release']} (not loaded)"
        print(f"{label}  {', '.join(rel['artifacts']) or '-'}  now: {rel['status']}")
        for e in rel["events"]:
            what = f"{e['decision']}{' (partial)' if e['partial'] else ''}" if e["step"] == "gated" else ""
            figures = ", ".join(f"{k} {fmt(v)}{FIGURE_UNITS.get(k, '')}" for k, v in (e.get("figures") or {}).items())
            extra = [f"at {e['where']}" if e["where"] else "", figures, f"why: {e['why']}" if e.get("why") else "",
                     f"ran: {e['command']}" if e.get("command") else "", f"({e['note']})" if e.get("note") else ""]
            if e.get("unverified"):
                extra.insert(0, f"[{str(e['unverified']).upper()}: not signed by the configured key]")
            print("  ".join([f"  {str(e['at']):25} {e['step']:11} {str(e['stage'] or '-'):11} {what:8} "
                             f"by {e['by'] or '-'}", *filter(None, extra)]))
            for line in e.get("beside") or ():
                print(f"  {'':25} {line}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    record = _store(args).record_rollback(args.stage, args.by, args.note)
    print(f"recorded: {record['stage']} rolled back from {record['release']}@"
          f"{short_id(record['release_id'])} (promoted at {record['promotion_at']}) by "
          f"{record['by']} at {record['at']}")
    if record["command"]:
        print(f"the promotion's rollback command: {record['command']}")
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    from releasetest.promotion import approve

    record = approve(Path(args.verdict), _store(args), args.by, args.note)
    print(f"approved {record['release_id']} ({record['stage']} -> {record['promote_to'] or 'no next stage'}) "
          f"by {record['by']} "
          f"at {record['at']}")
    return 0


def _mirror_arguments(p: argparse.ArgumentParser) -> None:
    """promote --target azureml only: the mirror phase before the traffic shift (docs/azureml.md)."""
    from releasetest.azureml import mirror

    p.add_argument("--mirror-percent", type=int, metavar="PERCENT",
                   help="mirror this share of the live traffic to the new deployment and compare its answers "
                        f"before the shift (at most {mirror.MAX_MIRROR_PERCENT}; default "
                        f"{mirror.DEFAULT_MIRROR_PERCENT}: no mirror phase)")
    p.add_argument("--mirror-requests", type=int, metavar="N",
                   help=f"mirrored requests to compare (default {mirror.DEFAULT_MIRROR_REQUESTS})")
    p.add_argument("--mirror-timeout", type=float, metavar="SECONDS",
                   help="the longest the mirror window stays open; fewer requests compared by then keeps the "
                        f"traffic where it was (default {mirror.DEFAULT_MIRROR_TIMEOUT:g})")
    p.add_argument("--mirror-collector", type=Path, metavar="DIR",
                   help="read the data collector's output from this folder (holding <endpoint>/<deployment>/"
                        "model_outputs) instead of the workspace's default datastore, modelDataCollector/")
    p.add_argument("--mirror-replay", type=Path, metavar="FILE",
                   help="JSON lines of request bodies sent to the endpoint during the window (thin live traffic)")


def _cmd_promote(args: argparse.Namespace) -> int:
    from releasetest.promotion import PromoteOptions, promote

    options = PromoteOptions.from_arguments({**vars(args), "expect_headers": tuple(args.expect_headers or ())})
    to_stage = args.to_stage
    if to_stage is None:
        recorded = read_verdict(Path(args.verdict))
        to_stage = recorded.get("promote_to")
        if not to_stage:
            raise ReleaseTestError(f"{args.verdict}: stage {recorded.get('stage')!r} has no promote_to in the "
                                   "manifest (the last stage): give --to STAGE")
        print(f"promoting to {to_stage} (stage {recorded.get('stage')}'s promote_to, as the verdict records it)")
    done = promote(args.verdict, args.from_stage, to_stage, _store(args), options)
    rec = done.record
    ep = rec["endpoint"]
    print(f"promoted {rec['release']}@{short_id(rec['release_id'])} {rec['from']} -> {rec['to']} "
          f"({rec['target']}, {rec['deployment_config']}): {ep['scoring_uri']}"
          + (f", approved by {', '.join(rec['approved_by'])}" if rec["approved_by"] else ""))
    if done.endpoint is not None:
        print(f"endpoint kept running (stop it with: kill -TERM -{ep.get('pid')})")
    elif rec["target"] == "local":
        print("deployed, answered liveness and the golden rows, and stopped (use --keep to leave it running)")
    elif rec["target"] == "url":
        shown = ", ".join(f"{k}: {v}" for k, v in ep["verified"]["headers"].items())
        held = ep["verified"]["holdout"]
        print("the endpoint answered liveness and the golden rows as recorded at training time"
              + (f" ({shown})" if shown else "")
              + f", and {held['agreement']:.4f} of {held['rows']} holdout rows as recorded "
                f"(parity {held['required']:g})")
    elif rec["target"] == "azureml":
        print(f"endpoint {ep['endpoint']}: traffic {ep['traffic']} (was {ep['traffic_before'] or 'none'})")
        if ep.get("mirror"):
            m = ep["mirror"]
            print(f"mirror: {m['requests']} request(s), {m['rows']} row(s) compared before the shift, "
                  + (f"mean absolute change {m['mean_abs_change']:.4g}" if m["mean_abs_change"] is not None
                     else f"{m['share_changed']:.1%} changed label (bound {m['max_changed']:.1%})")
                  + "".join(f"; {side} {m[side]['errors']} of {m[side]['requests']} failed"
                            + (f", p95 {m[side]['latency_ms']['p95']:g} ms" if m[side]["latency_ms"] else "")
                            for side in ("live", "new")))
        if ep["rollback"]:
            print(f"previous deployment(s) kept: {', '.join(ep['kept_deployments'])}; roll back with: "
                  f"{ep['rollback']}")
    return 0


def _cmd_load_worker(args: argparse.Namespace) -> int:
    """One Locust worker for a gate whose ``[load] workers`` is set; ends when the gate's run does."""
    from releasetest.checks.load.locust_engine import run_worker

    return run_worker(args.master)


def _header(value: str) -> tuple[str, str]:
    """``NAME=VALUE`` of --expect-header; header names compare case-insensitively."""
    name, sep, want = value.partition("=")
    if not sep or not name.strip() or not want.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=VALUE (e.g. azureml-model-deployment=blue)")
    return name.strip().lower(), want.strip()


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options; those a command shares with the gate come from the option table
    (:func:`releasetest.settings.add_options`), so their defaults, parsers and help match the plugin's."""
    parser = argparse.ArgumentParser(prog="releasetest", description=__doc__, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"releasetest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (releasetest COMMAND --help for its options)")
    manifest_help = f"the release manifest (default: {DEFAULT_CONFIG})"
    verdict_help = f"the verdict file (default: {DEFAULT_VERDICT})"
    json_help = "print JSON instead of text"

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("check", "validate a release manifest and print its release id")
    p.add_argument("manifest", nargs="?", default=DEFAULT_CONFIG, help=manifest_help)
    p.add_argument("--stage", help="also check this stage exists")
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=_cmd_check)
    p = command("init", "write a new release folder to fill in: manifest, config files, score.py and train.py")
    p.add_argument("folder", metavar="DIR", help="the folder to create (must not exist, or be empty)")
    p.add_argument("--name", help="the release's name (default: the folder's name)")
    p.add_argument("--v2", action="store_true", help="Azure ML v2 files (endpoint.yml, blue-deployment.yml) "
                   "instead of v1 (InferenceConfig.yml, deployment configs)")
    p.set_defaults(func=_cmd_init)
    p = command("hash", "print sha256 digests to pin in the manifest, or update them in it (--write)")
    p.add_argument("files", nargs="*", help="files to hash (artifacts, entry script)")
    p.add_argument("--write", metavar="MANIFEST", help="update the sha256 of every [[artifacts]] file in this "
                   "manifest (e.g. release.toml) to the file's digest, in place, and say which changed")
    p.set_defaults(func=_cmd_hash)
    p = command("profile", "write the training data's profile, the drift suite's reference")
    p.add_argument("data", help="the training rows (CSV with a header)")
    p.add_argument("--out", default="reference.json", help="the profile to write (default: reference.json)")
    p.add_argument("--features", help="columns to profile, comma-separated (default: the manifest's data.features)")
    p.add_argument("--categorical", help="columns to profile as categories, comma-separated (default: whole "
                   "numbers with at most 20 distinct values)")
    p.add_argument("--manifest", default=DEFAULT_CONFIG, help=manifest_help)
    p.set_defaults(func=_cmd_profile)
    p = command("verdict", "print a verdict; exit 0 only if it is PROMOTE")
    p.add_argument("verdict", nargs="?", default=DEFAULT_VERDICT, help=verdict_help)
    p.add_argument("--manifest", help="also require the verdict to be for this release as it is now")
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=_cmd_verdict)
    p = command("keygen", "make an Ed25519 key pair to sign verdicts and approvals")
    p.add_argument("--out", default="releasetest-signing.pem", help="private key file; the public key goes to "
                   "<out>.pub (default: releasetest-signing.pem)")
    p.set_defaults(func=_cmd_keygen)
    p = command("azureml-plan", "print the Azure ML v2 endpoint and deployment YAML a stage maps to")
    p.add_argument("manifest", nargs="?", default=DEFAULT_CONFIG, help=manifest_help)
    p.add_argument("--stage", default="devtest", help="stage whose v1 deployment config is mapped")
    p.add_argument("--for", dest="purpose", choices=("gate", "promote"),
                   help="name the resources as the gate's azureml target (<stage>-<short id>, deployment blue, "
                        "deleted after the run) or promote --target azureml (<release>-<stage>, deployment "
                        "r-<short id>) creates them (default: promote for a stage another stage promotes to)")
    p.add_argument("--endpoint-name", help="endpoint name (overrides the rule of --for)")
    p.add_argument("--out", help="write model.yml, environment.yml, endpoint.yml and deployment.yml here "
                   "(for az ml ... create -f) instead of printing endpoint and deployment")
    p.set_defaults(func=_cmd_azureml_plan)
    p = command("migrate", "write the Azure ML CLI v2 release (endpoint and deployment YAML) of a v1 release")
    p.add_argument("manifest", nargs="?", default=DEFAULT_CONFIG, help=manifest_help)
    p.add_argument("--out", required=True, help="a new folder for the v2 release (model/, src/, environment/, "
                   "<stage>-endpoint.yml, <stage>-deployment.yml, data, release.toml)")
    p.set_defaults(func=_cmd_migrate)
    p = sub.add_parser("trigger", help="print what started this CI run (RELEASETEST_TRIGGER, RELEASETEST_ARTIFACT)")
    p.add_argument("--ci", choices=("github", "azure"), required=True,
                   help="github: NAME=VALUE lines for $GITHUB_ENV; azure: ##vso[task.setvariable] lines")
    p.set_defaults(func=_cmd_trigger)
    p = sub.add_parser("dispatch", help="send a repository_dispatch event (model-registered, image-pushed) to "
                       "GitHub with $GITHUB_TOKEN: the relay for registry events GitHub does not see")
    p.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the repository running the release pipeline")
    p.add_argument("--event", required=True, choices=("model-registered", "image-pushed"), help="event type")
    p.add_argument("--model", help="model name (model-registered)")
    p.add_argument("--version", help="model version (model-registered)")
    p.add_argument("--image", help="image reference, e.g. myacr.azurecr.io/port-weather:1.4 (image-pushed)")
    p.set_defaults(func=_cmd_dispatch)
    p = command("workspace-config", "write the Azure ML config.json from AZURE_SUBSCRIPTION_ID, "
                "AZUREML_RESOURCE_GROUP and AZUREML_WORKSPACE (the pipeline's variables)")
    p.add_argument("--out", required=True, help="file to write")
    p.set_defaults(func=_cmd_workspace_config)
    store_help = f"history directory (default: ${OPTION['history'].env}, else {DEFAULT_HISTORY})"
    p = command("report", "re-render the HTML report from a verdict")
    p.add_argument("verdict", nargs="?", default=DEFAULT_VERDICT, help=verdict_help)
    p.add_argument("-o", "--output", help="HTML file to write (default: report.html beside the verdict)")
    p.add_argument("--markdown", help="also write the Markdown summary here")
    p.set_defaults(func=_cmd_report)
    p = command("history", "each release's path through the stages: gated, approved, promoted, rolled back, "
                "with who, when, where and the key figures")
    p.add_argument("--store", help=store_help)
    p.add_argument("--release", help="only this release name")
    p.add_argument("--last", type=int, default=50, help="show the N releases with the latest steps (gated, "
                   "approved, promoted, rolled back), oldest first (default 50)")
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--prune", action="store_true", help="instead of showing history, delete the kept holdout "
                   "predictions no gate needs any more (what every gate that keeps its own does)")
    add_options(p.add_argument, ["keep_predictions"])
    p.set_defaults(func=_cmd_history)
    p = command("approve", "record a reviewer's approval of a PROMOTE verdict (once per person)")
    p.add_argument("verdict", nargs="?", default=DEFAULT_VERDICT, help=verdict_help)
    p.add_argument("--by", required=True, help="who approves (recorded in the history)")
    p.add_argument("--note", help="free text kept with the approval")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=_cmd_approve)
    p = command("promote", "deploy the tested release to the next stage, if its verdict allows it")
    p.add_argument("--from", dest="from_stage", required=True, help="stage the verdict is for, e.g. devtest")
    p.add_argument("--to", dest="to_stage", help="stage to deploy, e.g. production (default: the --from stage's "
                   "promote_to, as the verdict records it from the manifest)")
    add_options(p.add_argument, ["verdict"])
    p.add_argument("--manifest", type=Path, help="release manifest (default: the one the verdict names)")
    add_options(p.add_argument, ["target", "url", "key_env"])
    p.add_argument("--expect-header", dest="expect_headers", action="append", type=_header, metavar="NAME=VALUE",
                   help="for --target url: a header the endpoint's answer must carry, e.g. "
                        "azureml-model-deployment=r-f3e14ad970f8 (repeatable)")
    add_options(p.add_argument, ["workspace_config"])
    p.add_argument("--endpoint-name", help="Azure ML endpoint of the stage (default: <release>-<stage>)")
    add_options(p.add_argument, ["keep", "port", "ready_timeout", "isolation"])
    _mirror_arguments(p)
    p.add_argument("--by", help="who or what promotes (recorded)")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=_cmd_promote)
    p = command("rollback", "record that a stage's last promotion was rolled back (after running the command "
                "promote printed; this records, it deploys nothing)")
    p.add_argument("--stage", required=True, help="the stage rolled back, e.g. production")
    p.add_argument("--by", required=True, help="who rolled back (recorded in the history)")
    p.add_argument("--note", help="free text kept with the record, e.g. the incident or run URL")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=_cmd_rollback)
    p = sub.add_parser("load-worker", help="join a gate's distributed load run as one Locust worker")
    p.add_argument("--master", required=True, metavar="HOST:PORT",
                   help="the gate machine's address and [load] master_port (default port 5557)")
    p.set_defaults(func=_cmd_load_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from releasetest.promotion import PromotionRefused

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
