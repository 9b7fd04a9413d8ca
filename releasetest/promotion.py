"""Approval and promotion: move exactly the tested release to the next stage, or refuse and say why.

``promote`` trusts nothing it did not check again: the verdict's digest (not edited since the
run), its decision, stages and release id; the artifacts on disk (hashed again against the
manifest, and the release id recomputed); and, for a stage that requires it, a recorded human
approval of that very verdict. Only then does it deploy the same artifacts with the target
stage's own deployment config: locally, or blue/green into the stage's kept Azure ML endpoint
(:meth:`releasetest.endpoint.azureml.AzureMLEndpoint.promote`). An endpoint deployed by something
else (``url``) must show it serves the release, as a deploy's readiness check would, and that its
model is the tested one (the whole holdout at the gate's parity), before the promotion is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from releasetest.azureml.mirror import (
    DEFAULT_MIRROR_PERCENT,
    DEFAULT_MIRROR_REQUESTS,
    DEFAULT_MIRROR_TIMEOUT,
    MirrorOptions,
)
from releasetest.checks.shadow.config import parse_shadow
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.factory import TargetOptions, build_endpoint
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, DeployError, EndpointError, ReleaseTestError
from releasetest.files import now_iso
from releasetest.release.manifest import Release, Resolver, Stage, load_release
from releasetest.settings import (
    DEFAULT_CONFIG,
    DEFAULT_ISOLATION,
    DEFAULT_KEY_ENV,
    DEFAULT_PORT,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_TARGET,
    TARGETS,
)
from releasetest.verdict import signing
from releasetest.verdict.history import Store, check_verdict, read_verdict


class PromotionRefused(ReleaseTestError):
    """A promotion precondition does not hold; the message says which and what to do."""


def _sealed(verdict: dict[str, Any], where: str) -> None:
    try:
        check_verdict(verdict, where)
    except ReleaseTestError as exc:
        raise PromotionRefused(str(exc)) from None


def _signed_approvers(approvals: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Approvers whose record verifies under the approval key (:func:`signing.approval_verification_key`;
    all, when none is configured), and one reason per approval that does not."""
    good, bad = [], []
    key = signing.approval_verification_key()
    for a in approvals:
        try:
            if key is not None:
                key.verify(a, f"approval by {a.get('by')} at {a.get('at')}")
        except signing.SealRefused as exc:
            bad.append(str(exc))
            continue
        good.append(str(a.get("by")))
    return good, bad


def approve(verdict_path: Path, store: Store, by: str, note: str | None = None) -> dict[str, Any]:
    """Record a reviewer's approval of a PROMOTE verdict (continuous delivery)."""
    if not by.strip():
        raise PromotionRefused("an approval needs a name: --by NAME")
    verdict = read_verdict(verdict_path)
    _sealed(verdict, str(verdict_path))
    if verdict.get("decision") != "PROMOTE":
        raise PromotionRefused(f"{verdict_path}: cannot approve a {verdict.get('decision')} verdict "
                               f"({(verdict.get('reasons') or ['no reason'])[0].splitlines()[0]})")
    return store.approve(verdict, by.strip(), note)


def _tested_manifest(verdict: dict[str, Any]) -> Path:
    return Path(str((verdict.get("release") or {}).get("manifest", DEFAULT_CONFIG)))


def verify_for_promotion(verdict: dict[str, Any], where: str, from_stage: str, to_stage: str,
                         manifest: Path | None, store: Store,
                         registry: Resolver | None = None) -> tuple[Release, list[str]]:
    """Every precondition of a promotion; returns the re-verified release and its approvers.
    Versions the gate took from the model registry are fetched again through ``registry``."""
    _sealed(verdict, where)
    if verdict.get("stage") != from_stage:
        raise PromotionRefused(f"{where}: the verdict is for stage {verdict.get('stage')!r}, not {from_stage!r}")
    if verdict.get("decision") != "PROMOTE":
        reason = (verdict.get("reasons") or ["no reason given"])[0].splitlines()[0]
        raise PromotionRefused(f"{where}: the verdict is {verdict.get('decision')}, not PROMOTE ({reason})")
    if verdict.get("partial"):
        raise PromotionRefused(f"{where}: the verdict is of a partial run ({verdict.get('partial_because')}); "
                               f"run the whole gate for stage {from_stage}")
    if verdict.get("promote_to") != to_stage:
        raise PromotionRefused(f"{where}: stage {from_stage} promotes to "
                               f"{verdict.get('promote_to') or 'no further stage'}, "
                               f"not {to_stage} (see promote_to in the manifest)")
    tested = verdict.get("release") or {}
    manifest = manifest or _tested_manifest(verdict)
    versions = {a["name"]: str(a["version"]) for a in tested.get("artifacts", [])}
    try:
        release = load_release(manifest, artifact_versions=versions, registry=registry)
    except ConfigError as exc:
        raise PromotionRefused(f"the release no longer matches what was tested: {exc}") from None
    changed = release.changed_since(tested)
    if changed:
        raise PromotionRefused(changed)
    target_stage = release.stage(to_stage)
    approvers, refused = _signed_approvers(store.approvals(str(verdict["digest"])))
    if target_stage.requires_approval and not approvers and refused:
        raise PromotionRefused(f"stage {to_stage} requires an approval of this verdict; none recorded in "
                               f"{store.root} is valid: {refused[0]}")
    if target_stage.requires_approval and not approvers:
        raise PromotionRefused(
            f"stage {to_stage} requires an approval of this verdict and none is recorded in {store.root}: "
            f"a reviewer runs: releasetest approve {where} --by NAME")
    return release, approvers


@dataclass
class Promotion:
    record: dict[str, Any]
    #: The deployed endpoint when ``keep`` left it running; the caller owns its teardown.
    endpoint: Endpoint | None = None


def _promote_azureml(release: Release, stage: Stage, options: TargetOptions,
                     mirror: MirrorOptions) -> dict[str, Any]:
    """Blue/green (after a mirror phase, when asked) into the stage's Azure ML endpoint; the endpoint
    description for the record."""
    from releasetest.endpoint.azureml import AzureMLEndpoint

    azure = build_endpoint("azureml", release, stage, replace(options, purpose="promote"))
    assert isinstance(azure, AzureMLEndpoint)
    try:
        done = azure.promote(mirror)
    except DeployError as exc:
        raise ReleaseTestError(f"promotion to {stage.name} failed, traffic stays where it was: {exc}") from None
    finally:
        azure.teardown()  # closes the progress log; the stage's endpoint is kept
    return {**done.handle.describe(), "traffic_before": done.traffic_before, "traffic": done.traffic_after,
            "created_endpoint": done.created_endpoint, "kept_deployments": done.kept, "rollback": done.rollback,
            "mirror": done.mirror}


def _verify_url(release: Release, stage: Stage, options: TargetOptions) -> dict[str, Any]:
    """The endpoint someone else deployed must serve this release now: liveness, the golden rows as
    recorded at training time (with the key from ``options.key_env``), any expected headers, and
    the model itself (:func:`_identify`)."""
    if not options.url:
        raise PromotionRefused("--target url needs --url (the scoring URI of the endpoint that now serves the stage)")
    endpoint = build_endpoint("url", release, stage, options)
    try:
        handle = endpoint.deploy()
    except DeployError as exc:
        raise PromotionRefused(f"{options.url} does not serve {release.name}@{release.short_id}: {exc.cause}") from None
    described = handle.describe()
    described["verified"]["holdout"] = _identify(release, stage, handle)
    return described


def _identify(release: Release, stage: Stage, handle: EndpointHandle) -> dict[str, Any]:
    """The model behind the URL is the tested one: the whole holdout, scored through it, agrees with
    the training-time predictions at the gate's ``[acceptance] parity``. A handful of golden rows
    cannot tell two models apart (a retrained one answers most rows alike)."""
    from releasetest.checks.acceptance.config import parse as parse_acceptance
    from releasetest.checks.acceptance.evaluation import parity_check
    from releasetest.checks.acceptance.scoring import score_rows
    from releasetest.release.data import load_holdout

    who = f"{handle.scoring_uri} does not serve {release.name}@{release.short_id}"
    if release.data is None or release.data.expected_predictions is None:
        raise PromotionRefused(f"{release.manifest}: data.expected_predictions is not set, so the model behind "
                               f"{handle.scoring_uri} cannot be told from another one: add the training-time "
                               "predictions of the holdout and re-run the gate")
    holdout = load_holdout(release.data)
    config = parse_acceptance(release.suite_tables.get("acceptance", {}), release, stage)
    try:
        scores = score_rows(handle, holdout.rows, config.batch_size, config.concurrency)
    except EndpointError as exc:
        raise PromotionRefused(f"{who}: scoring the holdout failed: {exc}") from None
    parity = parity_check(scores.predictions, holdout, config.parity, config.task)
    if not parity["passed"]:
        first = parity["mismatches"][0]
        raise PromotionRefused(
            f"{who}: its answers agree with the training-time predictions on {parity['agreement']:.4f} of the "
            f"{len(holdout)} holdout rows, the gate requires {config.parity:g} ({parity['mismatching_rows']} rows "
            f"differ, first: row {first['row']} got {first['got']!r}, recorded {first['expected']!r}): another model "
            "answers there")
    return {"rows": len(holdout), "agreement": parity["agreement"], "required": config.parity}


@dataclass(frozen=True)
class PromoteOptions:
    """How to promote, beyond which verdict and stages. The fields the gate has too are the
    ``releasetest promote`` options declared in :data:`releasetest.settings.OPTIONS`, with its defaults."""

    target: str = DEFAULT_TARGET
    #: Default: the manifest the verdict names.
    manifest: Path | None = None
    url: str | None = None
    key_env: str = DEFAULT_KEY_ENV
    #: url target: response headers (lower-case name, value) the golden answer must carry.
    expect_headers: tuple[tuple[str, str], ...] = ()
    workspace_config: Path | None = None
    endpoint_name: str | None = None
    keep: bool = False
    port: int = DEFAULT_PORT
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    #: local target: the sandbox, as the gate's ``--release-isolation``.
    isolation: str = DEFAULT_ISOLATION
    #: Who or what promotes, for the record.
    by: str | None = None
    #: azureml target: the mirror phase before the shift (off at 0 percent).
    mirror_percent: int = DEFAULT_MIRROR_PERCENT
    mirror_requests: int = DEFAULT_MIRROR_REQUESTS
    mirror_timeout: float = DEFAULT_MIRROR_TIMEOUT
    mirror_collector: Path | None = None
    mirror_replay: Path | None = None

    @classmethod
    def from_arguments(cls, values: Mapping[str, Any]) -> PromoteOptions:
        """The fields ``values`` (a CLI's parsed arguments) gives, the rest at their defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None})

    def mirror(self) -> MirrorOptions:
        return MirrorOptions(percent=self.mirror_percent, requests=self.mirror_requests,
                             timeout_s=self.mirror_timeout, collector=self.mirror_collector, replay=self.mirror_replay)

    def target_options(self, log_dir: Path) -> TargetOptions:
        return TargetOptions(log_dir=log_dir, ready_timeout=self.ready_timeout, port=self.port,
                             workspace_config=self.workspace_config, endpoint_name=self.endpoint_name, url=self.url,
                             key_env=self.key_env, expect_headers=self.expect_headers, keep=self.keep,
                             isolation=self.isolation)


def promote(verdict_path: Path, from_stage: str, to_stage: str, store: Store,
            options: PromoteOptions | None = None) -> Promotion:
    """Check everything, deploy to ``to_stage`` (local, azureml) or verify the endpoint at ``options.url``
    serves the release (url), then record the promotion; nothing is recorded when any step refuses or fails.
    Logs and fetched registry artifacts go beside the verdict."""
    from releasetest.azureml.registry import registry_for

    opts = options or PromoteOptions()
    mirror = opts.mirror()
    if mirror.enabled and opts.target != "azureml":
        raise PromotionRefused(f"--mirror-percent needs --target azureml (an Azure ML endpoint mirrors traffic), "
                               f"not {opts.target}")
    try:
        mirror.check()
    except ConfigError as exc:
        raise PromotionRefused(str(exc)) from None
    verdict = read_verdict(verdict_path)
    registry = registry_for(opts.manifest or _tested_manifest(verdict), opts.workspace_config,
                            verdict_path.parent / "registry")
    release, approvers = verify_for_promotion(verdict, str(verdict_path), from_stage, to_stage, opts.manifest,
                                              store, registry)
    stage = release.stage(to_stage)
    if mirror.enabled:
        shadow = parse_shadow(release.suite_tables.get("shadow", {}), release, stage)
        mirror = replace(mirror, bounds=shadow)
    kept: Endpoint | None = None
    target = opts.target
    deploy = opts.target_options(verdict_path.parent)
    if target == "azureml":
        endpoint = _promote_azureml(release, stage, deploy, mirror)
    elif target == "local":
        local = build_endpoint("local", release, stage, deploy)
        try:
            handle = local.deploy()  # ready = liveness answers and the golden rows score as at training
        except DeployError as exc:
            raise ReleaseTestError(f"deploy to {to_stage} failed: {exc.cause}") from None
        endpoint = handle.describe()
        if opts.keep:
            kept = local
        else:
            local.teardown()
    elif target == "url":
        endpoint = _verify_url(release, stage, deploy)
    else:
        raise PromotionRefused(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    record = {
        "release": release.name, "release_id": release.release_id,
        "artifacts": [{"name": a.name, "version": a.version} for a in release.artifacts],
        "from": from_stage, "to": to_stage, "target": target, "deployment_config": stage.deployment.path.name,
        "endpoint": endpoint, "kept": bool(kept), "verdict_digest": verdict["digest"],
        "approved_by": approvers, "requires_approval": stage.requires_approval, "by": opts.by, "at": now_iso(),
    }
    store.add_verdict(verdict)
    store.record_promotion(record)
    return Promotion(record, kept)
