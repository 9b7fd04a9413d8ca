"""One release run: settings, the release, its endpoint, outcomes and findings.

Holds everything the gate needs and nothing pytest-specific, so the plugin only moves pytest
events into it, and the CLI can reuse deploy and verdict writing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import Holdout, load_holdout
from .errors import ConfigError, DeployError, ReleaseTestError
from .gate import SUITES, Results, build_verdict, decide, now_iso, write_json_atomic
from .settings import Settings
from .spec import Release, Stage, load_release
from .suite_config import parse_all
from .targets.base import Endpoint, EndpointHandle


def suites_dir() -> Path:
    """Where the built-in suites are installed (inside the distribution, or the repo's suites/)."""
    import releasetest.suites

    return Path(releasetest.suites.__file__).resolve().parent


def builtin_suites() -> tuple[str, ...]:
    """Names of the suites shipped in :mod:`releasetest.suites` (``suite_<name>.py``)."""
    here = suites_dir()
    return tuple(name for name in SUITES if (here / f"suite_{name}.py").is_file())


def build_endpoint(settings: Settings, release: Release, stage: Stage, holdout: Holdout) -> Endpoint:
    """The deploy target the settings ask for, not yet deployed."""
    golden = holdout.golden(release.data.golden_rows if release.data else 5)
    if settings.target == "url":
        from .targets.url import UrlEndpoint

        assert settings.url is not None
        return UrlEndpoint(settings.url, settings.key_env, golden, ready_timeout_s=settings.ready_timeout)
    if settings.target == "azureml":
        from .targets.azureml import AzureMLEndpoint

        return AzureMLEndpoint(release, stage, golden, workspace_config=settings.workspace_config,
                               log_path=settings.verdict.parent / f"azureml-{stage.name}.log",
                               ready_timeout_s=settings.ready_timeout)
    from .targets.local import LocalEndpoint

    log = settings.verdict.parent / f"server-{stage.name}.log"
    return LocalEndpoint(release, stage, golden, log_path=log, ready_timeout_s=settings.ready_timeout,
                         port=settings.port, key=os.environ.get(settings.key_env) or None,
                         max_body_bytes=int(settings.max_body_mb * 1024 * 1024))


@dataclass
class ReleaseRun:
    settings: Settings
    release: Release | None = None
    stage: Stage | None = None
    holdout: Holdout | None = None
    suite_configs: dict[str, Any] = field(default_factory=dict)
    config_error: str | None = None
    endpoint: Endpoint | None = None
    handle: EndpointHandle | None = None
    deploy_error: str | None = None
    deploy_log_tail: str | None = None
    deploy_seconds: float | None = None
    interrupted: str | None = None
    results: Results = field(default_factory=Results)
    findings: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=now_iso)

    @property
    def required(self) -> tuple[str, ...]:
        """Suites that must pass: as set, or every built-in suite that ships with this version."""
        if self.settings.require is not None:
            return self.settings.require
        return builtin_suites()

    def load(self) -> None:
        """Parse and verify the release; a problem is kept as the run's config error and re-raised."""
        assert self.settings.stage is not None
        try:
            self.release = load_release(self.settings.config)
            self.stage = self.release.stage(self.settings.stage)
            if self.release.data is None:
                raise ConfigError(self.release.manifest, "data", "missing [data] table",
                                  "name the holdout CSV, features, label and classes (see the example)")
            self.holdout = load_holdout(self.release.data)
            self.holdout.golden(self.release.data.golden_rows)
            self.suite_configs = parse_all(self.release, self.stage)
        except ReleaseTestError as exc:
            self.config_error = str(exc)
            raise

    def deploy(self) -> EndpointHandle:
        """Deploy once; later calls return the same handle or re-raise the same failure."""
        if self.handle is not None:
            return self.handle
        if self.deploy_error is not None:
            raise DeployError(self.deploy_error, self.deploy_log_tail)
        assert self.release and self.stage and self.holdout
        started = time.monotonic()
        self.endpoint = build_endpoint(self.settings, self.release, self.stage, self.holdout)
        try:
            self.handle = self.endpoint.deploy()
        except DeployError as exc:
            self.deploy_error, self.deploy_log_tail = exc.cause, exc.log_tail
            raise
        finally:
            self.deploy_seconds = round(time.monotonic() - started, 2)
        return self.handle

    def attach(self, handle: EndpointHandle | None, error: str | None, log_tail: str | None) -> None:
        """On an xdist worker: take the endpoint (or the failure) the controller deployed."""
        self.handle, self.deploy_error, self.deploy_log_tail = handle, error, log_tail

    def teardown(self) -> None:
        if self.endpoint is not None and not self.settings.keep:
            self.endpoint.teardown()

    def merge_findings(self, findings: dict[str, Any]) -> None:
        for suite, items in findings.items():
            self.findings.setdefault(suite, {}).update(items)

    def verdict(self, exit_status: int) -> dict[str, Any]:
        decision, reasons = decide(self.results, self.required, self.deploy_error, self.interrupted,
                                   self.config_error)
        if decision == "BLOCK" and exit_status == 0:
            exit_status = 1
        endpoint = self.handle.describe() if self.handle else None
        if endpoint is not None and self.settings.keep:
            endpoint["kept"] = True
        return build_verdict(
            decision=decision,
            reasons=reasons,
            stage=self.settings.stage or "",
            promote_to=self.stage.promote_to if self.stage else None,
            target=self.settings.target,
            release=self.release.describe() if self.release else None,
            endpoint=endpoint,
            deploy={"ok": self.handle is not None, "error": self.deploy_error,
                    "log_tail": self.deploy_log_tail, "seconds": self.deploy_seconds,
                    "left_behind": self.endpoint.facts() if self.endpoint else {}},
            results=self.results,
            findings=self.findings,
            required=list(self.required),
            exit_status=exit_status,
            started_at=self.started_at,
            finished_at=now_iso(),
        )

    def write_verdict(self, exit_status: int) -> dict[str, Any]:
        verdict = self.verdict(exit_status)
        write_json_atomic(self.settings.verdict, verdict)
        return verdict
