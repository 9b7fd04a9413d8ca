"""``releasetest migrate``: the v2 release of a v1 release serves the same predictions, end to end
against real local azmlinfsrv endpoints (the original and the migrated release side by side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasetest.cli import main
from releasetest.endpoint.client import ScoringClient
from releasetest.endpoint.local import LocalEndpoint
from releasetest.errors import ConfigError
from releasetest.release.data import load_holdout
from releasetest.release.manifest import load_release

from .conftest import EXAMPLE
from .test_v2_release import SAMPLE


def _predictions(manifest: Path, log: Path) -> tuple[list, list | None]:
    release = load_release(manifest)
    assert release.data is not None
    holdout = load_holdout(release.data)
    local = LocalEndpoint(release, release.stage("devtest"), holdout.golden(release.data.golden_rows), log_path=log)
    try:
        handle = local.deploy()
        with ScoringClient(handle) as client:
            scored = client.score(holdout.rows.tolist())
        return scored.predictions, scored.probabilities
    finally:
        local.teardown()


@pytest.mark.long
def test_the_migrated_port_weather_serves_the_same_predictions(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v2"
    assert main(["migrate", str(EXAMPLE / "release.toml"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    migrated = load_release(out / "release.toml")
    original = load_release(EXAMPLE / "release.toml")
    assert migrated.v2 is not None and migrated.v2.model.is_folder
    assert f"v2 release port-weather@{migrated.short_id} (was v1 {original.short_id})" in err
    assert (out / "src" / "score.py").read_bytes() == (EXAMPLE / "score.py").read_bytes(), "the entry script is kept"
    assert migrated.stage("production").deployment.kind == "kubernetes"
    assert migrated.stage("production").deployment.max_concurrent_requests_per_container == 2
    assert "[[artifacts]]" not in (out / "release.toml").read_text()
    before = _predictions(EXAMPLE / "release.toml", tmp_path / "v1.log")
    after = _predictions(out / "release.toml", tmp_path / "v2.log")
    assert original.data is not None and len(before[0]) == len(load_holdout(original.data).labels)
    assert after == before


def test_migrate_refuses_a_v2_release_and_a_used_folder(tmp_path: Path) -> None:
    from releasetest.azureml.migrate import migrate

    with pytest.raises(ConfigError, match="already a v2 release"):
        migrate(load_release(SAMPLE / "release.toml"), tmp_path / "out")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(ConfigError, match="the output folder is not empty"):
        migrate(load_release(EXAMPLE / "release.toml"), tmp_path / "used")
