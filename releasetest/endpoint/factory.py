"""Building endpoints: the deploy target the settings ask for, and the champion's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from releasetest.checks.acceptance.config import Champion
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.champion import ChampionUrlEndpoint
from releasetest.release.data import Holdout, load_holdout
from releasetest.release.manifest import Release, Stage
from releasetest.settings import Settings


def champion_endpoint(champion: Champion, stage: str, log_path: Path, ready_timeout_s: float) -> Endpoint:
    """The champion's endpoint, not yet deployed: a second local server, or its URL."""
    if champion.url is not None:
        return ChampionUrlEndpoint(champion.url, champion.key_env, ready_timeout_s)
    from releasetest.endpoint.local import LocalEndpoint

    rel = champion.release
    assert rel is not None and rel.data is not None
    golden = load_holdout(rel.data).golden(rel.data.golden_rows)
    return LocalEndpoint(rel, rel.stage(stage), golden, log_path=log_path, ready_timeout_s=ready_timeout_s)


def build_endpoint(settings: Settings, release: Release, stage: Stage, holdout: Holdout,
                   python: str = sys.executable) -> Endpoint:
    """The deploy target the settings ask for, not yet deployed."""
    golden = holdout.golden(release.data.golden_rows if release.data else 5)
    if settings.target == "url":
        from releasetest.endpoint.url import UrlEndpoint

        assert settings.url is not None
        return UrlEndpoint(settings.url, settings.key_env, golden, ready_timeout_s=settings.ready_timeout)
    if settings.target == "azureml":
        from releasetest.endpoint.azureml import AzureMLEndpoint

        return AzureMLEndpoint(release, stage, golden, workspace_config=settings.workspace_config,
                               log_path=settings.verdict.parent / f"azureml-{stage.name}.log",
                               ready_timeout_s=settings.ready_timeout)
    from releasetest.endpoint.local import LocalEndpoint

    log = settings.verdict.parent / f"server-{stage.name}.log"
    return LocalEndpoint(release, stage, golden, log_path=log, ready_timeout_s=settings.ready_timeout,
                         port=settings.port, key=os.environ.get(settings.key_env) or None,
                         max_body_bytes=int(settings.max_body_mb * 1024 * 1024), python=python)

