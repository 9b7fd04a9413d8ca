"""docs/reference.md's examples, run as they stand: each code block is a file (its first line names
it), gated in this process against the recorded-answers target (tests/recorded_target.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ReleaseProject
from tests.recorded_target import RecordedTarget

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"


def example_files() -> dict[str, str]:
    """File name -> the blocks that name it, joined in the order the page gives them."""
    files: dict[str, list[str]] = {}
    for block in re.findall(r"```python\n(.*?)```", REFERENCE.read_text(), re.S):
        first, _, body = block.partition("\n")
        name = first.removeprefix("# ").strip()
        assert first.startswith("# ") and name.endswith(".py"), f"a reference example must name its file: {first!r}"
        files.setdefault(name, []).append(body)
    return {name: "\n\n".join(bodies) for name, bodies in files.items()}


def test_every_fixture_and_hook_has_a_section_and_an_example() -> None:
    text = REFERENCE.read_text()
    sections = re.findall(r"^### `([a-z_]+)", text, re.M)
    fixtures = {"release", "release_stage", "holdout", "endpoint", "scoring_client", "release_record", "suite_config",
                "release_run", "release_workdir", "release_worker", "champion_endpoint"}
    hooks = {"pytest_releasetest_endpoint_ready", "pytest_releasetest_verdict"}
    assert set(sections) == fixtures | hooks
    code = "\n".join(example_files().values())
    assert all(re.search(rf"\b{name}\b", code) for name in fixtures | hooks)


def test_the_examples_pass_against_the_example_release(release_project: ReleaseProject, recorded: RecordedTarget,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files = example_files()
    tests = [name for code in files.values() for name in re.findall(r"^\s*def (test_\w+)", code, re.M)]
    release_project.pytester.makepyfile(**{name.removesuffix(".py"): code for name, code in files.items()})
    monkeypatch.setenv("CHANGE_FREEZE", "the quarter closes")
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "test_reference.py",
                                           "-k", " or ".join(tests))
    result.assert_outcomes(passed=len(tests))
    verdict = release_project.verdict()
    assert verdict["findings"]["smoke"]["storm_label"] in (0, 1)
    assert verdict["findings"]["dashboard"] == {"seen": "BLOCK"}  # the required suites did not all run
    assert "change freeze: the quarter closes" in verdict["reasons"]
    dashboard = (release_project.root / "dashboard.log").read_text()
    assert dashboard == f"up: {recorded.url}/score\n"
