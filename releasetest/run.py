"""One release run: settings, the release, its endpoint, outcomes and findings.

Holds everything the gate needs and nothing pytest-specific, so the plugin only moves pytest
events into it, and the CLI can reuse deploy and verdict writing.
"""


from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasetest.azureml.registry import registry_for
from releasetest.checks.registry import parse_all
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.factory import TargetOptions, build_endpoint, check_target
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, DeployError, ReleaseTestError
from releasetest.files import now_iso, write_json_atomic
from releasetest.progress import Event, Progress, silent
from releasetest.release import provenance
from releasetest.release.data import Holdout, load_holdout
from releasetest.release.manifest import Release, Stage, load_release
from releasetest.settings import Settings
from releasetest.suite_names import SUITES
from releasetest.verdict.decision import Results, build_verdict, decide, gate_exit_status, settle
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


#: Called with the unsealed verdict before it is settled and written (the ``pytest_releasetest_verdict`` hook).
VerdictHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Finished:
    """What the end of a run leaves: the sealed verdict as written, the process's exit status,
    and the lines to print after it (report path, CI logging commands, warnings)."""

    verdict: dict[str, Any]
    exit_status: int
    lines: list[str]


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
    #: Under xdist: a private folder the controller makes and removes, for the workers' suite lock
    #: and the logs of servers they start (handed back with :meth:`worker_logs`).
    scratch: Path | None = None
    #: This process's xdist worker id (``gw0``...), None on the controller or without xdist.
    worker: str | None = None
    #: Why this run tests only part of the release (``-k smoke``, node ids...), None for a full run.
    partial: str | None = None
    #: Where deploy and environment builds report what they are doing (the plugin's terminal lines).
    progress: Progress = silent
    _deploy_began: float = 0.0

    @property
    def log_dir(self) -> Path:
        """Where this process's endpoints write their logs: next to the verdict, or, on a worker,
        its own folder in the scratch space (the controller copies them next to the verdict)."""
        if self.worker is None or self.scratch is None:
            return self.settings.verdict.parent
        return self.scratch / self.worker

    def make_scratch(self) -> Path:
        """On the controller, before the workers start."""
        self.scratch = Path(tempfile.mkdtemp(prefix="releasetest-run-"))
        return self.scratch

    def worker_logs(self) -> dict[str, str]:
        """On a worker, at its end: the logs its endpoints wrote, by file name with a ``-gwN`` suffix."""
        if self.worker is None or not self.log_dir.is_dir():
            return {}
        return {f"{p.stem}-{self.worker}{p.suffix}": p.read_text(encoding="utf-8", errors="replace")
                for p in sorted(self.log_dir.glob("*.log"))}

    def keep_worker_logs(self, logs: dict[str, str]) -> None:
        """On the controller: write a worker's logs next to the verdict."""
        for name, text in logs.items():
            path = self.settings.verdict.parent / Path(name).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def remove_scratch(self) -> None:
        if self.scratch is not None and self.worker is None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def output(self, path: Path) -> Path:
        """Where a file of the run goes: a partial run's files get a ``.partial`` suffix unless
        --release-partial-ok, so they never replace the stage's last full verdict and report."""
        if self.partial is None or self.settings.partial_ok:
            return path
        return path.with_name(f"{path.stem}.partial{path.suffix}")

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
            registry = registry_for(self.settings.config, self.settings.workspace_config,
                                    self.settings.verdict.parent / "registry")
            self.release = load_release(self.settings.config, artifact_versions=dict(self.settings.artifact or ()),
                                        registry=registry)
            self.stage = self.release.stage(self.settings.stage)
            check_target(self.settings.target, self.release, TargetOptions.from_settings(self.settings, None),
                         self.settings.sources)
            if self.release.data is None:
                raise ConfigError(self.release.manifest, "data", "missing [data] table",
                                  "name the holdout CSV, features, label and classes (see the example)")
            self.holdout = load_holdout(self.release.data)
            self.holdout.golden(self.release.data.golden_rows)
            self.suite_configs = parse_all(self.release, self.stage)
        except ReleaseTestError as exc:
            self.config_error = str(exc)
            raise

    def start_deploy(self) -> None:
        """Launch the endpoint without waiting for it, so its cold start overlaps collection;
        :meth:`deploy` waits. A failure is kept on the run, for :meth:`deploy` to raise."""
        if self.endpoint is not None or self.handle is not None or self.deploy_error is not None:
            return
        assert self.release and self.stage and self.holdout
        self._deploy_began = time.monotonic()
        self.progress(Event(f"deploying {self.release.name}@{self.release.short_id} to {self.settings.target} "
                            f"(stage {self.stage.name}, {self.stage.deployment.path.name})"))
        try:
            python = self._serving_python()
            golden = self.holdout.golden(self.release.data.golden_rows if self.release.data else 5)
            options = TargetOptions.from_settings(self.settings, os.environ.get(self.settings.key_env) or None,
                                                  python)
            self.endpoint = build_endpoint(self.settings.target, self.release, self.stage, options, golden)
            self.endpoint.start()
        except (ConfigError, DeployError) as exc:
            self._deploy_failed(exc)

    def deploy(self) -> EndpointHandle:
        """Deploy once (or finish what :meth:`start_deploy` began); later calls return the same
        handle or re-raise the same failure."""
        if self.handle is None and self.deploy_error is None:
            self.start_deploy()
            if self.endpoint is not None and self.deploy_error is None:
                try:
                    self.handle = self.endpoint.deploy()
                except DeployError as exc:
                    self._deploy_failed(exc)
                else:
                    self._deploy_ended()
                    cold = self.handle.info.get("ready_s")
                    self.progress(Event(f"endpoint ready in {self.deploy_seconds:.1f} s"
                                        + (f" (cold start {cold:.1f} s: server start to first golden prediction)"
                                           if cold is not None else "") + f": {self.handle.scoring_uri}"))
        if self.handle is None:
            raise DeployError(self.deploy_error or "the endpoint was not deployed", self.deploy_log_tail)
        return self.handle

    def cancel_deploy(self) -> None:
        """Stop an endpoint launched early that no selected test turned out to need."""
        if self.handle is None and self.deploy_error is None and self.endpoint is not None:
            self.endpoint.teardown()
            self.endpoint = None
            self.progress(Event("no selected test uses the endpoint: stopped it"))

    def _deploy_failed(self, exc: ConfigError | DeployError) -> None:
        if isinstance(exc, ConfigError):
            self.deploy_error = f"environment: {exc}"
        else:
            self.deploy_error, self.deploy_log_tail = exc.cause, exc.log_tail
        self._deploy_ended()
        self.progress(Event(f"deploy failed after {self.deploy_seconds:.1f} s "
                            "(cause and server log in the releasetest gate section)"))

    def _deploy_ended(self) -> None:
        self.deploy_seconds = round(time.monotonic() - self._deploy_began, 2)
        if self.endpoint is not None:
            self.warnings.extend(self.endpoint.notes())

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
            python = environment.build_isolated(env, cache, self.progress)
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

    def attach(self, handle: EndpointHandle | None, error: str | None, log_tail: str | None,
               worker: str, scratch: Path | None) -> None:
        """On an xdist worker: take the endpoint (or the failure) the controller deployed, and its scratch space."""
        self.handle, self.deploy_error, self.deploy_log_tail = handle, error, log_tail
        self.worker, self.scratch = worker, scratch

    def teardown(self) -> None:
        """Stop the endpoint unless it is to be kept; a failure becomes a verdict warning, so it
        can neither hide the verdict nor turn into a test error."""
        if self.endpoint is None or self.settings.keep:
            return
        try:
            self.endpoint.teardown()
        except Exception as exc:  # noqa: BLE001 - whatever the target raised, the verdict is still due
            self.warnings.append(f"endpoint teardown failed: {exc!r}")

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
            exit_status=gate_exit_status(decision, exit_status),
            started_at=self.started_at,
            finished_at=now_iso(),
            deployment=deployment,
            environment={**provenance.environment(), "conda_check": self.conda_check},
            git=provenance.git_info(self.settings.config.parent),
            trigger=dict(self.settings.trigger) if self.settings.trigger else None,
            partial=self.partial,
        )

    def _promote_needs_approval(self) -> bool | None:
        if self.release is None or self.stage is None or self.stage.promote_to is None:
            return None
        return self.release.stages[self.stage.promote_to].requires_approval

    def finish(self, exit_status: int, hook: VerdictHook | None = None) -> Finished:
        """End the run: tear down, decide, let ``hook`` add to the verdict, settle, seal and publish.

        The one path to a written verdict (after the tests, and after a configuration error).
        A hook may add findings and reasons or turn PROMOTE into BLOCK; :func:`settle` keeps it
        from promoting a blocked run.
        """
        self.teardown()
        verdict = self.verdict(exit_status)
        if hook is not None:
            decided = (verdict["decision"], list(verdict["reasons"]))
            hook(verdict)
            verdict["decision"], verdict["reasons"] = settle(decided, verdict.get("decision"),
                                                             verdict.get("reasons"))
            verdict["exit_status"] = gate_exit_status(verdict["decision"], exit_status)
        sealed = seal_verdict(verdict)
        return Finished(sealed, int(sealed["exit_status"]), self.publish(sealed, os.environ))

    def publish(self, verdict: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
        """Write a sealed verdict and everything made from it; return lines for the terminal.

        The verdict goes first and alone decides the gate: a report or history problem becomes
        a warning line, never a lost verdict.
        """
        write_json_atomic(self.output(self.settings.verdict), verdict)
        lines: list[str] = []
        if self.partial is not None:
            lines.append(f"partial run ({self.partial}): verdict marked partial"
                         + ("" if self.settings.partial_ok else
                            f", written to {self.output(self.settings.verdict).name}; the last full verdict stays "
                            "(--release-partial-ok to replace it)"))
        try:
            write_report(verdict, self.output(self.settings.report), digest_ok=True,
                         history=Store(self.settings.history_dir).earlier(verdict))
            lines.append(f"report: {self.output(self.settings.report)}")
            summary = self.output(self.settings.verdict.parent / "summary.md")
            lines += publish_summary(summary_markdown(verdict), summary, environ)
        except Exception as exc:  # noqa: BLE001 - a report bug must not cost the verdict
            lines.append(f"warning: report not written: {exc!r}")
        try:
            Store(self.settings.history_dir).add_verdict(verdict)
        except (OSError, ReleaseTestError) as exc:
            lines.append(f"warning: verdict not recorded in history {self.settings.history_dir}: {exc}")
        return lines

