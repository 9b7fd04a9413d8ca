"""Run settings, resolved once from the command line, then the environment, then the ini file.

Each option is declared once here (name, help, default, parser; the flag, ini key and environment
variable follow from the name). :func:`add_options` adds them to a parser: the pytest plugin adds
every one as ``--release-NAME`` with its ini key, the ``releasetest`` CLI the ones a command shares
with the gate as ``--NAME``, with the same default, parser and help.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.suite_names import SUITES

DEFAULT_CONFIG = "release.toml"
DEFAULT_VERDICT = "releasetest-out/verdict.json"
#: The history beside the default verdict: the gate's default store, and the CLI's.
DEFAULT_HISTORY = str(Path(DEFAULT_VERDICT).parent / "history")
DEFAULT_TARGET = "local"
DEFAULT_KEY_ENV = "RELEASETEST_ENDPOINT_KEY"
DEFAULT_READY_TIMEOUT = 120.0
DEFAULT_PORT = 0
DEFAULT_ISOLATION = "auto"
DEFAULT_MAX_BODY_MB = 10.0
#: History keeps the holdout predictions of this many releases beyond those a gate may still compare with.
DEFAULT_KEEP_PREDICTIONS = 10
MIB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = int(DEFAULT_MAX_BODY_MB * MIB)
#: How the plugin spells an option's flag; the CLI's prefix is plain ``--``.
PLUGIN_PREFIX = "--release-"


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


ISOLATION_MODES = ("auto", "required", "off")


def parse_isolation(value: str) -> str:
    if value not in ISOLATION_MODES:
        raise SettingError(f"unknown isolation {value!r}: use auto (the best sandbox this machine makes), "
                           "required (bwrap or a configuration error) or off (no sandbox, recorded)")
    return value


def parse_port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise SettingError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise SettingError(f"port {port} is outside 0-65535 (0 picks a free port)")
    return port


def parse_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise SettingError(f"{value!r} is not a whole number") from None
    if count < 0:
        raise SettingError(f"{count} is below 0")
    return count


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
    """One setting: ``name`` gives the flag (``--release-NAME``), the ini key (``release_NAME``) and the
    environment variable (``RELEASETEST_NAME``); ``default`` is text, as a user would write it."""

    name: str
    help: str
    default: str | None
    parse: Callable[[str], Any] = str
    is_path: bool = False
    is_flag: bool = False
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return PLUGIN_PREFIX + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """The plugin's attribute name: prefixed, since pytest's option namespace is shared."""
        return "release_" + self.name

    @property
    def ini(self) -> str:
        return "release_" + self.name

    @property
    def env(self) -> str:
        return "RELEASETEST_" + self.name.upper()

    @property
    def help_with_default(self) -> str:
        return f"{self.help} Default: {self.default}." if self.default and not self.is_flag else self.help


OPTIONS: tuple[Option, ...] = (
    Option("stage", "Stage to deploy and gate (a [stages.NAME] of the manifest, e.g. devtest). "
           "Giving it turns the release run on.", None, metavar="NAME"),
    Option("config", "Release manifest (release.toml).", DEFAULT_CONFIG, is_path=True, metavar="PATH"),
    Option("target", "Where the release runs: local (azmlinfsrv on 127.0.0.1), url (an existing endpoint, which "
           "must serve the release) or azureml (an Azure ML online endpoint).", DEFAULT_TARGET, parse_target,
           metavar="local|url|azureml"),
    Option("url", "Scoring URI of an existing endpoint, for --release-target url: it must answer liveness and the "
           "golden rows as recorded at training time.", None, metavar="URL"),
    Option("key_env", "Environment variable holding the endpoint key, for --release-target url.",
           DEFAULT_KEY_ENV, metavar="VAR"),
    Option("verdict", "The verdict JSON: the gate writes it, with its report and server logs beside it; "
           "promote reads it.", DEFAULT_VERDICT, is_path=True, metavar="PATH"),
    Option("keep", "Leave the deployed endpoint running after the run and print its URL.", "false",
           parse_bool, is_flag=True),
    Option("partial_ok", "Let a partial run (-k, -m, --co, node ids, deselected tests) write the stage's "
           "verdict, report and summary files; without it they go to *.partial.* beside them, and the last full "
           "verdict stays.", "false", parse_bool, is_flag=True),
    Option("ready_timeout", "Seconds the endpoint gets to become ready (liveness and golden prediction).",
           f"{DEFAULT_READY_TIMEOUT:g}", parse_positive_float, metavar="SECONDS"),
    Option("require", "Suites that must run and pass for PROMOTE, comma-separated. "
           "Default: every built-in suite.", None, parse_suites, metavar="SUITES"),
    Option("port", "Port for the local endpoint on 127.0.0.1 (0 picks a free one).", str(DEFAULT_PORT), parse_port,
           metavar="PORT"),
    Option("env", "Serving environment vs the release's conda file: warn (report drift), strict (drift "
           "blocks), isolated (serve from a venv built from its pip pins, cached).", "warn", parse_env_mode,
           metavar="warn|strict|isolated"),
    Option("max_body_mb", "Largest request body the local endpoint accepts, in MB; larger gets 413.",
           f"{DEFAULT_MAX_BODY_MB:g}", parse_positive_float, metavar="MB"),
    Option("artifact", "Artifact version to test when the manifest lists several, NAME=VERSION, "
           "comma-separated. Default: the highest listed version of each.", None, parse_artifact_versions,
           metavar="NAME=VERSION"),
    Option("history", "Directory of the local release history (verdicts, approvals, promotions) that "
           "every run records its verdict in. Default: history/ beside the verdict.", None, is_path=True,
           metavar="DIR"),
    Option("keep_predictions", "History keeps the holdout predictions of every release a gate may still compare "
           "with (each stage's production and the release a rollback would restore) and of this many other "
           "releases, the last gated; older ones are deleted when a run keeps its own.",
           str(DEFAULT_KEEP_PREDICTIONS), parse_count, metavar="N"),
    Option("trigger", "What started the run, kept in the verdict: kind=git|artifact|image|schedule|api|manual "
           "plus key=value pairs (commit, branch, model, version, image, cron, run_url, ...), comma-separated.",
           None, parse_trigger, metavar="kind=KIND,KEY=VALUE"),
    Option("workspace_config", "Azure ML workspace config.json (subscription_id, resource_group, workspace_name) "
           "for --release-target azureml. Default: aml_config/config.json next to the manifest.", None,
           is_path=True, metavar="PATH"),
    Option("isolation", "Sandbox of the release's code on the local endpoint (the gate's, promote's), its "
           "champion, your own tests' pytest and isolated builds: auto (bwrap, else unshare, else none, said in "
           "one line), required (bwrap, else a configuration error) or off (no sandbox; recorded in the verdict).",
           DEFAULT_ISOLATION,
           parse_isolation, metavar="auto|required|off"),
    Option("traffic", "Recorded production traffic for the drift and shadow suites (data collector model_inputs "
           "JSON lines, JSON lines of request bodies or a CSV; a file, folder or glob). Replaces the manifest's "
           "[production] traffic.", None, is_path=True, metavar="PATH"),
    Option("policy", "A TOML file the CI owns, outside the release folder: minimum thresholds and required suites "
           "that release.toml can tighten but not loosen (a looser value is a configuration error).", None,
           is_path=True, metavar="PATH"),
)

OPTION: Mapping[str, Option] = {opt.name: opt for opt in OPTIONS}


def _spelled(text: str, prefix: str) -> str:
    """``text`` with the table's flags (``--release-NAME``) spelled as the parser at hand spells them."""
    return text.replace(PLUGIN_PREFIX, prefix)


def _parsed_now(opt: Option, prefix: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = opt.parse(text)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(_spelled(str(exc), prefix)) from None
        return Path(value) if opt.is_path else value

    return convert


def add_options(addoption: Callable[..., object], names: Iterable[str] | None = None, *, prefix: str = "--",
                check_only: Callable[[Option], Callable[[str], str]] | None = None) -> None:
    """Add the named options (every one by default) through ``addoption``, as pytest-benchmark's
    ``add_*_options`` do: an argparse ``add_argument`` (the CLI, flags ``--NAME``) or pytest's
    ``group.addoption`` (the plugin, ``prefix=PLUGIN_PREFIX``).

    Without ``check_only`` a value is parsed as it is read, paths become :class:`~pathlib.Path`, and
    the default is the table's. With it (the plugin) ``check_only(option)`` refuses a bad value at
    once but keeps the text, and the default stays None, so that :func:`resolve` can rank the
    command line above the environment and the ini file.
    """
    for opt in OPTIONS if names is None else [OPTION[name] for name in names]:
        flag = prefix + opt.name.replace("_", "-")
        where = {"dest": opt.dest if check_only else opt.name, "help": _spelled(opt.help_with_default, prefix)}
        if opt.is_flag:
            addoption(flag, action="store_true", default=None if check_only else False, **where)
        else:
            addoption(flag, metavar=opt.metavar, default=None if check_only else opt.default,
                      type=check_only(opt) if check_only else _parsed_now(opt, prefix), **where)


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
    isolation: str = DEFAULT_ISOLATION
    traffic: Path | None = None
    policy: Path | None = None
    keep_predictions: int = DEFAULT_KEEP_PREDICTIONS

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

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * MIB)

    def origins(self, cwd: Path) -> str:
        """``name=value (source)`` for the stage, manifest and target and for every setting not at its
        default, as pytest-django's report header names where its settings came from: a surprising
        value is one look away from its cause (an ini key, a leftover environment variable)."""
        here = cwd.resolve()
        return ", ".join(f"{opt.name}={_shown(getattr(self, opt.name), here)} ({self.sources[opt.name]})"
                         for opt in OPTIONS
                         if opt.name in ("stage", "config", "target") or self.sources[opt.name] != "default")


def _shown(value: Any, cwd: Path) -> str:
    """A setting's value as the user would write it, paths relative to where pytest runs."""
    if isinstance(value, Path):
        return str(value.relative_to(cwd)) if value.is_relative_to(cwd) else str(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join("=".join(item) if isinstance(item, tuple) else item for item in value)
    return str(value)


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
