"""Test ids in the verdict and the summary can be pasted back into pytest and run that one test.

The built-in suites' ids are absolute paths. Here, in releasetest's source checkout, pytest would
read the checkout's pyproject.toml for such a path: the gate refuses that, and the tests name their
configuration with ``-c`` (the wheel test in test_wheel_install.py pastes an id as a user would).
"""

from __future__ import annotations

import pytest

from tests.conftest import ReferenceRun, ReleaseProject
from tests.recorded_target import RecordedTarget


@pytest.fixture
def liveness_id(reference_run: ReferenceRun) -> str:
    """The smoke suite's liveness test, as the verdict names it."""
    return next(test for test in reference_run.verdict()["suites"]["smoke"]["tests"]
                if test.endswith("::test_liveness"))


def test_a_pasted_suite_node_id_runs_its_test_once(liveness_id: str, release_project: ReleaseProject,
                                                   recorded: RecordedTarget) -> None:
    result = release_project.run_inprocess("-c", "tox.ini", "--release-stage", "devtest", *recorded.args, liveness_id)
    assert result.parseoutcomes() == {"passed": 1}, "\n".join(result.outlines[-30:])
    verdict = release_project.verdict()
    assert verdict["partial"] is True
    assert list(verdict["suites"]) == ["smoke"] and list(verdict["suites"]["smoke"]["tests"]) == [liveness_id]


def test_the_checkouts_own_configuration_is_refused(liveness_id: str, release_project: ReleaseProject) -> None:
    result = release_project.run_inprocess("--release-stage", "devtest", liveness_id)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [line for line in result.errlines if line.strip()]
    assert "pytest read releasetest's own configuration" in line and "-c (e.g. -c pytest.ini)" in line


def test_one_test_erring_on_a_failed_deploy_is_one_error(liveness_id: str, release_project: ReleaseProject,
                                                         recorded: RecordedTarget) -> None:
    recorded.flip = True
    result = release_project.run_inprocess("-c", "tox.ini", "--release-stage", "devtest", *recorded.args, liveness_id)
    assert result.outlines[-1].startswith("releasetest: BLOCK"), result.outlines[-1]
    assert " 1 error (deploy failed) in " in result.outlines[-2], result.outlines[-2]
    assert result.parseoutcomes() == {"errors": 1}
