"""The README's commands and options against the CLI's own parser, and the first-release commands
(``init``, ``hash --write``, ``promote`` without ``--to``), all in-process.

The README's "Every command and its options" table must list exactly each command's arguments and
long options, every ``releasetest ...`` line in its code blocks must use a command and options that
exist, and every option must have help.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import tomllib

from releasetest.cli import build_parser, main
from releasetest.scaffold import init_release
from releasetest.verdict.history import Store
from releasetest.verdict.seal import seal_verdict

from .conftest import EXAMPLE
from .synthetic import synthetic_verdict

README = Path(__file__).resolve().parent.parent / "README.md"


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _long(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def _readme_table() -> dict[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("| command | arguments and options |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[1])
    return rows


def test_readme_table_lists_each_command_and_option_of_help() -> None:
    rows = _readme_table()
    commands = _commands()
    assert set(rows) == set(commands), "README table vs releasetest --help commands"
    for name, parser in commands.items():
        options = [_long(a) for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
        positional = [a for a in parser._actions if not a.option_strings]
        listed = rows[name]
        assert [x for x in listed if x.startswith("--")] == options, f"releasetest {name}: README vs --help"
        assert len([x for x in listed if not x.startswith("--")]) == len(positional), f"releasetest {name} arguments"


def test_every_option_has_help() -> None:
    for name, parser in _commands().items():
        for action in parser._actions:
            assert action.help and action.help.strip(), f"releasetest {name} {action.option_strings or action.dest}"


def test_readme_command_lines_use_options_that_exist() -> None:
    commands = _commands()
    text = README.read_text(encoding="utf-8")
    lines, fenced = [], False
    for ln in text.splitlines():
        if ln.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced and ln.strip().startswith("releasetest "):
            lines.append(ln.split(" #", 1)[0])
    assert len(lines) > 15
    for line in lines:
        words = line.split()
        if words[1].startswith("--"):
            assert words[1] in ("--version", "--help"), line
            continue
        assert words[1] in commands, f"README uses an unknown command: {line}"
        known = {s for a in commands[words[1]]._actions for s in a.option_strings}
        for flag in (w.split("=", 1)[0] for w in words[2:] if w.startswith("--")):
            assert flag in known, f"README uses {flag}, which releasetest {words[1]} --help does not list: {line}"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_writes_a_release_whose_gate_says_what_to_fill_in(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "wine"
    code, out, _ = _cli(capsys, "init", str(folder))
    assert code == 0 and "python train.py && releasetest hash --write release.toml" in out
    manifest = folder / "release.toml"
    text = manifest.read_text()
    assert "FILL IN" in text and tomllib.loads(text)["release"]["name"] == "wine"
    for name in ("InferenceConfig.yml", "myenv.yml", "AciDeploymentConfig.yml", "AksDeploymentConfig.yml",
                 "score.py", "train.py"):
        assert (folder / name).is_file(), name
    compile((folder / "score.py").read_text(), "score.py", "exec")
    compile((folder / "train.py").read_text(), "train.py", "exec")
    conda = (folder / "myenv.yml").read_text()
    assert re.search(r"scikit-learn==\d", conda) and re.search(r"joblib==\d", conda), "the pickle's packages pinned"
    code, _, err = _cli(capsys, "check", str(manifest))
    assert code == 2 and "models/model.pkl is not written yet: run the release's train.py, then run " \
        "releasetest hash --write release.toml" in err
    code, _, err = _cli(capsys, "init", str(folder))
    assert code == 2 and "overwrites nothing" in err


def test_init_v2_writes_the_v2_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "wine2"
    assert _cli(capsys, "init", str(folder), "--v2", "--name", "wine-v2")[0] == 0
    stages = tomllib.loads((folder / "release.toml").read_text())["stages"]
    assert stages["devtest"] == {"deployment": "blue-deployment.yml", "endpoint": "endpoint.yml"}
    deployment = (folder / "blue-deployment.yml").read_text()
    assert "scoring_script: score.py" in deployment and "conda_file: environment/conda.yaml" in deployment
    assert (folder / "onlinescoring" / "score.py").is_file() and (folder / "environment" / "conda.yaml").is_file()
    assert "model/model.pkl" in (folder / "train.py").read_text()
    # README's sequence runs hash --write for every release: a v2 one says it has nothing to pin, and succeeds.
    code, out, _ = _cli(capsys, "hash", "--write", str(folder / "release.toml"))
    assert code == 0 and "an Azure ML v2 release without [[artifacts]]" in out and "nothing to pin" in out


def test_hash_write_updates_the_pinned_digests_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "release"
    init_release(folder)
    (folder / "models").mkdir()
    (folder / "models" / "model.pkl").write_bytes(b"model one")
    manifest = folder / "release.toml"
    code, out, _ = _cli(capsys, "hash", "--write", str(manifest))
    assert code == 0 and "models/model.pkl: pinned (none) -> " in out and "1 of 1 pinned digests changed" in out
    assert "# sha256: releasetest hash --write release.toml" in manifest.read_text(), "comments kept"
    first = _pinned(manifest)
    (folder / "models" / "model.pkl").write_bytes(b"model two")
    code, out, _ = _cli(capsys, "hash", "--write", str(manifest))
    assert code == 0 and f"changed {first[:12]} -> " in out
    assert _pinned(manifest) != first
    code, out, _ = _cli(capsys, "hash", "--write", str(manifest))
    assert "models/model.pkl: unchanged" in out and "0 of 1 pinned digests changed" in out
    code, _, err = _cli(capsys, "hash")
    assert code == 2 and "--write release.toml" in err


def _pinned(manifest: Path) -> str:
    return tomllib.loads(manifest.read_text())["artifacts"][0]["files"][0]["sha256"]


def test_promote_defaults_to_the_stages_promote_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --to the verdict's promote_to is the target; this synthetic verdict names a manifest
    that is not there, so promotion is refused at its release check, after saying where it goes."""
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(seal_verdict(synthetic_verdict("PROMOTE"))))
    code, out, err = _cli(capsys, "promote", "--from", "devtest", "--verdict", str(path), "--store",
                          str(tmp_path / "h"))
    assert "promoting to production (stage devtest's promote_to" in out
    assert code != 0 and err and not list(Store(tmp_path / "h").promotions())
    last = seal_verdict({**synthetic_verdict("PROMOTE"), "promote_to": None})
    path.write_text(json.dumps(last))
    code, _, err = _cli(capsys, "promote", "--from", "devtest", "--verdict", str(path))
    assert code == 2 and "has no promote_to in the manifest (the last stage): give --to STAGE" in err


def test_example_manifest_is_unchanged_by_hash_write_of_a_copy(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ex").mkdir()
    for name in ("release.toml", "models"):
        src = EXAMPLE / name
        if src.is_dir():
            (tmp_path / "ex" / name).mkdir()
            for f in src.iterdir():
                (tmp_path / "ex" / name / f.name).write_bytes(f.read_bytes())
        else:
            (tmp_path / "ex" / name).write_bytes(src.read_bytes())
    code, out, _ = _cli(capsys, "hash", "--write", str(tmp_path / "ex" / "release.toml"))
    assert code == 0 and "0 of 2 pinned digests changed" in out
    assert (tmp_path / "ex" / "release.toml").read_bytes() == (EXAMPLE / "release.toml").read_bytes()


def test_history_last_shows_the_release_with_the_latest_step(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A release gated first but approved last is among the last 1, though another was gated after it."""
    store = Store(tmp_path / "h")
    first = seal_verdict(synthetic_verdict("PROMOTE"))
    second = synthetic_verdict("PROMOTE")
    second["release"] = {**second["release"], "id": "sha256:" + "cd" * 32}
    second["finished_at"] = "2026-01-02T10:00:00+00:00"
    store.add_verdict(first)
    store.add_verdict(seal_verdict({k: v for k, v in second.items() if k != "digest"}))
    store.approve(first, "alice")
    code, out, _ = _cli(capsys, "history", "--store", str(tmp_path / "h"), "--last", "1")
    assert code == 0 and "port-weather@abababababab" in out and "@cdcdcdcdcdcd" not in out
    code, out, _ = _cli(capsys, "history", "--store", str(tmp_path / "h"), "--last", "2")
    assert out.index("@abababababab") < out.index("@cdcdcdcdcdcd"), "shown oldest first"
