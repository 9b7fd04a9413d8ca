"""The release id covers what decided the verdict: after a genuine PROMOTE, changing the code folder,
the gate settings in release.toml or the holdout makes ``verdict --manifest`` and ``promote`` refuse,
naming what changed.

The PROMOTE is the shared reference run's (copied into ``tmp_path`` before anything changes), or for
a helper module a gate run in this process against the recorded-answers target (the smoke suite
only: the id does not depend on which suites decided).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from releasetest.cli import main
from releasetest.release.manifest import load_release

from .conftest import SMOKE_GATE, ReferenceRun, ReleaseProject
from .recorded_target import RecordedTarget

#: What each change does to a copy of the released folder, and the component the refusal names.
CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "parity lowered": (lambda r: _edit(r / "release.toml", "parity = 0.999", "parity = 0.5"),
                       "release.toml [acceptance] changed"),
    "threshold removed": (lambda r: _edit(r / "release.toml", "roc_auc = { min = 0.90, min_absolute_change = "
                                          "{ persistence = 0.05 } }\n", ""), "release.toml [acceptance] changed"),
    "load SLO loosened": (lambda r: _edit(r / "release.toml", "p99_ms = 1000", "p99_ms = 60000"),
                          "release.toml [load] changed"),
    "holdout edited": (lambda r: _edit(r / "data" / "holdout.csv", "\n", "\n", drop_last_line=True),
                       "holdout data/holdout.csv changed"),
    "expected predictions edited": (lambda r: _edit(r / "data" / "expected_predictions.csv", "\n", "\n",
                                                    drop_last_line=True),
                                    "expected predictions data/expected_predictions.csv changed"),
    "module added beside score.py": (lambda r: (r / "sitecustomize.py").write_text("import os\n"),
                                     "code sitecustomize.py added"),
}


def _edit(path: Path, old: str, new: str, drop_last_line: bool = False) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    if drop_last_line:
        text = "".join(text.splitlines(keepends=True)[:-1])
    path.write_text(text.replace(old, new, 1))


def _copy(reference_run: ReferenceRun, tmp_path: Path) -> tuple[Path, Path]:
    """The released folder and its sealed verdict, copied byte for byte."""
    release = tmp_path / "release"
    shutil.copytree(reference_run.release, release)
    verdict = tmp_path / "verdict.json"
    shutil.copyfile(reference_run.verdict_path, verdict)
    return release, verdict


def _refused_naming(capsys: pytest.CaptureFixture[str], verdict: Path, manifest: Path, changed: str,
                    store: Path) -> None:
    assert main(["verdict", str(verdict), "--manifest", str(manifest)]) == 1
    out, _ = capsys.readouterr()
    assert "release changed since the test" in out and changed in out, out
    code = main(["promote", "--from", "devtest", "--to", "production", "--verdict", str(verdict),
                 "--manifest", str(manifest), "--store", str(store)])
    _, err = capsys.readouterr()
    assert code == 3, err
    assert err.startswith("releasetest: refused: release changed since the test") and changed in err, err
    assert not (store / "promotions").exists()


@pytest.mark.parametrize("change", list(CHANGES))
def test_change_after_promote_is_refused_naming_it(reference_run: ReferenceRun, tmp_path: Path, change: str,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RELEASETEST_SIGNING_KEY", "RELEASETEST_VERIFY_KEY", "RELEASETEST_HMAC_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert reference_run.verdict()["decision"] == "PROMOTE"
    release, verdict = _copy(reference_run, tmp_path)
    manifest = release / "release.toml"
    assert main(["verdict", str(verdict), "--manifest", str(manifest)]) == 0, "the unchanged copy is the release"
    capsys.readouterr()
    apply, named = CHANGES[change]
    apply(release)
    _refused_naming(capsys, verdict, manifest, named, tmp_path / "history")


def test_comments_and_pycache_do_not_change_the_id(reference_run: ReferenceRun, tmp_path: Path) -> None:
    """Nor do the caches a gate run in the release folder writes (pytest's, hypothesis's)."""
    release, _ = _copy(reference_run, tmp_path)
    before = load_release(release / "release.toml").release_id
    manifest = release / "release.toml"
    manifest.write_text("# reviewed\n" + manifest.read_text())
    (release / "__pycache__").mkdir(exist_ok=True)
    (release / "__pycache__" / "score.cpython-311.pyc").write_bytes(b"\0")
    (release / ".hypothesis" / "constants").mkdir(parents=True, exist_ok=True)
    (release / ".hypothesis" / "constants" / "0123456789abcdef").write_text("[]")
    assert load_release(manifest).release_id == before


def test_a_linked_file_in_the_code_folder_counts_as_what_it_points_to(reference_run: ReferenceRun,
                                                                     tmp_path: Path) -> None:
    """A link to a pinned artifact adds nothing (the artifact is covered); a link to a module
    outside the folder is code, and editing its target changes the id."""
    release, _ = _copy(reference_run, tmp_path)
    manifest = release / "release.toml"
    before = load_release(manifest)
    (release / "scaler-link.pkl").symlink_to(release / "models" / "model-scaler.pkl")
    assert load_release(manifest).components == before.components
    outside = tmp_path / "shared_helpers.py"
    outside.write_text(HELPER)
    (release / "helpers.py").symlink_to(outside)
    linked = load_release(manifest)
    assert set(linked.components) - set(before.components) == {"code ../shared_helpers.py"}
    outside.write_text(HELPER.replace("return x", "return -x"))
    assert load_release(manifest).release_id != linked.release_id


HELPER = "def scale(x):\n    return x\n"


def test_helper_module_changed_after_promote_is_refused(release_project: ReleaseProject, recorded: RecordedTarget,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """score.py imports a helper of its folder; the gate PROMOTEs; the helper changes: refused."""
    release_project.edit("score.py", "import ", "import weather_helpers\nimport ")
    (release_project.release / "weather_helpers.py").write_text(HELPER)
    result = release_project.run_inprocess(*SMOKE_GATE, *recorded.args)
    verdict = release_project.verdict()
    assert verdict["decision"] == "PROMOTE", (verdict["reasons"], result.stdout.str()[-2000:])
    assert "code weather_helpers.py" in verdict["release"]["components"]
    (release_project.release / "weather_helpers.py").write_text(HELPER.replace("return x", "return x * 0"))
    _refused_naming(capsys, release_project.verdict_path, release_project.release / "release.toml",
                    "code weather_helpers.py changed", release_project.root / "history")
    assert json.loads(release_project.verdict_path.read_text())["decision"] == "PROMOTE"
