"""Fixtures the suites (and a team's own release tests) use. Session scope: one deploy per run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from releasetest.checks.acceptance.config import AcceptanceConfig
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.factory import TargetOptions, build_endpoint
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import DeployError
from releasetest.release.data import Holdout
from releasetest.release.manifest import Release, Stage
from releasetest.release.traffic import Traffic
from releasetest.run import ReleaseRun
from releasetest.suite_names import OTHER, SUITES
from releasetest.wiring.keys import RUN_KEY

#: Why every test that needed the endpoint did not run when the deploy failed (a skip, counted as
#: "not run": the test itself did nothing wrong); the cause is printed once, in the releasetest
#: gate section, and is the verdict's first reason.
DEPLOY_POINTER = "not run: the endpoint is not ready (the cause is in the 'releasetest gate' section below)"


def _active_run(config: pytest.Config) -> ReleaseRun:
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.active:
        pytest.skip("release fixtures need --release-stage (e.g. pytest --release-stage devtest)")
    return run


def suite_of(node: pytest.Item) -> str:
    """The suite a test belongs to, by its marker (its own, its class's or its module's)."""
    for name in SUITES:
        if node.get_closest_marker(name) is not None:
            return name
    return OTHER


def worker_id(config: pytest.Config) -> str | None:
    """This process's xdist worker id, from its own workerinput (an inherited
    ``PYTEST_XDIST_WORKER`` may be a parent pytest's); None on the controller or without xdist."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    return workerinput.get("workerid")


@pytest.fixture(scope="session")
def release_run(pytestconfig: pytest.Config) -> ReleaseRun:
    """The run itself: settings, the release, its parsed suite configs."""
    return _active_run(pytestconfig)


@pytest.fixture(scope="session")
def release_workdir(release_run: ReleaseRun) -> Path:
    """A folder for a suite's working files (generated locustfile, engine CSVs): next to the
    verdict, or on an xdist worker its own folder in the run's scratch space (workers write no
    files into the output folder)."""
    return release_run.log_dir


@pytest.fixture(scope="session")
def release_worker(pytestconfig: pytest.Config) -> str:
    """Which process runs this test: the xdist worker id, or ``main``."""
    return worker_id(pytestconfig) or "main"


def build_champion(release_run: ReleaseRun, log_suffix: str) -> Endpoint | None:
    """A new endpoint of the champion of ``[acceptance]`` (not deployed); None without one."""
    cfg: AcceptanceConfig | None = release_run.suite_configs.get("acceptance")
    if cfg is None or cfg.champion is None:
        return None
    stage = str(release_run.settings.stage)
    options = TargetOptions(log_dir=release_run.log_dir, ready_timeout=release_run.settings.ready_timeout,
                            url=cfg.champion.url, key_env=cfg.champion.key_env, log_suffix=log_suffix,
                            isolation=release_run.settings.isolation)
    if cfg.champion.url is not None:
        return build_endpoint("champion-url", None, None, options)
    champion = cfg.champion.release
    assert champion is not None
    return build_endpoint("local", champion, champion.stage(stage), options)


@pytest.fixture(scope="session")
def champion_endpoint(release_run: ReleaseRun) -> Endpoint | None:
    """The champion of ``[acceptance]``, built but not deployed (the suite deploys it only as
    long as it scores); None when the manifest names no champion.

    On an xdist worker its log goes to the run's scratch space and reaches the verdict's folder
    through the controller.
    """
    return build_champion(release_run, "-champion")


@pytest.fixture(scope="session")
def production_endpoint(release_run: ReleaseRun) -> Endpoint | None:
    """Production for the shadow suite: the same champion as ``[acceptance]`` (its URL, or its
    release deployed beside the candidate), as an endpoint of its own, built but not deployed."""
    return build_champion(release_run, "-production")


@pytest.fixture(scope="session")
def production_traffic(release_run: ReleaseRun) -> Traffic:
    """The recorded production traffic (``[production]`` or ``--release-traffic``), read before any
    test runs; skips when the release has none."""
    if release_run.traffic is None:
        pytest.skip("no recorded production traffic: set [production] traffic in the manifest or --release-traffic")
    return release_run.traffic


@pytest.fixture(scope="session")
def release(release_run: ReleaseRun) -> Release:
    """The validated release (manifest, configs, artifacts whose sha256 matched)."""
    assert release_run.release is not None
    return release_run.release


@pytest.fixture(scope="session")
def release_stage(release_run: ReleaseRun) -> Stage:
    """The stage under test, with its v1 deployment config."""
    assert release_run.stage is not None
    return release_run.stage


@pytest.fixture(scope="session")
def holdout(release_run: ReleaseRun) -> Holdout:
    """The release's holdout rows, labels and training-time predictions."""
    assert release_run.holdout is not None
    return release_run.holdout


@pytest.fixture(scope="session")
def endpoint(pytestconfig: pytest.Config) -> EndpointHandle:
    """The live endpoint, deployed once per run (by the xdist controller when there is one) and
    torn down at the end of the run."""
    try:
        return _active_run(pytestconfig).deployment.wait()
    except DeployError:
        pytest.skip(DEPLOY_POINTER)


@pytest.fixture
def scoring_client(endpoint: EndpointHandle) -> Iterator[ScoringClient]:
    """A requests session to the endpoint, with timeouts and the server's request-id headers kept.

    Fails at once, without a request, when the endpoint's server process has died, so the rest of
    a run costs no time-outs.
    """
    if endpoint.alive() is False:
        pytest.fail(f"endpoint died: server process {endpoint.info['pid']} is gone "
                    f"(see {endpoint.log_path})", pytrace=False)
    with ScoringClient(endpoint, timeout=endpoint.timeout_s) as client:
        yield client


@pytest.fixture
def suite_config(request: pytest.FixtureRequest) -> Any:
    """This test's suite settings from the manifest (``[acceptance]``, ...), parsed before deploy."""
    run = _active_run(request.config)
    return run.suite_configs.get(suite_of(request.node))


@pytest.fixture
def release_record(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """Record a finding (metric, measurement) into the verdict under this test's suite."""
    run = _active_run(request.config)
    suite = suite_of(request.node)

    def record(key: str, value: Any) -> None:
        run.merge_findings({suite: {key: value}})

    return record
