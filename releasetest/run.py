"""One release run: settings, the release, its deployment, outcomes and findings.

Holds everything the gate needs and nothing pytest-specific, so the plugin only moves pytest
events into it. The deploy's lifecycle is :class:`~releasetest.endpoint.deployment.Deployment`'s,
writing the files is :mod:`releasetest.verdict.publish`'s; this module keeps the run's sequence.
"""


from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path
from typing import Any

import tomllib

from releasetest.azureml.registry import registry_for
from releasetest.checks.registry import evidence, findings_warnings, parse_all, preparers
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.deployment import Deployment, ReadyCallback
from releasetest.endpoint.factory import TargetOptions, build_endpoint, check_target
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.sandbox import choose
from releasetest.errors import ConfigError, DeployError, ReleaseTestError
from releasetest.files import cache_dir, now_iso
from releasetest.progress import Event, Progress, silent
from releasetest.release import provenance
from releasetest.release.data import Holdout, load_holdout
from releasetest.release.manifest import MLFLOW_SCORE, Release, Stage, load_release
from releasetest.release.policy import Policy, apply_policy, check_required, load_policy
from releasetest.release.traffic import Traffic, read_traffic
from releasetest.separation import (
    TEAM_SUITE,
    TeamOutcome,
    add_findings,
    preloaded_reason,
    startup_changes,
    startup_fingerprint,
)
from releasetest.settings import Settings
from releasetest.suite_names import PRODUCTION_SUITES, SUITES
from releasetest.verdict.decision import Results, build_verdict, decide, gate_exit_status, settle
from releasetest.verdict.predictions import Predictions, holdout_digest
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
    #: The recorded production traffic (``[production]``, see :meth:`load_traffic`); None without any.
    traffic: Traffic | None = None
    #: The holdout's content digest, computed once at load: predictions kept in history pair by it.
    holdout_digest: str | None = None
    #: The candidate's predictions on the holdout, encoded after acceptance scoring; history keeps
    #: them when the run PROMOTEs, for the next gate's comparison with production.
    predictions: Predictions | None = None
    suite_configs: dict[str, Any] = field(default_factory=dict)
    #: What suites prepared while the endpoint started (see :meth:`prepare_while_starting`), by suite.
    prepared: dict[str, Any] = field(default_factory=dict)
    #: The CI's floors (``--release-policy``), applied to the release's suite tables at load.
    policy: Policy | None = None
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
    #: The interpreter's start-up files before the deploy (in the process that decides only).
    startup: dict[str, str] | None = None
    #: Changes to them since, each a reason to BLOCK (see :mod:`releasetest.separation`).
    tampering: list[str] = field(default_factory=list)
    #: Release code that ran in the gate's process (its first one, before an ignored ini was
    #: dropped, or this one) before the gate could keep it out: a reason to BLOCK.
    preloaded: list[str] = field(default_factory=list)

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
        return Outputs(s.verdict, s.report, s.history_dir, self.partial, s.partial_ok, s.keep_predictions)

    def output(self, path: Path) -> Path:
        """Where a file of the run goes (a partial run's get a ``.partial`` suffix, see :class:`Outputs`)."""
        return self.outputs.path(path)

    @property
    def required(self) -> tuple[str, ...]:
        """Suites that must pass: as set, or every built-in suite that ships with this version (the
        drift and shadow suites only when the release has recorded production traffic); plus the CI
        policy's required suites."""
        if self.settings.require is not None:
            required = self.settings.require
        else:
            has_traffic = self.release is not None and self.release.production is not None
            required = tuple(s for s in builtin_suites() if has_traffic or s not in PRODUCTION_SUITES)
        return required + tuple(s for s in (self.policy.required_suites if self.policy else ()) if s not in required)

    def load(self, traffic: bool = True) -> None:
        """Parse and verify the release; a problem is kept as the run's config error and re-raised.
        Without ``traffic`` the recorded production traffic is left to :meth:`load_traffic` (the
        process that deploys reads it while the endpoint starts)."""
        assert self.settings.stage is not None
        if self.worker_dir is None:
            self.startup = startup_fingerprint()
        try:
            registry = registry_for(self.settings.config, self.settings.workspace_config,
                                    self.settings.verdict.parent / "registry")
            self.release = load_release(self.settings.config, artifact_versions=dict(self.settings.artifact or ()),
                                        registry=registry, traffic=self.settings.traffic)
            self.stage = self.release.stage(self.settings.stage)
            if self.settings.policy is not None:
                policy = load_policy(self.settings.policy, self.release.root)
                check_required(policy, self.required, narrowed=self.settings.require is not None)
                self.policy = policy
                self.release = replace(self.release, suite_tables=apply_policy(
                    self.release.suite_tables, self.policy, self.release.manifest))
            check_target(self.settings.target, self.release, TargetOptions.from_settings(self.settings),
                         self.settings.sources)
            if self.release.data is None:
                raise ConfigError(self.release.manifest, "data", "missing [data] table",
                                  "name the holdout CSV, features, label and classes (see the example)")
            self.holdout = load_holdout(self.release.data)
            self.holdout.golden(self.release.data.golden_rows)
            self.holdout_digest = holdout_digest(self.holdout.features, self.holdout.rows, self.holdout.labels)
            self.suite_configs = parse_all(self.release, self.stage)
            self.warnings.extend(w for cfg in self.suite_configs.values() for w in getattr(cfg, "warnings", ()))
        except ReleaseTestError as exc:
            self.config_error = str(exc)
            raise
        if traffic:
            self.load_traffic()

    def load_traffic(self) -> None:
        """Read the release's recorded production traffic (``[production]``), if it has any; a
        problem is the run's config error, as in :meth:`load`."""
        production = self.release.production if self.release is not None else None
        if production is None or self.release is None or self.release.data is None:
            return
        try:
            self.traffic = read_traffic(production.traffic, self.release.data.features, sample=production.sample,
                                        base=self.release.root, key=production.key, outputs=production.outputs)
        except ReleaseTestError as exc:
            self.config_error = str(exc)
            raise

    def prepare_while_starting(self, suites: Iterable[str]) -> None:
        """Have the selected suites' preparers (:mod:`releasetest.checks.registry`) run while the
        endpoint starts. A preparer that fails costs only its head start: the suite does the work
        itself, and the verdict warns."""
        def prepare() -> None:
            assert self.release is not None and self.stage is not None and self.holdout is not None
            for suite in preparers(suites):
                try:
                    self.prepared[suite.name] = suite.prepare(self.suite_configs.get(suite.name), self.release,
                                                              self.stage, self.holdout)
                except Exception as exc:  # noqa: BLE001 - the suite does the same work itself, and reports it
                    self.warnings.append(f"{suite.name}: preparing while the endpoint started failed: {exc!r}")

        if self.release is not None and self.holdout is not None:
            self.deployment.defer(prepare)

    def keep_predictions(self, task: str, predictions: list[Any]) -> Predictions:
        """The candidate's served predictions in history's encoding, kept for :meth:`finish`."""
        assert self.release is not None and self.release.data is not None and self.holdout_digest is not None
        self.predictions = Predictions.encode(self.release.release_id, self.holdout_digest, task, predictions,
                                              self.release.data.classes)
        return self.predictions

    def merge_findings(self, findings: dict[str, Any]) -> None:
        """Add recorded findings (from a test, or an xdist worker's), see :func:`merge_findings`."""
        merge_findings(self.findings, findings)

    def check_startup(self) -> list[str]:
        """Record any change to the start-up files since :meth:`load` (the release's code can make
        them while it runs: processes started afterwards would run it); return all recorded."""
        if self.startup is not None:
            for line in startup_changes(self.startup, startup_fingerprint()):
                if line not in self.tampering:
                    self.tampering.append(line)
        return self.tampering

    def add_team(self, outcome: TeamOutcome) -> None:
        """Count the team's own tests (run in their own pytest): their reports, a problem with that
        run as a failure, and findings that do not replace the built-in suites' own."""
        for r in outcome.reports:
            self.results.add(r.suite, r.nodeid, r.when, r.outcome, r.message, r.seconds)
        for problem in outcome.problems:
            self.results.add(TEAM_SUITE, f"{TEAM_SUITE}: {problem}", "call", "failed", problem)
        refused = add_findings(self.findings, outcome.findings)
        if refused:
            self.warnings.append("the team's tests may not replace the built-in suites' findings; ignored: "
                                 + ", ".join(refused))

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
        return Finished(sealed, int(sealed["exit_status"]),
                        publish(sealed, self.outputs, os.environ, self.predictions))

    def verdict(self, exit_status: int) -> dict[str, Any]:
        """The unsealed verdict of what the run has recorded so far."""
        deployed = self.deployment
        failure = deployed.failure
        decision, reasons = decide(self.results, self.required, failure.cause if failure else None,
                                   self.interrupted, self.config_error, failure.answered if failure else False,
                                   evidence(self.findings, self.required))
        if self.check_startup():
            decision, reasons = "BLOCK", reasons if decision == "BLOCK" else []
            reasons.append("the release changed the interpreter's start-up files during the gate (processes started "
                           "afterwards ran them; discard this machine's environment): " + "; ".join(self.tampering))
        if self.preloaded:
            decision, reasons = "BLOCK", reasons if decision == "BLOCK" else []
            reasons.append(preloaded_reason(self.preloaded))
        endpoint = deployed.handle.describe() if deployed.handle else None
        if endpoint is not None and self.settings.keep:
            endpoint["kept"] = True
        verdict = build_verdict(
            decision=decision, reasons=reasons,
            warnings=[*self.warnings, *deployed.warnings, *findings_warnings(self.findings)],
            stage=self.settings.stage or "", promote_to=self.stage.promote_to if self.stage else None,
            target=self.settings.target, release=self.release.describe() if self.release else None,
            endpoint=endpoint, deploy=deployed.record(server_log=decision == "BLOCK"),
            results=self.results, findings=self.findings, required=list(self.required),
            exit_status=gate_exit_status(decision, exit_status), started_at=self.started_at, finished_at=now_iso(),
            deployment=_stage_facts(self.release, self.stage),
            environment={**provenance.environment(), "conda_check": self.conda_check},
            git=provenance.git_info(self.settings.config.parent),
            trigger=dict(self.settings.trigger) if self.settings.trigger else None, partial=self.partial,
            policy=self.policy.describe() if self.policy else None)
        if self.release is None:
            verdict["manifest"] = manifest_name(self.settings.config)
        return verdict

    def _build_endpoint(self) -> Endpoint:
        """The run's endpoint, not yet started, in the serving environment checked against the conda file."""
        assert self.release and self.stage and self.holdout
        self.progress(Event(f"deploying {self.release.name}@{self.release.short_id} to {self.settings.target} "
                            f"(stage {self.stage.name}, {self.stage.deployment.path.name})"))
        try:
            conda = self.release.inference.conda_file
            nocode = self.release.inference.entry_script == MLFLOW_SCORE
            python, self.conda_check = serving_python(self.settings, conda, self.progress, nocode)
            self.warnings.extend(_drift(self.conda_check, conda, self.settings.env))
            self.warnings.extend(_uncompared(self.stage, conda, self.settings.target, self.settings.env))
            self.warnings.extend(_unpinned(self.release, conda, self.settings.env, self.conda_check))
            golden = self.holdout.golden(self.release.data.golden_rows if self.release.data else 5)
            if self.settings.target == "local":
                self.progress(Event(choose(self.settings.isolation).line()))
            options = TargetOptions.from_settings(self.settings, python)
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


def serving_python(settings: Settings, conda: Path | None, progress: Progress,
                   nocode: bool = False) -> tuple[str, dict[str, Any] | None]:
    """The interpreter the local endpoint runs in, and how it compares with the release's conda
    file (None when there is nothing to compare). An isolated build for the no-code MLflow script
    (``nocode``) adds what that script needs and the model's file leaves out, recorded as ``added``."""
    if settings.target != "local" or conda is None:
        return sys.executable, None
    from releasetest.release import environment

    env = environment.parse_conda_env(conda)
    python = sys.executable
    added: tuple[str, ...] = ()
    if settings.env == "isolated":
        added = environment.nocode_additions(env) if nocode else ()
        python = environment.build_isolated(env, cache_dir("envs"), progress, added)
    found = environment.report(env, python)
    found["mode"] = settings.env
    if settings.env == "isolated":
        found["added"] = list(added)
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


def _uncompared(stage: Stage, conda: Path | None, target: str, mode: str) -> list[str]:
    """A v2 stage whose environment is a registered or curated reference, with no conda file: the gate
    cannot read what it installs. A warning under ``--release-env warn`` that says what a comparison
    would need; a configuration error under ``strict`` and ``isolated``, which promise one."""
    from releasetest.azureml.v2 import DeploymentV2

    dc = stage.deployment
    if target != "local" or conda is not None or not isinstance(dc, DeploymentV2) \
            or dc.environment.ref is None:
        return []
    ref = dc.environment.ref
    need = ("environment: {conda_file: ..., image: ...} with the conda file the environment was built from "
            f"(az ml environment show shows it for {ref})")
    if mode != "warn":
        raise ConfigError(dc.path, "environment", f"{ref} is a registered or curated environment: the gate cannot "
                          f"read what it installs, so --release-env {mode} has nothing to "
                          f"{'build from' if mode == 'isolated' else 'compare with'}",
                          f"give the deployment {need}, or use --release-env warn")
    return [f"environment not compared: {dc.path.name} names the registered or curated environment {ref}, whose "
            f"packages the gate cannot read, so this run served from its own interpreter; to compare, give the "
            f"deployment {need}"]


def manifest_name(path: Path) -> str:
    """What names a release that did not load, in history and the report: the manifest's
    ``[release] name`` if the file still parses that far, else the manifest's path."""
    try:
        name = tomllib.loads(path.read_text(encoding="utf-8")).get("release", {}).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return f"{name} ({path.name})" if isinstance(name, str) and name else str(path)


def _unpinned(release: Release, conda: Path | None, mode: str, found: dict[str, Any] | None) -> list[str]:
    """Packages the artifacts need at load time that the conda file does not pin: a warning, a
    configuration error under ``--release-env strict``; kept in the verdict's conda check."""
    if conda is None:
        return []
    from releasetest.release import environment

    env = environment.parse_conda_env(conda)
    lines = environment.unpinned_needs(env, environment.artifact_needs(f.path for a in release.artifacts
                                                                        for f in a.files), release.root)
    if found is not None:
        found["unpinned"] = lines
    if lines and mode == "strict":
        raise ConfigError(conda, "dependencies", "the release's artifacts need packages it does not pin: "
                          + "; ".join(lines), "pin each one in the pip section, or run with --release-env warn")
    return lines


def _stage_facts(release: Release | None, stage: Stage | None) -> dict[str, Any] | None:
    """The verdict's ``deployment`` section: the stage's v1 deployment config, secrets redacted."""
    if release is None or stage is None:
        return None
    dc = stage.deployment
    approval = release.stages[stage.promote_to].requires_approval if stage.promote_to is not None else None
    return {"stage": stage.name, "config": dc.path.name, "settings": provenance.redact(dc.raw),
            "workers": dc.worker_count, "scoring_timeout_ms": dc.scoring_timeout_ms,
            "requires_approval_to_promote": approval}
