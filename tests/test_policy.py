"""CI-owned floors (``--release-policy``): release.toml can tighten them, not loosen them.

Configuration errors stop the gate before anything is deployed (in this process); the floors that
apply are checked on the parsed suite settings, and one gate runs against the recorded target.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from releasetest.errors import ConfigError
from releasetest.run import ReleaseRun
from releasetest.settings import resolve

from .conftest import ReleaseProject

POLICY = """
required_suites = ["smoke", "acceptance"]

[acceptance]
parity = 0.99

[acceptance.thresholds]
accuracy = { min = 0.9 }
precision_1 = { min = 0.5 }

[load]
p99_ms = 2000
max_error_rate = 0.01
"""


def _policy(root: Path, text: str = POLICY) -> Path:
    path = root / "ci-policy" / "policy.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _run(project: ReleaseProject, policy: Path, **extra: str) -> ReleaseRun:
    settings = resolve({"stage": "devtest", "config": str(project.release / "release.toml"), "policy": str(policy),
                        **extra}, {}, {}, project.root, project.root)
    run = ReleaseRun(settings)
    run.load()
    return run


def test_floors_apply_and_a_tighter_release_keeps_its_own(release_project: ReleaseProject) -> None:
    run = _run(release_project, _policy(release_project.root))
    acceptance = run.suite_configs["acceptance"]
    assert acceptance.parity == 0.999, "release.toml's tighter parity stays"
    bounds = {(t.metric, t.kind): t.margin for t in acceptance.thresholds}
    assert bounds[("accuracy", "min")] == 0.93 and bounds[("precision_1", "min")] == 0.5
    assert run.suite_configs["load"].p99_ms == 1000 and run.suite_configs["load"].max_error_rate == 0.001
    assert run.verdict(0)["policy"]["required_suites"] == ["smoke", "acceptance"]


@pytest.mark.parametrize(("old", "new", "key", "shown"), [
    ("parity = 0.999", "parity = 0.5", "acceptance.parity", "0.5 is looser than the CI policy's 0.99"),
    ("accuracy = { min = 0.93,", "accuracy = { min = 0.5,", "acceptance.thresholds.accuracy.min",
     "0.5 is looser than the CI policy's 0.9"),
    ("p99_ms = 1000", "p99_ms = 60000", "load.p99_ms", "60000 is looser than the CI policy's 2000"),
])
def test_a_looser_release_is_a_config_error_naming_both_files(release_project: ReleaseProject, old: str, new: str,
                                                              key: str, shown: str) -> None:
    policy = _policy(release_project.root)
    release_project.edit("release.toml", old, new)
    with pytest.raises(ConfigError) as caught:
        _run(release_project, policy)
    text = str(caught.value)
    assert text.startswith(f"{release_project.release / 'release.toml'}: {key}: {shown} ({policy})"), text


def test_a_removed_threshold_gets_the_floor(release_project: ReleaseProject) -> None:
    release_project.edit("release.toml", "accuracy = { min = 0.93, min_absolute_change = { majority = 0.02, "
                         "persistence = 0.005 } }\n", "")
    run = _run(release_project, _policy(release_project.root))
    thresholds = run.suite_configs["acceptance"].thresholds
    assert ("accuracy", "min", 0.9) in {(t.metric, t.kind, t.margin) for t in thresholds}


def test_required_suites_cannot_be_narrowed_and_the_policy_lives_outside_the_release(
        release_project: ReleaseProject) -> None:
    policy = _policy(release_project.root)
    assert sorted(_run(release_project, policy).required) == [
        "acceptance", "drift", "load", "schema", "shadow", "smoke"]
    with pytest.raises(ConfigError, match=r"required_suites: --release-require leaves out acceptance, which the CI "
                                          r"policy requires"):
        _run(release_project, policy, require="smoke,load")
    assert _run(release_project, policy, require="smoke,acceptance,load").required == ("smoke", "acceptance", "load")
    inside = release_project.release / "policy.toml"
    inside.write_text(POLICY)
    with pytest.raises(ConfigError, match="the policy is inside the release folder"):
        _run(release_project, inside)


def test_the_gate_reports_a_looser_release_as_a_usage_error(release_project: ReleaseProject) -> None:
    policy = _policy(release_project.root)
    release_project.edit("release.toml", "parity = 0.999", "parity = 0.5")
    result = release_project.run_inprocess("--release-stage", "devtest", f"--release-policy={policy}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"acceptance.parity: 0.5 is looser than the CI policy's 0.99 ({policy})" in result.stderr.str()
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK" and "looser than the CI policy" in verdict["reasons"][0]
