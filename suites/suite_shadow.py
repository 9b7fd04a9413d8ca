"""Shadow: the recorded production requests replayed through the candidate and production.

Production is the champion of ``[acceptance]`` (its URL, or its release deployed beside the
candidate) when there is one; otherwise its recorded answers (``model_outputs``). No labels are
needed: the question is how many answers the candidate would change on production's own traffic,
where, and whether it fails requests production served. With both a live production and
recorded answers, production's answers now are checked against what it recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from releasetest.checks.shadow.config import ShadowConfig
from releasetest.checks.shadow.findings import ShadowFindings
from releasetest.checks.shadow.replay import (
    Comparison,
    Replay,
    by_segment,
    compare_answers,
    most_changed,
    recorded_replay,
    replay,
    requests_of,
)
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.handle import EndpointHandle
from releasetest.errors import DeployError, EndpointError
from releasetest.release.manifest import Release
from releasetest.release.traffic import Traffic
from releasetest.run import ReleaseRun

pytestmark = pytest.mark.shadow

QUANTILES = (0.5, 0.9, 0.99, 1.0)


@dataclass(frozen=True)
class Shadow:
    config: ShadowConfig
    regression: bool
    candidate: Replay
    production: Replay
    comparison: Comparison
    #: Production now against its recorded answers (None without both).
    recorded: Comparison | None
    findings: ShadowFindings


def _production_rows(traffic: Traffic, release: Release, endpoint_release: Release | None) -> np.ndarray:
    """The traffic's rows with the columns in the order production's release takes them."""
    if endpoint_release is None or endpoint_release.data is None:
        return traffic.rows
    wanted = endpoint_release.data.features
    missing = [f for f in wanted if f not in traffic.features]
    if missing:
        pytest.fail(f"production takes {', '.join(missing)}, which the recorded traffic does not hold", pytrace=False)
    return traffic.rows[:, [traffic.features.index(f) for f in wanted]]


def _live_production(endpoint: Endpoint, rows: np.ndarray, groups: list[list[int]], source: str) -> Replay:
    """Deploy (or reach) production, replay the traffic, and stop it again right away."""
    try:
        handle = endpoint.deploy()
        return replay(handle, rows, groups, source, timeout=handle.timeout_s)
    finally:
        endpoint.teardown()


@pytest.fixture(scope="session")
def shadow(endpoint: EndpointHandle, production_traffic: Traffic, release_run: ReleaseRun, release: Release,
           production_endpoint: Endpoint | None) -> Shadow:
    cfg: ShadowConfig = release_run.suite_configs["shadow"]
    assert release.data is not None
    traffic = production_traffic
    groups = requests_of(traffic, cfg.batch_size)
    recorded = recorded_replay(traffic, release.data.output_predictions, groups) if traffic.has_recorded_outputs \
        else None
    acceptance = release_run.suite_configs.get("acceptance")
    champion = acceptance.champion if acceptance is not None else None
    if production_endpoint is not None and champion is not None:
        source = (f"champion at {champion.url}" if champion.url else
                  f"champion release {champion.source} deployed beside the candidate")
        try:
            production = _live_production(production_endpoint, _production_rows(traffic, release, champion.release),
                                          groups, source)
        except (DeployError, EndpointError) as exc:
            pytest.fail(f"production ({source}) could not be reached: {str(exc).splitlines()[0]}", pytrace=False)
    elif recorded is not None:
        production = recorded
    else:
        pytest.skip("nothing to compare with: no champion in [acceptance] and no model_outputs recorded with the "
                    "traffic")
    candidate = replay(endpoint, traffic.rows, groups, "candidate", timeout=endpoint.timeout_s)
    regression = release.data.task == "regression"
    comparison = compare_answers(candidate, production, regression, release.data.tolerance)
    recorded_check = (compare_answers(production, recorded, regression, release.data.tolerance)
                      if recorded is not None and production is not recorded else None)
    segment_rows = (by_segment(comparison, traffic.column(cfg.segment), cfg, regression, cfg.segment)
                    if cfg.segment is not None and len(comparison.compared) else None)
    change = comparison.change
    findings = ShadowFindings(
        production_source=production.source, task=release.data.task, rows=len(traffic),
        compared_rows=len(comparison.compared), changed_rows=int(comparison.changed.sum()),
        changed_share=round(comparison.share_changed, 6), max_changed=None if regression else cfg.max_changed,
        mean_abs_change=round(comparison.mean_abs_change, 6), max_mean_abs_change=cfg.max_mean_abs_change,
        change_quantiles=({f"q{q * 100:g}": round(float(np.quantile(change, q)), 6) for q in QUANTILES}
                          if len(change) else None),
        segments=segment_rows,
        most_changed=most_changed(comparison, traffic, candidate, production, cfg.top, release.root),
        candidate=candidate.summary(), production=production.summary(),
        recorded_check=({"rows": len(recorded_check.compared), "mismatches": int(recorded_check.changed.sum()),
                         "share": round(recorded_check.share_changed, 6), "bound": cfg.max_recorded_mismatch}
                        if recorded_check is not None else None))
    return Shadow(cfg, regression, candidate, production, comparison, recorded_check, findings)


@pytest.fixture(autouse=True)
def _record(shadow: Shadow, release_record: Callable[[str, Any], None]) -> None:
    shadow.findings.record(release_record)


def _quoted(shadow: Shadow) -> str:
    rows = shadow.findings.most_changed or []
    if not rows:
        return ""
    r = rows[0]
    inputs = ", ".join(f"{k}={v:g}" for k, v in r["inputs"].items())
    return f"; most changed: {r['source']} production {r['production']!r}, candidate {r['candidate']!r} ({inputs})"


def test_candidate_answers_recorded_requests(shadow: Shadow) -> None:
    """The candidate fails no more of production's own requests than production did (plus the bound)."""
    if not shadow.config.errors_within(shadow.candidate.error_rate, shadow.production.error_rate):
        first = shadow.candidate.error_messages[0] if shadow.candidate.error_messages else ""
        pytest.fail(f"the candidate failed {shadow.candidate.errors} of {shadow.candidate.requests} recorded requests "
                    f"(production {shadow.production.errors}); error rate {shadow.candidate.error_rate:.4f} beyond "
                    f"production's by more than [shadow] max_error_rate {shadow.config.max_error_rate:g}; "
                    f"first: {first}", pytrace=False)


def test_share_of_answers_changed(shadow: Shadow) -> None:
    """How far the candidate moves production's answers on production's own traffic."""
    f, cfg = shadow.findings, shadow.config
    if not f.compared_rows:
        pytest.fail("no recorded row was answered by both the candidate and production", pytrace=False)
    if shadow.regression:
        if cfg.max_mean_abs_change is None:
            pytest.skip("no bound: set [shadow] max_mean_abs_change (the change is in the findings)")
        if shadow.comparison.mean_abs_change > cfg.max_mean_abs_change:
            pytest.fail(f"mean absolute change {shadow.comparison.mean_abs_change:.4g} of {f.compared_rows} recorded "
                        f"rows against {f.production_source} is above [shadow] max_mean_abs_change "
                        f"{cfg.max_mean_abs_change:g}{_quoted(shadow)}", pytrace=False)
        return
    if shadow.comparison.share_changed > cfg.max_changed:
        pytest.fail(f"share changed {shadow.comparison.share_changed:.4f}: {f.changed_rows} of {f.compared_rows} "
                    f"recorded rows change label against {f.production_source}, above [shadow] max_changed "
                    f"{cfg.max_changed:g}{_quoted(shadow)}", pytrace=False)


def test_segments_within_bounds(shadow: Shadow) -> None:
    cfg = shadow.config
    bound = cfg.max_mean_abs_change_per_segment if shadow.regression else cfg.max_changed_per_segment
    if cfg.segment is None or bound is None:
        pytest.skip("no per-segment bound in [shadow] (segment and max_changed_per_segment or "
                    "max_mean_abs_change_per_segment)")
    beyond = [s for s in shadow.findings.segments or [] if s["passed"] is False]
    if beyond:
        what = "mean_abs_change" if shadow.regression else "changed_share"
        pytest.fail(f"{len(beyond)} segment(s) of {cfg.segment} beyond the per-segment bound {bound:g}: "
                    + "; ".join(f"{s['segment']} {what} {s[what]:.4g} ({s['rows']} rows)" for s in beyond),
                    pytrace=False)


def test_production_answers_as_recorded(shadow: Shadow) -> None:
    """Production in history is what served the recorded traffic: its answers now match its record."""
    if shadow.recorded is None:
        pytest.skip("needs both a live production ([acceptance] champion) and recorded model_outputs")
    share = shadow.recorded.share_changed
    if share > shadow.config.max_recorded_mismatch:
        pytest.fail(f"production ({shadow.production.source}) now answers {int(shadow.recorded.changed.sum())} of "
                    f"{len(shadow.recorded.compared)} recorded rows differently from its model_outputs (share "
                    f"{share:.4f}, [shadow] max_recorded_mismatch {shadow.config.max_recorded_mismatch:g}): the "
                    "release named as production may not be what served that traffic", pytrace=False)
