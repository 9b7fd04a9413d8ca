"""The synthetic verdicts the renderer tests use carry the keys a real run writes, and no others."""

from __future__ import annotations

from typing import Any

from .conftest import ReferenceRun
from .synthetic import synthetic_verdict

#: Mappings keyed by data (test ids, file names, classes, statuses ...), not by the verdict's schema.
KEYED_BY_DATA = frozenset({
    "suites", "suites.*.tests", "suites.*.messages", "release.configs", "environment.packages",
    "deployment.settings", "findings.acceptance.references", "findings.acceptance.class_distribution.*",
    "findings.acceptance.curves.*", "findings.acceptance.parity.mismatches[].inputs", "findings.load.errors",
    "findings.schema.requests_by_process", "release.components", "findings.smoke.probes",
})
#: Not in the reference run's verdict: parity mismatches and error statuses appear only when
#: something went wrong, and git facts only inside a repository (the run works on a copy).
NOT_IN_THE_REFERENCE_RUN = frozenset({
    "git.commit", "git.branch", "git.dirty",
    "findings.acceptance.parity.mismatches[].row", "findings.acceptance.parity.mismatches[].inputs",
    "findings.acceptance.parity.mismatches[].inputs.*", "findings.acceptance.parity.mismatches[].expected",
    "findings.acceptance.parity.mismatches[].got", "findings.load.errors.*",
})


def key_paths(node: Any, path: str = "") -> set[str]:
    """Every key path, list items merged as ``[]`` and data-keyed mappings as ``*``."""
    out: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            sub = (f"{path}." if path else "") + ("*" if path in KEYED_BY_DATA else str(key))
            out |= {sub} | key_paths(value, sub)
    elif isinstance(node, list):
        for item in node:
            out |= key_paths(item, f"{path}[]")
    return out


def test_synthetic_verdicts_have_the_keys_of_a_real_run(reference_run: ReferenceRun) -> None:
    real = key_paths(reference_run.verdict())
    for decision in ("PROMOTE", "BLOCK"):
        synthetic = key_paths(synthetic_verdict(decision))
        assert real - synthetic == set(), f"{decision}: keys a real run writes that the synthetic verdict lacks"
        assert synthetic - real <= NOT_IN_THE_REFERENCE_RUN, f"{decision}: keys no real run wrote"
