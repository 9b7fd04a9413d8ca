"""One release run: settings, the release, its endpoint, outcomes and findings.

Holds everything the gate needs and nothing pytest-specific, so the plugin only moves pytest
events into it, and the CLI can reuse deploy and verdict writing.
"""


from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasetest.checks.names import SUITES
from releasetest.checks.registry import parse_all
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.factory import build_endpoint
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, DeployError, ReleaseTestError
from releasetest.files import now_iso, write_json_atomic
from releasetest.release import provenance
from releasetest.release.data import Holdout, load_holdout
from releasetest.release.manifest import Release, Stage, load_release
from releasetest.settings import Settings
from releasetest.verdict.decision import Results, build_verdict, decide
from releasetest.verdict.history import Store
from releasetest.verdict.report import write_report
from releasetest.verdict.seal import seal_verdict
from releasetest.verdict.summary import publish_summary, summary_markdown


def suites_dir() -> Path:
    """Where the built-in suites are installed (inside the distribution, or the repo's suites/)."""
    import releasetest.suites

    return Path(releasetest.suites.__file__).resolve().parent


def builtin_suites() -> tuple[str, ...]:
    """Names of the suites shipped in :mod:`releasetest.suites` (``suite_<name>.py``)."""
    here = suites_dir()
    return tuple(name for name in SUITES if (here / f"suite_{name}.py").is_file())


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
    warnings: list[str] = field(default_factory=list)
    #: The serving interpreter against the release's conda file (see :mod:`releasetest.release.environment`).
    conda_check: dict[str, Any] | None = None
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
            self.release = load_release(self.settings.config,
                                        artifact_versions=dict(self.settings.artifact or ()))
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
        try:
            python = self._serving_python()
            self.endpoint = build_endpoint(self.settings, self.release, self.stage, self.holdout, python)
            self.handle = self.endpoint.deploy()
        except ConfigError as exc:
            self.deploy_error = f"environment: {exc}"
            raise DeployError(self.deploy_error) from None
        except DeployError as exc:
            self.deploy_error, self.deploy_log_tail = exc.cause, exc.log_tail
            raise
        finally:
            self.deploy_seconds = round(time.monotonic() - started, 2)
            if self.endpoint is not None:
                self.warnings.extend(self.endpoint.notes())
        return self.handle

    def _serving_python(self) -> str:
        """The interpreter the local endpoint runs in, checked against the release's conda file."""
        assert self.release is not None
        conda = self.release.inference.conda_file
        if self.settings.target != "local" or conda is None:
            return sys.executable
        from releasetest.release import environment

        env = environment.parse_conda_env(conda)
        python = sys.executable
        if self.settings.env == "isolated":
            cache = Path(os.environ.get("RELEASETEST_CACHE_DIR", Path.home() / ".cache" / "releasetest")) / "envs"
            python = environment.build_isolated(env, cache)
        found = environment.report(env, python)
        found["mode"] = self.settings.env
        self.conda_check = found
        if found["mismatches"]:
            if self.settings.env != "warn":
                raise ConfigError(conda, "dependencies", "the serving environment differs from the conda file: "
                                  + "; ".join(found["mismatches"]),
                                  "install the pinned versions, update the pins, or use --release-env isolated")
            self.warnings.append(f"environment differs from {conda.name}: " + "; ".join(found["mismatches"]))
        return python

    def attach(self, handle: EndpointHandle | None, error: str | None, log_tail: str | None) -> None:
        """On an xdist worker: take the endpoint (or the failure) the controller deployed."""
        self.handle, self.deploy_error, self.deploy_log_tail = handle, error, log_tail

    def teardown(self) -> None:
        if self.endpoint is not None and not self.settings.keep:
            self.endpoint.teardown()

    def merge_findings(self, findings: dict[str, Any]) -> None:
        """Add recorded findings. A list extends (skipping items already there), and a mapping
        updates, what is already recorded under the same key, so several tests on any xdist
        worker can add to one list, and a test that records the same evaluation again adds
        nothing twice; other values replace."""
        for suite, items in findings.items():
            into = self.findings.setdefault(suite, {})
            for key, value in items.items():
                old = into.get(key)
                if isinstance(old, list) and isinstance(value, list):
                    into[key] = old + [v for v in value if v not in old]
                elif isinstance(old, dict) and isinstance(value, dict):
                    into[key] = {**old, **value}
                else:
                    into[key] = value

    def verdict(self, exit_status: int) -> dict[str, Any]:
        decision, reasons = decide(self.results, self.required, self.deploy_error, self.interrupted,
                                   self.config_error)
        if decision == "BLOCK" and exit_status == 0:
            exit_status = 1
        endpoint = self.handle.describe() if self.handle else None
        if endpoint is not None and self.settings.keep:
            endpoint["kept"] = True
        log_tail = self.deploy_log_tail
        if log_tail is None and decision == "BLOCK" and self.handle is not None:
            log_tail = self.handle.log_tail()  # the server's side of a failing test
        deployment = None
        if self.stage is not None:
            dc = self.stage.deployment
            deployment = {"stage": self.stage.name, "config": dc.path.name, "settings": provenance.redact(dc.raw),
                          "workers": dc.worker_count, "scoring_timeout_ms": dc.scoring_timeout_ms,
                          "requires_approval_to_promote": self._promote_needs_approval()}
        return build_verdict(
            decision=decision,
            reasons=reasons,
            warnings=self.warnings,
            stage=self.settings.stage or "",
            promote_to=self.stage.promote_to if self.stage else None,
            target=self.settings.target,
            release=self.release.describe() if self.release else None,
            endpoint=endpoint,
            deploy={"ok": self.handle is not None, "error": self.deploy_error,
                    "log_tail": log_tail, "seconds": self.deploy_seconds,
                    "left_behind": self.endpoint.facts() if self.endpoint else {}},
            results=self.results,
            findings=self.findings,
            required=list(self.required),
            exit_status=exit_status,
            started_at=self.started_at,
            finished_at=now_iso(),
            deployment=deployment,
            environment={**provenance.environment(), "conda_check": self.conda_check},
            git=provenance.git_info(self.settings.config.parent),
            trigger=dict(self.settings.trigger) if self.settings.trigger else None,
        )

    def _promote_needs_approval(self) -> bool | None:
        if self.release is None or self.stage is None or self.stage.promote_to is None:
            return None
        return self.release.stages[self.stage.promote_to].requires_approval

    def write_verdict(self, exit_status: int) -> tuple[dict[str, Any], list[str]]:
        """Seal and write the verdict, then its report, summary and history entry (see :meth:`publish`)."""
        verdict = seal_verdict(self.verdict(exit_status))
        return verdict, self.publish(verdict, os.environ)

    def publish(self, verdict: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
        """Write a sealed verdict and everything made from it; return lines for the terminal.

        The verdict goes first and alone decides the gate: a report or history problem becomes
        a warning line, never a lost verdict.
        """
        write_json_atomic(self.settings.verdict, verdict)
        lines: list[str] = []
        try:
            write_report(verdict, self.settings.report, digest_ok=True)
            lines.append(f"report: {self.settings.report}")
            summary = self.settings.verdict.parent / "summary.md"
            lines += publish_summary(summary_markdown(verdict), summary, environ)
        except Exception as exc:  # noqa: BLE001 - a report bug must not cost the verdict
            lines.append(f"warning: report not written: {exc!r}")
        try:
            Store(self.settings.history_dir).add_verdict(verdict)
        except (OSError, ReleaseTestError) as exc:
            lines.append(f"warning: verdict not recorded in history {self.settings.history_dir}: {exc}")
        return lines

