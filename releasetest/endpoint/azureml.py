"""Azure ML target: deploy the release to a v2 managed (or Kubernetes) online endpoint.

What is deployed is exactly :func:`releasetest.azureml.mapping.plan_for` (what
``releasetest azureml-plan`` prints). azure-ai-ml and azure-identity are imported inside
:meth:`AzureMLEndpoint.deploy` only, so the local target never pays their import time (seconds).

Model integrity: the registered model must hold the bytes the manifest pins. Files are copied
to a staging folder and re-hashed before upload, and the asset is registered with a tag
``releasetest_sha256``: the sha256 of the sorted ``<relative path> <sha256>`` lines of the
manifest (a tree digest). An existing ``name:version`` is reused only when its tag equals the
manifest's digest; a missing or different tag is a :class:`DeployError` (model versions are
immutable in Azure ML, so a tag set at registration by this code is bound to the uploaded files;
a model registered by hand has no tag and is refused rather than trusted).

Promotion (:meth:`AzureMLEndpoint.promote`) reuses the same plan, model check and readiness
check, blue/green: the new deployment joins the stage's kept endpoint at 0 % traffic, must answer
the golden rows when pinned with ``azureml-model-deployment``, and only then gets all traffic;
the previous deployment stays for rollback. A failure leaves the traffic where it was.

With a mirror phase (:mod:`releasetest.azureml.mirror`), between the pinned check and the shift the
new deployment gets a share of the live traffic mirrored to it; its answers must agree with the
live deployment's on the same requests within the ``[shadow]`` bounds, else the mirror is cleared,
the new deployment removed and the traffic left where it was.
"""

from __future__ import annotations

import io
import math
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

import yaml

from releasetest.azureml.mapping import ModelAsset, Plan, Purpose, plan_for
from releasetest.azureml.mirror import (
    DATASTORE_FOLDER,
    Compared,
    MirrorComparison,
    MirrorOptions,
    compare,
    datastore_reader,
    folder_reader,
    mirror_window,
    replay,
    replay_bodies,
)
from releasetest.azureml.v2 import ADMIT_FACTOR, DEFAULT_MAX_CONCURRENT
from releasetest.azureml.workspace import SHA_TAG, ml_client, tree_digest, workspace_config_path
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.client import wait_ready
from releasetest.endpoint.formats import Wire, wire_spec
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.url import handle_for_url
from releasetest.errors import ConfigError, DeployError, EndpointError
from releasetest.files import read_tail
from releasetest.release.manifest import Release, Stage
from releasetest.settings import DEFAULT_READY_TIMEOUT

#: Lines of the inference server log attached to a failed deploy.
LOG_LINES = 100

T = TypeVar("T")


@dataclass(frozen=True)
class BlueGreen:
    """What a promotion did to the stage's endpoint, for the promotion record and the rollback hint."""

    handle: EndpointHandle
    endpoint: str
    deployment: str
    created_endpoint: bool
    traffic_before: dict[str, int]
    traffic_after: dict[str, int]
    kept: list[str] = field(default_factory=list)
    #: The mirror phase's comparison (None when there was none).
    mirror: dict[str, Any] | None = None

    @property
    def rollback(self) -> str | None:
        """The command that puts the traffic back where it was (None when there was none)."""
        live = {d: w for d, w in self.traffic_before.items() if w}
        if not live:
            return None
        split = " ".join(f"{d}={live.get(d, 0)}" for d in [*live, self.deployment])
        return f'az ml online-endpoint update --name {self.endpoint} --traffic "{split}"'


class AzureMLEndpoint(Endpoint):
    """The stage's resources named by :func:`releasetest.azureml.mapping.azure_names` for ``purpose``:
    the gate's own endpoint (deleted on teardown) or, for :meth:`promote`, the stage's kept one."""

    target = "azureml"

    def __init__(
        self,
        release: Release,
        stage: Stage,
        golden: tuple[list[list[float]], list[Any]],
        log_path: Path,
        workspace_config: Path | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT,
        credential: Any = None,
        endpoint_name: str | None = None,
        purpose: Purpose = "gate",
        diagnose: Callable[[], str | None] | None = None,
    ):
        self.release = release
        self.diagnose = diagnose
        self.stage = stage
        self.golden = golden
        self.log_path = log_path
        self.workspace_config = workspace_config_path(release.root, workspace_config)
        self.ready_timeout_s = ready_timeout_s
        self.credential = credential
        self.plan: Plan = plan_for(release, stage, purpose, name=endpoint_name)
        self.ml: Any = None
        #: Set before the endpoint is created, so an interrupted create is still deleted.
        self.endpoint_name: str | None = None
        #: deploy() owns its endpoint (teardown deletes it); promote() uses the stage's and keeps it.
        self.owns_endpoint = True
        self._log: TextIO | None = None
        self._handle: EndpointHandle | None = None
        self._slots: Path | None = None

    @property
    def handle(self) -> EndpointHandle | None:
        return self._handle

    def log_tail(self, lines: int = 40) -> str | None:
        return read_tail(self.log_path, lines)

    def facts(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint_name, "workspace_config": str(self.workspace_config),
                "log": str(self.log_path)}

    def _progress(self, message: str) -> None:
        """One line to stderr (the user waits minutes) and to the target log the verdict names."""
        line = f"releasetest azureml: {message}"
        print(line, file=sys.stderr, flush=True)
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def _client(self) -> Any:
        return ml_client(self.workspace_config, self.credential)

    def _ensure_model(self, asset: ModelAsset) -> None:
        """Reuse ``name:version`` when its sha256 tag matches the manifest; register it when absent."""
        from azure.ai.ml.entities import Model
        from azure.core.exceptions import ResourceNotFoundError

        digest = tree_digest(asset.files)
        try:
            existing = self.ml.models.get(asset.name, asset.version)
        except ResourceNotFoundError:
            existing = None
        if existing is not None:
            found = (existing.tags or {}).get(SHA_TAG)
            if found != digest:
                what = f"sha256 tag {found}" if found else f"no {SHA_TAG} tag"
                raise DeployError(
                    f"registered model {asset.name}:{asset.version} has {what}, the manifest pins {digest}: "
                    "it is not the release under test (fix: bump the artifact version in release.toml so "
                    "releasetest registers the pinned files, or archive the wrong model version)")
            self._progress(f"model {asset.name}:{asset.version} reused (sha256 {digest[:12]} matches)")
            return
        self._progress(f"model {asset.name}:{asset.version} not registered: uploading {len(asset.files)} file(s)")
        staging = Path(tempfile.mkdtemp(prefix="releasetest-model-"))
        try:
            folder = asset.stage(staging)
            registered = self.ml.models.create_or_update(Model(
                name=asset.name, version=asset.version, path=str(folder), type=asset.type,
                description=f"{self.release.name} {self.release.short_id} (registered by releasetest)",
                tags={SHA_TAG: digest, "release_id": self.release.release_id}))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if (registered.tags or {}).get(SHA_TAG) != digest:
            raise DeployError(f"model {asset.name}:{asset.version} was registered without the {SHA_TAG} tag "
                              "releasetest set; the workspace did not keep it")
        self._progress(f"model {asset.name}:{asset.version} registered (sha256 {digest[:12]})")

    def _entities(self) -> tuple[Any, Any]:
        from azure.ai.ml import load_online_deployment, load_online_endpoint

        # relative_origin names the YAML file the paths are relative to (its folder is what counts).
        origin = str(self.plan.base_path / "release.toml")
        return (load_online_endpoint(io.StringIO(yaml.safe_dump(self.plan.endpoint)), relative_origin=origin),
                load_online_deployment(io.StringIO(yaml.safe_dump(self.plan.deployment)), relative_origin=origin))

    def _server_logs(self) -> str | None:
        assert self.endpoint_name is not None
        try:
            text = self.ml.online_deployments.get_logs(
                name=self.plan.deployment["name"], endpoint_name=self.endpoint_name, lines=LOG_LINES,
                container_type="inference-server")  # the SDK's name for REST containerType InferenceServer
        except Exception as exc:  # the logs explain a failure; not getting them must not hide it
            return f"(inference server logs unavailable: {exc})"
        return str(text).rstrip() or None

    def _fail(self, cause: str) -> DeployError:
        logs = self._server_logs()
        self._progress(f"FAILED: {cause}")
        return DeployError(f"Azure ML endpoint {self.endpoint_name} for stage {self.stage.name}: {cause}", logs)

    def deploy(self) -> EndpointHandle:
        return self._sdk_call(self._deploy)

    def promote(self, mirror: MirrorOptions | None = None) -> BlueGreen:
        """Blue/green into the stage's endpoint, which is kept; see the module docstring."""
        return self._sdk_call(lambda: self._promote(mirror or MirrorOptions()))

    def _sdk_call(self, func: Callable[[], T]) -> T:
        # azure-ai-ml's own deprecation warnings (marshmallow 4, ...) are not the user's to fix.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return func()
            except ConfigError as exc:
                raise DeployError(str(exc)) from None
            except DeployError:
                raise
            except Exception as exc:
                # Credential, network and SDK validation errors: one line naming the cause.
                if type(exc).__module__.startswith(("azure.", "marshmallow")):
                    message = getattr(exc, "message", None) or str(exc)
                    raise DeployError(f"Azure ML {type(exc).__name__}: {message}") from None
                raise

    def _start(self) -> tuple[Any, Any]:
        """Log, drift, client, entities and the model check: what deploy and promote share."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        for drift in self.plan.drift:
            self._progress(f"drift {drift}")
        self.ml = self._client()
        endpoint, deployment = self._entities()
        self._ensure_model(self.plan.deployment_model)
        return endpoint, deployment

    def _create_deployment(self, deployment: Any) -> None:
        from azure.core.exceptions import HttpResponseError

        dep_name = self.plan.deployment["name"]
        self._progress(f"creating deployment {dep_name} ({self.plan.deployment.get('instance_type', 'kubernetes')}, "
                       f"model {self.plan.deployment['model']}); this takes minutes on Azure")
        try:
            self.ml.online_deployments.begin_create_or_update(deployment).result()
        except HttpResponseError as exc:
            raise self._fail(f"deployment {dep_name} failed: {exc.message}") from None

    def _admission(self) -> dict[str, Any]:
        """What the deployment admits at once before Azure answers 429 (``ADMIT_FACTOR`` x
        max_concurrent_requests_per_instance x instance_count, docs/azureml.md), and the folder where
        the run's own scoring clients (xdist workers, acceptance threads) count theirs, so they never
        send more (:class:`releasetest.endpoint.client.ScoringClient`); removed on teardown."""
        settings = self.plan.deployment.get("request_settings") or {}
        cap = int(settings.get("max_concurrent_requests_per_instance") or DEFAULT_MAX_CONCURRENT)
        instances = int(self.plan.deployment.get("instance_count") or 1)
        if self._slots is None:
            self._slots = Path(tempfile.mkdtemp(prefix="releasetest-client-slots-"))
        return {"max_concurrent_requests_per_instance": cap, "instance_count": instances,
                "admits": ADMIT_FACTOR * cap * instances, "client_slots": str(self._slots)}

    def _pinned_handle(self, name: str) -> EndpointHandle:
        """The endpoint as the suites see it, every request pinned to this release's deployment."""
        dep_name = self.plan.deployment["name"]
        keys = self.ml.online_endpoints.get_keys(name)
        key = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
        ep = self.ml.online_endpoints.get(name)
        handle = handle_for_url(
            ep.scoring_uri, key, target=self.target, endpoint=name, deployment=dep_name,
            kind=self.plan.kind, scoring_timeout_ms=self.plan.deployment["request_settings"]["request_timeout_ms"],
            drift=[str(d) for d in self.plan.drift], **self._admission())
        return replace(handle, log_path=str(self.log_path), extra_headers={"azureml-model-deployment": dep_name})

    def _deploy(self) -> EndpointHandle:
        started = time.monotonic()
        endpoint, deployment = self._start()
        self.endpoint_name = endpoint.name
        self._progress(f"creating {self.plan.kind} online endpoint {endpoint.name}")
        self.ml.online_endpoints.begin_create_or_update(endpoint).result()
        self._create_deployment(deployment)
        handle = self._pinned_handle(endpoint.name)
        self._progress(f"deployed: {handle.scoring_uri}; checking liveness and the golden prediction")
        try:
            wire = wait_ready(handle, *self.golden, deadline_s=self.ready_timeout_s, still_starting=_pause,
                              spec=wire_spec(self.release), diagnose=self.diagnose).wire
        except EndpointError as exc:
            raise self._fail(f"not ready: {exc}") from None
        handle.info["ready_s"] = round(time.monotonic() - started, 2)
        handle.info["wire"] = wire.as_dict()
        self._progress(f"ready after {handle.info['ready_s']} s")
        self._handle = handle
        return handle

    def _promote(self, mirror: MirrorOptions) -> BlueGreen:
        from azure.core.exceptions import ResourceNotFoundError

        endpoint, deployment = self._start()
        name, dep = endpoint.name, self.plan.deployment["name"]
        deployment.tags = {**(deployment.tags or {}), "release": self.release.name,
                           "release_id": self.release.release_id}
        try:
            before = {str(d): int(w) for d, w in (self.ml.online_endpoints.get(name).traffic or {}).items()}
            created = False
        except ResourceNotFoundError:
            before, created = {}, True
        # The endpoint is the stage's and outlives this call: teardown() must not delete it.
        self.endpoint_name, self.owns_endpoint = name, False
        live = before.get(dep) == 100
        if created:
            self._progress(f"creating {self.plan.kind} online endpoint {name} (kept: it is the {self.stage.name} "
                           "endpoint)")
            self.ml.online_endpoints.begin_create_or_update(endpoint).result()
        elif live:
            self._progress(f"deployment {dep} already takes all traffic on {name}: checking it answers")
        else:
            split = ", ".join(f"{d} {w}%" for d, w in before.items() if w) or "none"
            self._progress(f"endpoint {name} exists (traffic: {split}); {dep} joins it at 0%")
        if not live:
            self._guarded(name, created, lambda: self._create_deployment(deployment))
        handle = self._pinned_handle(name)
        self._progress(f"checking {dep} through {handle.scoring_uri} with azureml-model-deployment: {dep}")

        wires: list[Wire] = []

        def pinned_ready() -> None:
            try:
                wires.append(wait_ready(handle, *self.golden, deadline_s=self.ready_timeout_s, still_starting=_pause,
                                        spec=wire_spec(self.release), diagnose=self.diagnose).wire)
            except EndpointError as exc:
                raise self._fail(f"deployment {dep} is not ready: {exc}") from None

        if live:  # already serving: nothing of ours to remove if it fails
            pinned_ready()
        else:
            self._guarded(name, created, pinned_ready)
        serving = [d for d, w in before.items() if w and d != dep]
        compared: list[MirrorComparison] = []
        if mirror.enabled and serving:
            self._guarded(name, created, lambda: compared.append(
                self._mirror(name, dep, serving, replace(handle, extra_headers={}), wires[0], mirror)))
        elif mirror.enabled:
            self._progress(f"no other deployment takes traffic on {name}: nothing to mirror against, "
                           "mirror phase skipped")
        after = {d: 0 for d in before} | {dep: 100}
        if after != before:
            self._set_traffic(name, after)
        unpinned = replace(handle, extra_headers={})
        try:  # what clients now reach without the header
            wait_ready(unpinned, *self.golden, deadline_s=self.ready_timeout_s, still_starting=_pause,
                       spec=wire_spec(self.release), diagnose=self.diagnose)
        except EndpointError as exc:
            if any(w for d, w in before.items() if d != dep):
                self._set_traffic(name, before)
                raise DeployError(f"Azure ML endpoint {name}: after the shift to {dep} the endpoint did not answer "
                                  f"the golden rows ({exc}); traffic is back to {before}") from None
            raise DeployError(f"Azure ML endpoint {name}: after the shift to {dep}: {exc}") from None
        self._progress(f"{dep} takes all traffic on {name}; kept for rollback: "
                       f"{', '.join(d for d in before if d != dep) or 'nothing'}")
        return BlueGreen(handle, name, dep, created, before, after, kept=[d for d in before if d != dep],
                         mirror=compared[0].as_dict() if compared else None)

    def _mirror(self, name: str, dep: str, serving: list[str], unpinned: EndpointHandle, wire: Wire,
                options: MirrorOptions) -> MirrorComparison:
        """Mirror a share of the live traffic to ``dep``, compare the answers, clear the mirror; a
        comparison outside the bounds (or too few requests) is a DeployError naming both."""
        from azure.core.exceptions import HttpResponseError

        assert self.release.data is not None
        data = self.release.data
        release = Compared(wire, data.task == "regression", data.tolerance, tuple(data.features), unpinned.timeout_s)
        since = time.time()
        try:
            self._set_traffic(name, None, mirror={dep: options.percent})
        except HttpResponseError as exc:
            raise DeployError(f"Azure ML endpoint {name}: could not mirror {options.percent}% of the traffic to "
                              f"{dep}: {exc.message}") from None
        replayed = 0
        try:
            if options.replay is not None:
                count = math.ceil(options.requests * 100 / options.percent)
                self._progress(f"replaying {count} recorded request(s) from {options.replay} to {name}")
                replayed, failure = replay(unpinned, wire, replay_bodies(options.replay), count)
                if failure:
                    self._progress(f"{count - replayed} replayed request(s) failed; first: {failure}")
            where = options.collector or f"the default datastore's {DATASTORE_FOLDER}/{name}"
            self._progress(f"waiting for {options.requests} mirrored request(s) in {where} "
                           f"(at most {options.timeout_s:g} s)")
            read = folder_reader(options.collector) if options.collector else datastore_reader(self.ml)
            result = mirror_window(options, read, name, serving, dep, since, lambda got: compare(
                got, release, options.bounds, options.requests, replayed))
        finally:
            self._set_traffic(name, None, mirror={})
        if not result.ok:
            raise DeployError(f"Azure ML endpoint {name}: mirror of {dep} against {', '.join(serving)} stopped the "
                              f"promotion before the shift: {result.line()}; mirror cleared")
        self._progress(f"mirror of {dep} within bounds: {result.line()}")
        return result

    def _guarded(self, name: str, created: bool, step: Callable[[], None]) -> None:
        """Run a step of a promotion; if it fails, undo what the promotion added, traffic untouched."""
        try:
            step()
        except DeployError:
            from azure.core.exceptions import HttpResponseError

            dep = self.plan.deployment["name"]
            try:
                if created:
                    self._progress(f"removing endpoint {name}, created by this failed promotion")
                    self.ml.online_endpoints.begin_delete(name).result()
                else:
                    self._progress(f"removing deployment {dep}; traffic stays where it was")
                    self.ml.online_deployments.begin_delete(name=dep, endpoint_name=name).result()
            except HttpResponseError as exc:  # the failure itself is what the user must see
                self._progress(f"could not remove it: {exc.message}")
            raise

    def _set_traffic(self, name: str, traffic: dict[str, int] | None,
                     mirror: dict[str, int] | None = None) -> None:
        """Set the live split and/or the mirrored share (None leaves that one as it is)."""
        ep = self.ml.online_endpoints.get(name)
        if traffic is not None:
            self._progress(f"traffic on {name}: " + ", ".join(f"{d} {w}%" for d, w in traffic.items()))
            ep.traffic = dict(traffic)
        if mirror is not None:
            self._progress(f"mirrored traffic on {name}: "
                           + (", ".join(f"{d} {w}%" for d, w in mirror.items()) or "cleared"))
            ep.mirror_traffic = dict(mirror)
        self.ml.online_endpoints.begin_create_or_update(ep).result()

    def teardown(self) -> None:
        """Delete the endpoint (and with it the deployment) unless promote() kept it; safe to call again."""
        name, self.endpoint_name = self.endpoint_name, None
        if name is not None and self.ml is not None and self.owns_endpoint:
            from azure.core.exceptions import ResourceNotFoundError

            self._progress(f"deleting endpoint {name}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.ml.online_endpoints.begin_delete(name).result()
            except ResourceNotFoundError:
                pass
            self._progress(f"deleted endpoint {name}")
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._slots is not None:
            shutil.rmtree(self._slots, ignore_errors=True)
            self._slots = None


def _pause(wait_s: float) -> bool:
    """A cloud endpoint has no local process to watch: wait between readiness polls."""
    time.sleep(wait_s)
    return True
