"""Schema: the endpoint honours the contract it publishes for every valid input, and survives the
inputs a client should not send.

The work (contract reading, generated inputs, negative catalogue, policy, leak detection, curl
lines) is in :mod:`releasetest.checks.contract`; this module sends the requests and reports. Every
finding lands in the verdict under ``findings.schema.findings`` with its body and a curl line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from releasetest.checks.contract.config import SchemaConfig
from releasetest.checks.contract.curl import curl_line, dumps
from releasetest.checks.contract.findings import DEFECT, FAILURE, Finding, SchemaFindings
from releasetest.checks.contract.inputs import learn_ranges, send_valid_inputs
from releasetest.checks.contract.judging import (
    ERROR_TEXT_PROBES,
    classify,
    error_text,
    error_text_message,
    find_leak,
    output_disagreement,
    output_violation,
)
from releasetest.checks.contract.probes import ONLY_FOR, PROBE_NAMES, SIGNATURE_PROBES, negative_probes
from releasetest.checks.contract.reading import (
    Contract,
    ContractError,
    NoContract,
    declares_bearer,
    manifest_contract,
    read_contract,
    signature_contract,
)
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.formats import Wire
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import EndpointError
from releasetest.release.data import Expected, Holdout
from releasetest.release.manifest import Release
from releasetest.release.mlflow_signature import feature_types, release_signature
from releasetest.run import ReleaseRun

pytestmark = pytest.mark.schema

Record = Callable[[str, Any], None]


class CountingClient(ScoringClient):
    """A scoring client that counts what it sends, for the suite's ``requests_sent``."""

    sent = 0

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.sent += 1
        return super().request(method, url, **kwargs)


@pytest.fixture(scope="module")
def schema_client(endpoint: EndpointHandle) -> Iterator[CountingClient]:
    with CountingClient(endpoint) as client:
        yield client


@pytest.fixture(scope="module")
def swagger(schema_client: CountingClient) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return schema_client.swagger(2), schema_client.swagger(3)
    except (EndpointError, ValueError) as exc:
        pytest.fail(f"the endpoint publishes no readable swagger.json: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def contract(swagger: tuple[dict[str, Any], dict[str, Any]], schema_client: CountingClient,
             holdout: Holdout, release: Release) -> Contract:
    """The published contract in the release's format; when the endpoint publishes none, an MLflow
    model's signature, else the manifest's (a raw ``run()``)."""
    try:
        return read_contract(swagger[0], swagger[1], schema_client.wire)
    except NoContract:
        signature = release_signature(release)
        if signature is not None and release.data is not None:
            return signature_contract(schema_client.wire, feature_types(signature[1], release.data.features),
                                      holdout.rows[0].tolist())
        return manifest_contract(schema_client.wire, holdout.rows[0].tolist())
    except ContractError as exc:
        pytest.fail(f"published contract: {exc}", pytrace=False)


#: The output schema answers are judged against (None: by the release's answer format only), and
#: the finding that the published one contradicts the answers, if it does.
PublishedOutput = tuple[dict[str, Any] | None, Finding | None]


@pytest.fixture(scope="module")
def published_output(contract: Contract, schema_client: CountingClient) -> PublishedOutput:
    """When the answer to the contract's own example breaks the published output schema, the schema
    is wrong, not each answer: one finding (a defect under ``azure``, which does not block, a
    failure under ``strict``, set by the test that records it), and the other tests judge answers by
    the release's format only."""
    if contract.output_schema is None:
        return None, None
    body = dumps(schema_client.wire.body(contract.example_rows))
    url = schema_client.handle.scoring_uri
    try:
        resp = schema_client.request("POST", url, data=body, headers={"Content-Type": "application/json"})
        answer = resp.json() if 200 <= resp.status_code < 300 else None
    except (EndpointError, ValueError):
        answer = None
    problem = None if answer is None else output_disagreement(answer, contract.output_schema)
    if problem is None:
        return contract.output_schema, None
    return None, Finding("output-schema-disagrees", DEFECT, resp.status_code, body.decode(),
                         curl_line("POST", url, body, key_env=_key_env(schema_client.handle)), problem,
                         "the published output schema disagrees with the answers")


@pytest.fixture(scope="module")
def error_text_answer(contract: Contract, schema_client: CountingClient) -> Finding | None:
    """Whether ``run()`` answers an exception's text with 200, as ``except Exception as e: return
    str(e)`` does: one finding for the pattern (the probes that show it are not judged again)."""
    probes = negative_probes(contract.example_rows[0], SchemaConfig.oversized_kib, schema_client.wire)
    url = schema_client.handle.scoring_uri
    for name in ERROR_TEXT_PROBES:
        probe = probes[name]
        try:
            resp = schema_client.request("POST", url, data=probe.body, headers={"Content-Type": probe.content_type})
        except EndpointError:
            continue
        text = error_text(resp.status_code, resp.text)
        if text is not None:
            return Finding("error-text-with-200", FAILURE, resp.status_code, probe.shown_body(),
                           probe.curl(url, _key_env(schema_client.handle)),
                           error_text_message(probe.what, resp.status_code, text), "run() answers errors as text")
    return None


@pytest.fixture(scope="module")
def golden(holdout: Holdout, release: Release) -> tuple[list[list[float]], list[Any]]:
    assert release.data is not None
    return holdout.golden(release.data.golden_rows)


def _key_env(endpoint: EndpointHandle) -> str | None:
    return str(endpoint.info.get("key_env", "RELEASETEST_ENDPOINT_KEY")) if endpoint.key else None


def _report(findings: list[Finding], client: CountingClient, policy: str, record: Record, worker: str) -> None:
    """Record findings and the request count (the gate summarises defects); fail on failures."""
    SchemaFindings(findings=findings, policy=policy, requests_sent=client.sent,
                   requests_by_process={worker: client.sent}).record(record)
    failures = [f for f in findings if f.severity == FAILURE]
    if failures:
        lines = [failures[0].message]
        for i, f in enumerate(failures):
            if i:
                lines.append(f"- {f.message}")
            if f.body and f.body not in f.message:
                lines.append(f"  body: {f.body}")
            lines.append(f"  reproduce: {f.curl}")
        pytest.fail("\n".join(lines), pytrace=False)


def test_published_contract(contract: Contract, swagger: tuple[dict[str, Any], dict[str, Any]],
                            schema_client: CountingClient, suite_config: SchemaConfig,
                            published_output: PublishedOutput, release_record: Record, release_worker: str) -> None:
    """swagger v2 and v3 agree, take rows of the manifest's features; gaps in them are defects; an
    output schema the answers contradict is named (see :func:`published_output`)."""
    if not contract.published:
        pytest.skip("the endpoint publishes no schema (run() has no inference-schema decorators): the other "
                    "schema tests use the manifest's features and the holdout instead")
    url = schema_client.handle.swagger_uri + "?version=3"
    findings = [Finding(kind, DEFECT, 200, "", curl_line("GET", url, content_type=None), message)
                for kind, message in contract.findings]
    if not declares_bearer(swagger[0]):
        findings.append(Finding("schema-no-auth-declared", DEFECT, 200, "", curl_line("GET", url, content_type=None),
                                "the published spec declares no Bearer security for POST /score"))
    if published_output[1] is not None:
        severity = DEFECT if suite_config.policy == "azure" else FAILURE
        findings.append(dataclasses.replace(published_output[1], severity=severity))
    _report(findings, schema_client, suite_config.policy, release_record, release_worker)


def test_valid_inputs_are_answered_by_contract(
    schema_client: CountingClient, contract: Contract, holdout: Holdout, release: Release,
    suite_config: SchemaConfig, golden: tuple[list[list[float]], list[Any]], release_record: Record,
    request: pytest.FixtureRequest, release_worker: str, published_output: PublishedOutput, release_run: ReleaseRun,
) -> None:
    """Generated batches of realistic and edge values: each gets a 2xx that keeps the output schema
    (drawn while the endpoint started, when they were, see :mod:`releasetest.checks.contract.inputs`)."""
    assert release.data is not None
    classes = release.data.classes
    ranges = learn_ranges(release.data.features, holdout.rows, contract.integer_columns())
    url = schema_client.handle.scoring_uri
    key_env = _key_env(schema_client.handle)
    wire = schema_client.wire

    class Broken(Exception):
        def __init__(self, kind: str, status: int | None, rows: list[list[float]], message: str):
            super().__init__(message)
            self.kind, self.status, self.rows, self.message = kind, status, rows, message

    def check(rows: list[list[float]]) -> None:
        body = dumps(wire.body(rows))
        try:
            resp = schema_client.request("POST", url, data=body, headers={"Content-Type": "application/json"})
        except EndpointError as exc:
            raise Broken("no-answer", None, rows, f"no answer to a valid request: {exc}") from None
        leak = find_leak(resp.text)
        if leak:
            raise Broken("leak", resp.status_code, rows, f"the answer to a valid request leaks a {leak}")
        if not 200 <= resp.status_code < 300:
            raise Broken("valid-input-refused", resp.status_code, rows,
                         f"a valid request answered {resp.status_code}: {resp.text[:120]}")
        try:
            answer = resp.json()
        except ValueError:
            raise Broken("output-schema-violation", resp.status_code, rows,
                         f"the answer to a valid request is not JSON: {resp.text[:120]!r}") from None
        problem = output_violation(answer, published_output[0], len(rows), classes, wire)
        if problem:
            raise Broken("output-schema-violation", resp.status_code, rows, problem)

    seed_option = request.config.getoption("hypothesis_seed", None)
    seed = int(seed_option) if seed_option is not None else suite_config.seed
    max_rows = min(suite_config.max_rows, wire.batch_size or suite_config.max_rows)
    # The published example and the all-maximum row always go first; the all-minimum row is
    # hypothesis's simplest example, generated first, so a failure on it still goes through the shrinker.
    explicit = [contract.example_rows, [[r.high for r in ranges]]]
    drawn = release_run.prepared.get("schema")
    findings: list[Finding] = []
    try:
        send_valid_inputs(check, explicit, ranges, max_rows, seed, suite_config.max_examples, drawn)
    except Broken as exc:
        body = dumps(wire.body(exc.rows)).decode()
        curl = curl_line("POST", url, body.encode(), key_env=key_env)
        findings.append(Finding(exc.kind, FAILURE, exc.status, body, curl,
                                f"{exc.message}; minimal failing body {body}" if len(body) <= 300
                                else f"{exc.message}; minimal failing body of {len(exc.rows)} rows"))
    findings += _after(schema_client, golden, "the generated valid requests", key_env)
    _report(findings, schema_client, suite_config.policy, release_record, release_worker)


def _after(client: CountingClient, golden: tuple[list[list[float]], list[Any]], what: str,
           key_env: str | None) -> list[Finding]:
    """The server must still be alive and score the golden rows right after ``what``."""
    rows, labels = golden
    body = dumps(client.wire.body(rows))
    curl = curl_line("POST", client.handle.scoring_uri, body, key_env=key_env)
    try:
        live = client.liveness().status_code
        if live != 200:
            return [Finding("liveness-lost", FAILURE, live, "", curl_line("GET", client.handle.liveness_uri,
                                                                          content_type=None),
                            f"after {what}: liveness answered {live}")]
        got = client.score(rows).predictions
    except EndpointError as exc:
        return [Finding("endpoint-down", FAILURE, None, "", curl, f"after {what}: {exc}")]
    mismatch = Expected.of(labels).mismatch(got)
    if mismatch is not None:
        return [Finding("golden-changed", FAILURE, 200, body.decode(), curl,
                        f"after {what}: {mismatch}")]
    return []


def test_errors_are_raised_not_answered_as_text(error_text_answer: Finding | None, schema_client: CountingClient,
                                                suite_config: SchemaConfig, release_record: Record,
                                                release_worker: str) -> None:
    """A request run() cannot score must not get 200 with the exception's text: reported once, as
    that pattern, under every policy (a client would read the text as the answer)."""
    _report([error_text_answer] if error_text_answer else [], schema_client, suite_config.policy, release_record,
            release_worker)


@pytest.mark.parametrize("name", PROBE_NAMES)
def test_negative_input(name: str, schema_client: CountingClient, contract: Contract,
                        release: Release, suite_config: SchemaConfig, golden: tuple[list[list[float]], list[Any]],
                        published_output: PublishedOutput, error_text_answer: Finding | None, release_record: Record,
                        release_worker: str) -> None:
    """A bad request gets a client error (or, under ``azure``, a recorded defect), leaks nothing,
    and leaves the server answering liveness and golden rows."""
    assert release.data is not None
    wire: Wire = schema_client.wire
    if name in ONLY_FOR and wire.input not in ONLY_FOR[name]:
        pytest.skip(f"{name} applies to {', '.join(ONLY_FOR[name])} input; this release takes {wire.input}")
    probes = negative_probes(contract.example_rows[0], suite_config.oversized_kib, wire, contract.column_types)
    if name in SIGNATURE_PROBES and name not in probes:
        pytest.skip(f"{name} probes what an MLflow signature promises; this release's contract "
                    + ("has no integer column" if contract.column_types else "is not a signature"))
    probe = probes[name]
    handle = schema_client.handle
    key_env = _key_env(handle)
    curl = probe.curl(handle.scoring_uri, key_env)
    headers: dict[str, Any] = {"Content-Type": probe.content_type}
    if probe.unauthenticated:
        headers["Authorization"] = None
    findings: list[Finding] = []
    try:
        resp = schema_client.request(probe.method, handle.scoring_uri, data=probe.body, headers=headers)
    except EndpointError as exc:
        findings.append(Finding("no-answer", FAILURE, None, probe.shown_body(), curl, f"{probe.what}: {exc}"))
    else:
        leak = find_leak(resp.text)
        if leak:
            findings.append(Finding("leak", FAILURE, resp.status_code, probe.shown_body(), curl,
                                    f"{probe.what}: the {resp.status_code} answer leaks a {leak}"))
        judged = classify(probe, resp.status_code, resp.text, suite_config.policy, has_key=handle.key is not None,
                          output_schema=published_output[0], classes=release.data.classes, wire=wire,
                          error_text_named=error_text_answer is not None)
        if judged is not None:
            findings.append(Finding(name, judged.severity, resp.status_code, probe.shown_body(), curl, judged.message,
                                    judged.problem))
    findings += _after(schema_client, golden, f"{probe.name} ({probe.what})", key_env)
    _report(findings, schema_client, suite_config.policy, release_record, release_worker)
