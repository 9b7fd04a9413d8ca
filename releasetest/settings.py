"""Run settings, resolved once from the command line, then the environment, then the ini file.

Each option is declared once here (name, help, default, parser); the pytest plugin turns the
declarations into ``--release-*`` options and ini keys with the same help text, and the
``releasetest`` CLI reuses the parsers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.suite_names import SUITES


class SettingError(ValueError):
    """A setting has a value the run cannot use; the message says which and why."""


#: Where a release can be deployed; the CLI's ``--target`` and :mod:`releasetest.endpoint.factory` use these.
TARGETS = ("local", "url", "azureml")


def parse_target(value: str) -> str:
    if value not in TARGETS:
        raise SettingError(f"unknown target {value!r}: use 'local' (azmlinfsrv on 127.0.0.1), "
                           "'url' (an existing endpoint, with --release-url) "
                           "or 'azureml' (an Azure ML online endpoint, needs the azureml extra)")
    return value


def parse_positive_float(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise SettingError(f"{value!r} is not a number") from None
    if not f > 0:
        raise SettingError(f"{value!r} must be greater than 0")
    return f


def parse_env_mode(value: str) -> str:
    if value not in ("warn", "strict", "isolated"):
        raise SettingError(f"unknown environment mode {value!r}: use warn (report drift from the conda file), "
                           "strict (drift blocks) or isolated (serve from a venv built from the conda file)")
    return value


def parse_port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise SettingError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise SettingError(f"port {port} is outside 0-65535 (0 picks a free port)")
    return port


def parse_suites(value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise SettingError(f"unknown suite(s) {', '.join(unknown)}: choose from {', '.join(SUITES)}")
    return names


def parse_artifact_versions(value: str) -> tuple[tuple[str, str], ...]:
    """``NAME=VERSION[,NAME=VERSION...]``: pick listed artifact versions (e.g. from a trigger payload)."""
    picks: dict[str, str] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        name, sep, version = (x.strip() for x in part.partition("="))
        if not sep or not name or not version:
            raise SettingError(f"{part!r} is not NAME=VERSION (e.g. support-vector-classifier=2)")
        if name in picks and picks[name] != version:
            raise SettingError(f"{name} is given two versions ({picks[name]} and {version})")
        picks[name] = version
    return tuple(picks.items())


TRIGGER_KINDS = ("git", "artifact", "image", "schedule", "api", "manual")


def parse_trigger(value: str) -> tuple[tuple[str, str], ...]:
    """``kind=KIND,key=value,...``: what started the pipeline run, kept in the verdict's ``trigger``."""
    fields: dict[str, str] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        key, sep, val = (x.strip() for x in part.partition("="))
        if not sep or not key:
            raise SettingError(f"{part!r} is not KEY=VALUE (e.g. kind=artifact,model=svc,version=3)")
        fields[key] = val
    if fields.get("kind") not in TRIGGER_KINDS:
        raise SettingError(f"trigger needs kind= one of {', '.join(TRIGGER_KINDS)} (got {fields.get('kind')!r})")
    return tuple(fields.items())


def parse_bool(value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise SettingError(f"{value!r} is not a boolean (use true or false)")


@dataclass(frozen=True)
class Option:
    name: str  # "stage" -> --release-stage, ini release_stage, env RELEASETEST_STAGE
    help: str
    default: str | None
    parse: Callable[[str], Any] = str
    is_path: bool = False
    is_flag: bool = False
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--release-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "release_" + self.name

    @property
    def env(self) -> str:
        return "RELEASETEST_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("stage", "Stage to deploy and gate (a [stages.NAME] of the manifest, e.g. devtest). "
           "Giving it turns the release run on.", None, metavar="NAME"),
    Option("config", "Release manifest (release.toml).", "release.toml", is_path=True, metavar="PATH"),
    Option("target", "Where to deploy: local (azmlinfsrv on 127.0.0.1), url (an existing endpoint) "
           "or azureml (an Azure ML online endpoint).", "local", parse_target, metavar="local|url|azureml"),
    Option("url", "Scoring URI of an existing endpoint, for --release-target url.", None, metavar="URL"),
    Option("key_env", "Environment variable holding the endpoint key, for --release-target url.",
           "RELEASETEST_ENDPOINT_KEY", metavar="VAR"),
    Option("verdict", "Where to write the verdict JSON.", "releasetest-out/verdict.json",
           is_path=True, metavar="PATH"),
    Option("keep", "Leave the deployed endpoint running after the run and print its URL.", "false",
           parse_bool, is_flag=True),
    Option("partial_ok", "Let a partial run (-k, -m, --co, node ids, deselected tests) write the stage's "
           "verdict, report and summary files; without it they go to *.partial.* beside them, and the last full "
           "verdict stays.", "false", parse_bool, is_flag=True),
    Option("ready_timeout", "Seconds the endpoint gets to become ready (liveness and golden prediction).",
           "120", parse_positive_float, metavar="SECONDS"),
    Option("require", "Suites that must run and pass for PROMOTE, comma-separated. "
           "Default: every built-in suite.", None, parse_suites, metavar="SUITES"),
    Option("port", "Port for the local endpoint on 127.0.0.1 (0 picks a free one).", "0", parse_port,
           metavar="PORT"),
    Option("env", "Serving environment vs the release's conda file: warn (report drift), strict (drift "
           "blocks), isolated (serve from a venv built from its pip pins, cached).", "warn", parse_env_mode,
           metavar="warn|strict|isolated"),
    Option("max_body_mb", "Largest request body the local endpoint accepts, in MB; larger gets 413.", "10",
           parse_positive_float, metavar="MB"),
    Option("artifact", "Artifact version to test when the manifest lists several, NAME=VERSION, "
           "comma-separated. Default: the highest listed version of each.", None, parse_artifact_versions,
           metavar="NAME=VERSION"),
    Option("history", "Directory of the local release history (verdicts, approvals, promotions) that "
           "every run records its verdict in. Default: history/ beside the verdict.", None, is_path=True,
           metavar="DIR"),
    Option("trigger", "What started the run, kept in the verdict: kind=git|artifact|image|schedule|api|manual "
           "plus key=value pairs (commit, branch, model, version, image, cron, run_url, ...), comma-separated.",
           None, parse_trigger, metavar="kind=KIND,KEY=VALUE"),
    Option("workspace_config", "Azure ML workspace config.json (subscription_id, resource_group, workspace_name) "
           "for --release-target azureml. Default: aml_config/config.json next to the manifest.", None,
           is_path=True, metavar="PATH"),
)


@dataclass(frozen=True)
class Settings:
    stage: str | None
    config: Path
    target: str
    url: str | None
    key_env: str
    verdict: Path
    keep: bool
    partial_ok: bool
    ready_timeout: float
    require: tuple[str, ...] | None
    port: int
    env: str
    max_body_mb: float
    artifact: tuple[tuple[str, str], ...] | None
    history: Path | None
    sources: Mapping[str, str]
    workspace_config: Path | None = None
    trigger: tuple[tuple[str, str], ...] | None = None

    @property
    def active(self) -> bool:
        return bool(self.stage)

    @property
    def history_dir(self) -> Path:
        return self.history or self.verdict.parent / "history"

    @property
    def report(self) -> Path:
        """The HTML report goes beside the verdict, so one CI artifact folder holds both."""
        return self.verdict.parent / "report.html"


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    ini: Mapping[str, str | None],
    cwd: Path,
    ini_dir: Path,
) -> Settings:
    """First of CLI, environment, ini, default wins; relative paths from where they were written."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        raw: Any
        if cli.get(opt.name) not in (None, False):
            raw, src, base = cli[opt.name], "command line", cwd
        elif env.get(opt.env):
            raw, src, base = env[opt.env], f"environment {opt.env}", cwd
        elif ini.get(opt.ini) not in (None, ""):
            raw, src, base = ini[opt.ini], f"ini {opt.ini}", ini_dir
        else:
            raw, src, base = opt.default, "default", cwd
        if raw is True:
            raw = "true"
        try:
            value = opt.parse(raw) if raw is not None else None
        except SettingError as exc:
            raise SettingError(f"{opt.flag} (from {src}): {exc}") from None
        if opt.is_path and value is not None:
            value = (base / value).resolve()
        values[opt.name] = value
        sources[opt.name] = src
    return Settings(sources=sources, **values)
