"""One release run: settings, the release, its deployment, outcomes and findings.

Holds everything the gate needs and nothing pytest-specific, so the plugin only moves pytest
events into it. The deploy's lifecycle is :class:`~releasetest.endpoint.deployment.Deployment`'s,
writing the files is :mod:`releasetest.verdict.publish`'s; this module keeps the run's sequence.
"""


from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from releasetest.azureml.registry import registry_for
from releasetest.checks.registry import parse_all
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.deployment import Deployment, ReadyCallback
from releasetest.endpoint.factory import TargetOptions, build_endpoint, check_target
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import ConfigError, DeployError, ReleaseTestError
from releasetest.files import now_iso
from releasetest.progress import Event, Progress, silent
from releasetest.release import provenance
from releasetest.release.data import Holdout, load_holdout
from releasetest.release.manifest import Release, Stage, load_release
from releasetest.settings import Settings
from releasetest.suite_names import SUITES
from releasetest.verdict.decision import Results, build_verdict, decide, gate_exit_status, settle
from releasetest.verdict.publish import Outputs, publish
from releasetest.verdict.seal import seal_verdict


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
    """The run's sequence: :meth:`load`, deploy (:attr:`deployment`), record (:attr:`results`,
    :meth:`merge_findings`), :meth:`finish`."""

    settings: Settings
    #: Where deploy and environment builds report what they are doing (the plugin's terminal lines).
    progress: Progress = silent
    #: Told once when the endpoint this process deployed is ready (``pytest_releasetest_endpoint_ready``).
    on_ready: ReadyCallback | None = None
    #: On an xdist worker: its own folder in the run's scratch space, for the files it writes.
    worker_dir: Path | None = None
    #: On an xdist worker: what the controller deployed; elsewhere the run deploys its own.
    handed_over: InitVar[Deployment | None] = None
    deployment: Deployment = field(init=False)
    release: Release | None = None
    stage: Stage | None = None
    holdout: Holdout | None = None
    suite_configs: dict[str, Any] = field(default_factory=dict)
    config_error: str | None = None
    interrupted: str | None = None
    results: Results = field(default_factory=Results)
    findings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: The serving interpreter against the release's conda file (see :mod:`releasetest.release.environment`).
    conda_check: dict[str, Any] | None = None
    started_at: str = field(default_factory=now_iso)
    #: Why this run tests only part of the release (``-k smoke``, node ids...), None for a full run.
    partial: str | None = None

    def __post_init__(self, handed_over: Deployment | None) -> None:
        self.deployment = handed_over if handed_over is not None else Deployment(
            self._build_endpoint, self.on_ready, self.progress, keep=self.settings.keep)

    @property
    def log_dir(self) -> Path:
        """Where this process's endpoints and suites write their files: next to the verdict, or on
        a worker its :attr:`worker_dir` (the controller copies the logs next to the verdict)."""
        return self.worker_dir or self.settings.verdict.parent

    @property
    def handle(self) -> EndpointHandle | None:
        return self.deployment.handle

    @property
    def outputs(self) -> Outputs:
        s = self.settings
        return Outputs(s.verdict, s.report, s.history_dir, self.partial, s.partial_ok)

    def output(self, path: Path) -> Path:
        """Where a file of the run goes (a partial run's get a ``.partial`` suffix, see :class:`Outputs`)."""
        return self.outputs.path(path)

    @property
    def required(self) -> tuple[str, ...]:
        """Suites that must pass: as set, or every built-in suite that ships with this version."""
        return self.settings.require if self.settings.require is not None else builtin_suites()

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

    def merge_findings(self, findings: dict[str, Any]) -> None:
        """Add recorded findings (from a test, or an xdist worker's), see :func:`merge_findings`."""
        merge_findings(self.findings, findings)

    def finish(self, exit_status: int, hook: VerdictHook | None = None) -> Finished:
        """End the run: tear down, decide, let ``hook`` add to the verdict, settle, seal and publish.

        The one path to a written verdict (after the tests, and after a configuration error).
        A hook may add findings and reasons or turn PROMOTE into BLOCK; :func:`settle` keeps it
        from promoting a blocked run.
        """
        self.deployment.teardown()
        verdict = self.verdict(exit_status)
        if hook is not None:
            decided = (verdict["decision"], list(verdict["reasons"]))
            hook(verdict)
            verdict["decision"], verdict["reasons"] = settle(decided, verdict.get("decision"),
                                                             verdict.get("reasons"))
            verdict["exit_status"] = gate_exit_status(verdict["decision"], exit_status)
        sealed = seal_verdict(verdict)
        return Finished(sealed, int(sealed["exit_status"]), publish(sealed, self.outputs, os.environ))

    def verdict(self, exit_status: int) -> dict[str, Any]:
        """The unsealed verdict of what the run has recorded so far."""
        deployed = self.deployment
        decision, reasons = decide(self.results, self.required, deployed.failure.cause if deployed.failure else None,
                                   self.interrupted, self.config_error)
        endpoint = deployed.handle.describe() if deployed.handle else None
        if endpoint is not None and self.settings.keep:
            endpoint["kept"] = True
        return build_verdict(
            decision=decision, reasons=reasons, warnings=[*self.warnings, *deployed.warnings],
            stage=self.settings.stage or "", promote_to=self.stage.promote_to if self.stage else None,
            target=self.settings.target, release=self.release.describe() if self.release else None,
            endpoint=endpoint, deploy=deployed.record(server_log=decision == "BLOCK"),
            results=self.results, findings=self.findings, required=list(self.required),
            exit_status=gate_exit_status(decision, exit_status), started_at=self.started_at, finished_at=now_iso(),
            deployment=_stage_facts(self.release, self.stage),
            environment={**provenance.environment(), "conda_check": self.conda_check},
            git=provenance.git_info(self.settings.config.parent),
            trigger=dict(self.settings.trigger) if self.settings.trigger else None, partial=self.partial)

    def _build_endpoint(self) -> Endpoint:
        """The run's endpoint, not yet started, in the serving environment checked against the conda file."""
        assert self.release and self.stage and self.holdout
        self.progress(Event(f"deploying {self.release.name}@{self.release.short_id} to {self.settings.target} "
                            f"(stage {self.stage.name}, {self.stage.deployment.path.name})"))
        try:
            conda = self.release.inference.conda_file
            python, self.conda_check = serving_python(self.settings, conda, self.progress)
            self.warnings.extend(_drift(self.conda_check, conda, self.settings.env))
            golden = self.holdout.golden(self.release.data.golden_rows if self.release.data else 5)
            options = TargetOptions.from_settings(self.settings, os.environ.get(self.settings.key_env) or None,
                                                  python)
            return build_endpoint(self.settings.target, self.release, self.stage, options, golden)
        except ConfigError as exc:
            raise DeployError(f"environment: {exc}") from exc


def merge_findings(into: dict[str, Any], findings: dict[str, Any]) -> None:
    """Add recorded findings to ``into``. A list extends (skipping items already there), and a
    mapping updates, what is already recorded under the same key, so several tests on any xdist
    worker can add to one list, and a test that records the same evaluation again adds nothing
    twice; other values replace."""
    for suite, items in findings.items():
        recorded = into.setdefault(suite, {})
        for key, value in items.items():
            old = recorded.get(key)
            if isinstance(old, list) and isinstance(value, list):
                recorded[key] = old + [v for v in value if v not in old]
            elif isinstance(old, dict) and isinstance(value, dict):
                recorded[key] = {**old, **value}
            else:
                recorded[key] = value


def serving_python(settings: Settings, conda: Path | None, progress: Progress) -> tuple[str, dict[str, Any] | None]:
    """The interpreter the local endpoint runs in, and how it compares with the release's conda
    file (None when there is nothing to compare)."""
    if settings.target != "local" or conda is None:
        return sys.executable, None
    from releasetest.release import environment

    env = environment.parse_conda_env(conda)
    python = sys.executable
    if settings.env == "isolated":
        cache = Path(os.environ.get("RELEASETEST_CACHE_DIR", Path.home() / ".cache" / "releasetest")) / "envs"
        python = environment.build_isolated(env, cache, progress)
    found = environment.report(env, python)
    found["mode"] = settings.env
    return python, found


def _drift(found: dict[str, Any] | None, conda: Path | None, mode: str) -> list[str]:
    """A serving environment that differs from the conda file: a warning under ``--release-env
    warn``, else a configuration error."""
    if found is None or conda is None or not found["mismatches"]:
        return []
    if mode != "warn":
        raise ConfigError(conda, "dependencies", "the serving environment differs from the conda file: "
                          + "; ".join(found["mismatches"]),
                          "install the pinned versions, update the pins, or use --release-env isolated")
    return [f"environment differs from {conda.name}: " + "; ".join(found["mismatches"])]


def _stage_facts(release: Release | None, stage: Stage | None) -> dict[str, Any] | None:
    """The verdict's ``deployment`` section: the stage's v1 deployment config, secrets redacted."""
    if release is None or stage is None:
        return None
    dc = stage.deployment
    approval = release.stages[stage.promote_to].requires_approval if stage.promote_to is not None else None
    return {"stage": stage.name, "config": dc.path.name, "settings": provenance.redact(dc.raw),
            "workers": dc.worker_count, "scoring_timeout_ms": dc.scoring_timeout_ms,
            "requires_approval_to_promote": approval}
