"""The one place endpoints are built: the run's target, the champion, and promotion's deploys.

Every caller names a target from :data:`releasetest.settings.TARGETS` (or ``champion-url``) and
passes the values that target needs; nothing else constructs an endpoint class.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasetest.azureml.mapping import Purpose
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.formats import wire_spec
from releasetest.errors import ConfigError
from releasetest.release.data import load_holdout
from releasetest.release.manifest import Release, Stage
from releasetest.release.mlflow_signature import golden_refusal
from releasetest.settings import (
    DEFAULT_ISOLATION,
    DEFAULT_KEY_ENV,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORT,
    DEFAULT_READY_TIMEOUT,
    TARGETS,
    Settings,
)

Golden = tuple[list[list[float]], list[Any]]


@dataclass(frozen=True)
class TargetOptions:
    """What a target needs beyond the release and stage; each target reads only its own fields."""

    log_dir: Path
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    url: str | None = None
    key_env: str = DEFAULT_KEY_ENV
    port: int = DEFAULT_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    python: str = sys.executable
    workspace_config: Path | None = None
    endpoint_name: str | None = None
    #: ``gate``: the run's own Azure ML endpoint, deleted after it; ``promote``: the stage's kept one.
    purpose: Purpose = "gate"
    #: The local server outlives this process (``--release-keep``, ``promote --keep``).
    keep: bool = False
    #: Added to the log file's name, e.g. ``-champion``: several endpoints of one stage, one folder.
    log_suffix: str = ""
    #: url target: response headers (lower-case name, value) the golden answer must carry.
    expect_headers: tuple[tuple[str, str], ...] = ()
    #: local target: ``--release-isolation`` (see :func:`releasetest.endpoint.sandbox.choose`).
    isolation: str = DEFAULT_ISOLATION

    @classmethod
    def from_settings(cls, settings: Settings, python: str = sys.executable) -> TargetOptions:
        return cls(log_dir=settings.verdict.parent, ready_timeout=settings.ready_timeout, url=settings.url,
                   key_env=settings.key_env, port=settings.port,
                   max_body_bytes=settings.max_body_bytes, python=python, keep=settings.keep,
                   workspace_config=settings.workspace_config, isolation=settings.isolation)


def golden_of(release: Release) -> Golden:
    """The release's golden rows and labels: what a deployed endpoint must answer to be ready."""
    assert release.data is not None
    return load_holdout(release.data).golden(release.data.golden_rows)


def check_target(target: str, release: Release, options: TargetOptions, sources: Mapping[str, str]) -> None:
    """What ``target`` needs before anything is deployed, checked once at load: a missing piece is a
    configuration error (a BLOCK verdict, exit 4), not one deploy error per test.

    ``sources`` says where each setting came from (see :class:`releasetest.settings.Settings`).
    """
    if target == "url":
        if not options.url:
            raise ConfigError(None, "--release-url", f"--release-target url (from {sources.get('target', 'default')}) "
                              "needs the scoring URI of the endpoint to test",
                              "pass --release-url URL, or set RELEASETEST_URL or ini release_url")
        from releasetest.endpoint.url import handle_for_url

        handle_for_url(options.url, None)
    elif target == "local":
        from releasetest.endpoint.sandbox import choose

        choose(options.isolation)
    elif target == "azureml":
        from releasetest.azureml.workspace import read_workspace_config, workspace_config_path

        read_workspace_config(workspace_config_path(release.root, options.workspace_config))


def build_endpoint(target: str, release: Release | None, stage: Stage | None, options: TargetOptions,
                   golden: Golden | None = None) -> Endpoint:
    """An endpoint of ``target``, not yet deployed.

    ``champion-url`` is production reached at ``options.url``: ready when liveness answers, since
    the candidate's golden labels are no test for another model.
    """
    if target == "champion-url":
        from releasetest.endpoint.champion import ChampionUrlEndpoint

        assert options.url is not None
        return ChampionUrlEndpoint(options.url, options.key_env, options.ready_timeout)
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    assert release is not None and stage is not None
    golden = golden if golden is not None else golden_of(release)
    # The one diagnosis of a wrong golden answer the release itself explains, on every target.
    diagnose = functools.partial(golden_refusal, release, golden[0])
    if target == "url":
        from releasetest.endpoint.url import UrlEndpoint

        assert options.url is not None
        return UrlEndpoint(options.url, options.key_env, golden, ready_timeout_s=options.ready_timeout,
                           wire=wire_spec(release), expect_headers=dict(options.expect_headers), diagnose=diagnose)
    if target == "azureml":
        from releasetest.endpoint.azureml import AzureMLEndpoint

        return AzureMLEndpoint(release, stage, golden, workspace_config=options.workspace_config,
                               log_path=options.log_dir / f"azureml-{stage.name}{options.log_suffix}.log",
                               ready_timeout_s=options.ready_timeout, endpoint_name=options.endpoint_name,
                               purpose=options.purpose, diagnose=diagnose)
    from releasetest.endpoint.local import LocalEndpoint
    from releasetest.endpoint.sandbox import choose

    return LocalEndpoint(release, stage, golden,
                         log_path=options.log_dir / f"server-{stage.name}{options.log_suffix}.log",
                         ready_timeout_s=options.ready_timeout, port=options.port,
                         python=options.python, max_body_bytes=options.max_body_bytes, detach=options.keep,
                         isolation=choose(options.isolation), diagnose=diagnose)
