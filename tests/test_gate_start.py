"""What makes a gate start and end sooner, checked on the behaviour it changes: which suite files an
``-m`` imports, which tests and which suite work run while the endpoint starts, and where the
compiled report template is kept. In this process, against the recorded answers (see tests/conftest.py)."""

from __future__ import annotations

import gc
import json
import textwrap
from pathlib import Path

import pytest

from releasetest.suite_names import suites_selected
from releasetest.verdict import report

from .conftest import ReleaseProject, gate_inprocess, wait_all_exit
from .recorded_target import RecordedTarget


@pytest.mark.parametrize(("markexpr", "suites"), [
    ("smoke", {"smoke"}),
    ("smoke or schema", {"smoke", "schema"}),
    ("not load", None),
    ("smoke and slow", None),
    ("smoke or mine", None),
    ("smoke or", None),
])
def test_only_plain_suite_names_narrow_the_files(markexpr: str, suites: set[str] | None) -> None:
    assert suites_selected(markexpr) == (frozenset(suites) if suites is not None else None)


def test_minus_m_naming_a_suite_collects_no_other_suite(release_project: ReleaseProject,
                                                        recorded: RecordedTarget) -> None:
    """The other suites' files are not even imported, so nothing of them is deselected."""
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m", "smoke")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") and "deselected" not in outcomes, outcomes
    narrowed = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m",
                                             "smoke and not load")
    assert narrowed.parseoutcomes().get("deselected"), "an expression that is not plain suite names is pytest's"


def test_tests_that_need_no_endpoint_run_while_it_starts(release_project: ReleaseProject,
                                                         recorded: RecordedTarget) -> None:
    """The drift suite's file sorts after acceptance's, but it asks nothing of the endpoint: it runs first."""
    result = release_project.run_inprocess("--release-stage", "devtest", *recorded.args, "-m",
                                           "acceptance or drift")
    started = [line for line in result.outlines if line.startswith("releasetest: ") and " suite: " in line]
    assert [line.split()[1] for line in started] == ["drift", "acceptance"], started


DRAWN_PROBE = textwrap.dedent("""
    import json
    from releasetest.wiring.keys import RUN_KEY

    def pytest_releasetest_endpoint_ready(config, handle):
        drawn = config.stash[RUN_KEY].prepared.get("schema")
        with open("drawn.json", "w") as f:
            json.dump(None if drawn is None else list(drawn.batches), f)
""")


def test_the_schema_suites_batches_are_drawn_while_the_endpoint_starts(release_project: ReleaseProject,
                                                                        recorded: RecordedTarget) -> None:
    """Drawn before the endpoint is ready, then sent as drawn (see checks/contract/inputs.py)."""
    release_project.pytester.makepyfile(drawn_probe=DRAWN_PROBE)
    release_project.pytester.syspathinsert()
    result = release_project.run_inprocess("-p", "drawn_probe", "--release-stage", "devtest", *recorded.args,
                                           "-m", "schema", "-k", "test_valid_inputs_are_answered_by_contract")
    assert result.parseoutcomes().get("passed"), result.outlines[-20:]
    drawn = json.loads((release_project.pytester.path / "drawn.json").read_text())
    assert drawn is not None and len(drawn) == 40, "max_examples batches, drawn before the ready hook"
    sent = [_rows(body) for body in recorded.bodies]
    assert all(batch in sent for batch in drawn), "each drawn batch is sent"


def test_recorded_traffic_read_while_the_endpoint_starts_still_stops_a_bad_release(
        release_project: ReleaseProject) -> None:
    """Read after the launch, a broken traffic file is still a configuration error: exit 4, one line
    naming file, line and fix, a BLOCK verdict with it, and the launched server stopped."""
    inputs = sorted(p for p in (release_project.release / "data" / "production").rglob("*.jsonl")
                    if "model_inputs" in p.parts)
    with inputs[0].open("a") as f:
        f.write("not json\n")
    result = release_project.run_inprocess("--release-stage", "devtest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = next(line for line in result.errlines if line.startswith("ERROR: releasetest: "))
    assert inputs[0].name in line and "(fix: " in line, line
    verdict = release_project.verdict()
    assert verdict["decision"] == "BLOCK" and inputs[0].name in verdict["reasons"][0], verdict["reasons"]
    launched = verdict["deploy"]["left_behind"].get("pid")
    assert launched, "the endpoint was launched before the traffic was read"
    assert wait_all_exit([launched], 30) == [], "the launched server is stopped"


def _rows(body: bytes) -> object:
    """A request's rows, or None for the schema suite's malformed probes."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return decoded.get("data") if isinstance(decoded, dict) else None


EXIT_PROBE = textwrap.dedent("""
    import atexit
    import gc

    atexit.register(lambda: print(f"frozen at exit: {gc.get_freeze_count()}"))
""")


def test_an_ending_gate_skips_the_final_garbage_collection(pytester: pytest.Pytester) -> None:
    """The gate's interpreter freezes the collector at exit (the probe's exit handler, registered
    before the gate's, runs after it); a pytest that runs a gate in its own process is untouched."""
    pytester.makepyfile(exit_probe=EXIT_PROBE)
    result = pytester.runpytest_subprocess("-p", "exit_probe", "--release-stage", "devtest", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, "no release here: the gate stops at load"
    frozen = [int(line.rsplit(" ", 1)[1]) for line in result.outlines if line.startswith("frozen at exit: ")]
    assert frozen and frozen[0] > 0, result.outlines[-10:]
    before = gc.get_freeze_count()
    assert gate_inprocess(pytester, "--release-stage", "devtest").ret == pytest.ExitCode.USAGE_ERROR
    assert gc.get_freeze_count() == before


def test_the_compiled_template_is_kept_in_the_users_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASETEST_CACHE_DIR", str(tmp_path / "cache"))
    cache = report._template_cache()
    assert cache is not None and Path(cache.directory) == tmp_path / "cache" / "templates"
    assert (tmp_path / "cache" / "templates").is_dir()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RELEASETEST_CACHE_DIR", str(tmp_path / "file"))
    assert report._template_cache() is None, "a cache folder that cannot be made means no cache, not an error"
