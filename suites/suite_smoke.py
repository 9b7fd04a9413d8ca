"""Smoke: the deployed endpoint is alive, publishes its contract, and answers by it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

from releasetest.checks.contract.judging import output_disagreement
from releasetest.checks.load.slo import LoadSpec
from releasetest.checks.smoke import SmokeConfig, memory_growth_failure, memory_in_load_window
from releasetest.checks.smoke_findings import SmokeFindings
from releasetest.checks.tasks import task_for
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.process import group_rss_bytes
from releasetest.release.data import Holdout
from releasetest.release.manifest import Release, Stage
from releasetest.run import ReleaseRun
from releasetest.wiring.fixtures import suite_of

pytestmark = pytest.mark.smoke

#: Rows in the batch check: enough to cross any per-row code path, small enough to stay fast.
BATCH_ROWS = 64


@pytest.fixture(autouse=True)
def _probes(scoring_client: ScoringClient, release_record: Callable[[str, Any], None],
            request: pytest.FixtureRequest) -> Iterator[None]:
    """What each test sent and got answered: the suite's evidence (``findings.smoke.probes``). Recorded
    after the test body, so a test that never ran sent nothing and records nothing."""
    yield
    if scoring_client.probes_sent:
        SmokeFindings(probes={request.node.name: {"sent": scoring_client.probes_sent,
                                                  "answered": scoring_client.probes_answered}}).record(release_record)


def _schemas(swagger: dict) -> tuple[dict, dict]:
    defs = swagger.get("definitions") or swagger.get("components", {}).get("schemas", {})
    if "ServiceInput" not in defs or "ServiceOutput" not in defs:
        pytest.fail("swagger.json has no ServiceInput/ServiceOutput: is run() decorated with "
                    "inference-schema's @input_schema and @output_schema?", pytrace=False)
    if not defs["ServiceInput"].get("properties") and not defs["ServiceInput"].get("example"):
        pytest.skip("the endpoint publishes no schema (run() has no inference-schema decorators), so there is "
                    "no published example or output schema to test; the other tests use the manifest's format")
    return defs["ServiceInput"], defs["ServiceOutput"]


def test_liveness(scoring_client: ScoringClient) -> None:
    resp = scoring_client.liveness()
    assert resp.status_code == 200, f"GET / answered {resp.status_code}: {resp.text[:200]}"


@pytest.mark.parametrize("version", [2, 3])
def _schema_policy(release_run: ReleaseRun) -> str:
    """The schema suite's policy, which decides whether an output schema the answers contradict blocks."""
    return getattr(release_run.suite_configs.get("schema"), "policy", "azure")


def _example_answer(scoring_client: ScoringClient, service_input: dict) -> tuple[list, object]:
    example = service_input.get("example")
    rows = scoring_client.wire.rows_in(example)
    assert rows, (f"the published input schema has no example rows in the release's format "
                  f"({scoring_client.wire.describe()})")
    resp = scoring_client.post_score(example)
    assert resp.status_code == 200, f"the swagger example answered {resp.status_code}: {resp.text[:300]}"
    return rows, resp.json()


@pytest.mark.parametrize("version", [2, 3])
def test_swagger_example_scores(scoring_client: ScoringClient, version: int, release_run: ReleaseRun) -> None:
    """The published example scores, one prediction per row, as the published output schema says;
    an output schema its own example's answer contradicts fails under the ``strict`` schema policy
    only (under ``azure`` the schema suite records it as a defect)."""
    service_input, service_output = _schemas(scoring_client.swagger(version))
    rows, answer = _example_answer(scoring_client, service_input)
    disagreement = output_disagreement(answer, service_output)
    if disagreement and _schema_policy(release_run) == "strict":
        pytest.fail(disagreement, pytrace=False)
    preds, _ = scoring_client.wire.decode(answer)
    assert len(preds) == len(rows)


def test_output_conforms_to_output_schema(scoring_client: ScoringClient, holdout: Holdout,
                                          release_run: ReleaseRun) -> None:
    service_input, service_output = _schemas(scoring_client.swagger(2))
    _, answer = _example_answer(scoring_client, service_input)
    disagreement = output_disagreement(answer, service_output)
    if disagreement and _schema_policy(release_run) == "strict":
        pytest.fail(disagreement, pytrace=False)
    if disagreement:
        pytest.skip(f"{disagreement} (a contract defect the schema suite records under the azure policy)")
    rows = holdout.rows[:min(3, scoring_client.wire.batch_size or 3)].tolist()
    resp = scoring_client.post_score(scoring_client.wire.body(rows))
    assert resp.status_code == 200, resp.text[:300]
    try:
        jsonschema.validate(resp.json(), service_output)
    except jsonschema.ValidationError as exc:
        pytest.fail(f"response does not match the published output schema: {exc.message} "
                    f"at {'/'.join(map(str, exc.absolute_path)) or 'top level'}", pytrace=False)


def test_golden_rows(scoring_client: ScoringClient, holdout: Holdout, release: Release) -> None:
    assert release.data is not None
    rows, expected = holdout.golden(release.data.golden_rows)
    mismatch = expected.mismatch(scoring_client.score(rows).predictions)
    assert mismatch is None, f"golden rows: {mismatch}"


def test_same_request_same_answer(scoring_client: ScoringClient, holdout: Holdout) -> None:
    rows = holdout.rows[:8].tolist()
    first, second = scoring_client.score(rows), scoring_client.score(rows)
    assert first.predictions == second.predictions
    assert first.probabilities == second.probabilities


def test_batch_returns_one_label_per_row(scoring_client: ScoringClient, holdout: Holdout,
                                         release: Release) -> None:
    assert release.data is not None
    n = min(BATCH_ROWS, len(holdout))
    scored = scoring_client.score(holdout.rows[:n].tolist())
    assert len(scored.predictions) == n
    invalid = task_for(release.data).invalid(scored.predictions)
    assert invalid is None, invalid
    if scored.probabilities is not None:
        assert len(scored.probabilities) == n
        assert all(len(p) == len(release.data.classes) for p in scored.probabilities)


def test_auth_enforced(endpoint: EndpointHandle, holdout: Holdout, release_stage: Stage,
                       scoring_client: ScoringClient) -> None:
    """authEnabled: True means no answer without the key, and none with a wrong one."""
    if not release_stage.deployment.auth_enabled:
        pytest.skip(f"authEnabled is False in {release_stage.deployment.path.name}")
    assert endpoint.key, "authEnabled is True but the endpoint has no key"
    body = scoring_client.wire.body(holdout.rows[:1].tolist())
    # Through the run's client, so the answered request counts against the endpoint's admission limit.
    for auth, expected in ((None, 401), ("Bearer not-the-key", 401), (f"Bearer {endpoint.key}", 200)):
        resp = scoring_client.request("POST", endpoint.scoring_uri, json=body, headers={"Authorization": auth})
        shown = "the key" if expected == 200 else (auth or "no key")
        assert resp.status_code == expected, f"POST /score with {shown} answered {resp.status_code}, not {expected}"


def _load_window_selected(session: pytest.Session) -> bool:
    """Whether this run's selection includes the load window (the same on every xdist worker)."""
    return any(suite_of(item) == "load" and getattr(item, "originalname", "") == "test_slo_at_expected_rate"
               for item in session.items)


def test_memory_stable_under_repeated_requests(scoring_client: ScoringClient, endpoint: EndpointHandle,
                                               holdout: Holdout, suite_config: SmokeConfig,
                                               release_run: ReleaseRun, request: pytest.FixtureRequest) -> None:
    """A leak per request shows in DEV TEST, not as an OOM-killed container in production.

    When the load window runs in this session and sends at least ``memory_requests`` after its
    warm-up, it measures the growth instead (no extra requests); otherwise this burst does."""
    pid = endpoint.info.get("pid")
    if pid is None or group_rss_bytes(pid) is None:
        pytest.skip("memory is only watched for a local endpoint (its process group)")
    load: LoadSpec = release_run.suite_configs["load"]
    if _load_window_selected(request.session) and memory_in_load_window(suite_config, load):
        pytest.skip(f"memory growth is measured over the load window's {load.measured_requests()} requests "
                    "after warm-up (suite_load.py::test_slo_at_expected_rate, findings.load.memory)")
    rows = holdout.rows[:min(16, scoring_client.wire.batch_size or 16)].tolist()
    for _ in range(20):  # warm-up: first requests fill caches and allocator pools
        scoring_client.score(rows)
    before = group_rss_bytes(pid) or 0
    for _ in range(suite_config.memory_requests):
        scoring_client.score(rows)
    failure = memory_growth_failure(before, group_rss_bytes(pid) or 0, suite_config.memory_requests, suite_config)
    assert failure is None, failure
