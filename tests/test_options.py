"""One option table serves the plugin and the CLI: flags, defaults, parsers and help come from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from releasetest.cli import build_parser, main
from releasetest.promotion import PromoteOptions
from releasetest.settings import OPTION, OPTIONS, PLUGIN_PREFIX, Option, resolve
from tests.conftest import ReleaseProject

#: The options ``releasetest promote`` shares with the gate, under its own spelling (``--NAME``).
PROMOTE_SHARES = {"verdict", "target", "url", "key_env", "workspace_config", "keep", "port", "ready_timeout",
                  "isolation"}
PROMOTE = ["promote", "--from", "devtest", "--to", "production"]


@dataclass
class ParserCatcher:
    """A plugin that keeps the parser pytest hands to every ``pytest_addoption``."""

    parsers: list[pytest.Parser] = field(default_factory=list)

    def pytest_addoption(self, parser: pytest.Parser) -> None:
        self.parsers.append(parser)


def _table_default(opt: Option) -> Any:
    if opt.is_flag:
        return False
    return Path(opt.default) if opt.is_path and opt.default else opt.parse(opt.default) if opt.default else None


def test_every_option_is_in_the_pytest_group_with_its_ini_key(pytester: pytest.Pytester) -> None:
    catcher = ParserCatcher()
    pytester.plugins.append(catcher)
    config = pytester.parseconfig()
    (parser,) = catcher.parsers
    arguments = {arg.names()[0]: arg.attrs() for arg in parser.getgroup("releasetest").options}
    assert set(arguments) == {opt.flag for opt in OPTIONS}
    for opt in OPTIONS:
        attrs = arguments[opt.flag]
        assert attrs["dest"] == opt.dest and attrs["help"] == opt.help_with_default, opt.name
        assert attrs["default"] is None, f"{opt.name}: resolve() ranks the ini and environment below the command line"
        assert config.getoption(opt.dest) is None and config.getini(opt.ini) == ""


def test_promote_takes_the_shared_options_from_the_table(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping: help texts compare whole
    with pytest.raises(SystemExit):
        main([*PROMOTE, "--help"])
    lines: dict[str, str] = {}  # flag -> its usage and help, which argparse may put on the next line
    for line in capsys.readouterr().out.split("options:")[1].split("exit status:")[0].splitlines():
        if line.startswith("  -"):
            flag = line.split()[0]
            lines[flag] = line.strip()
        elif line.strip():
            lines[flag] += " " + line.strip()
    shared = {opt.name for opt in OPTIONS if "--" + opt.name.replace("_", "-") in lines}
    assert shared == PROMOTE_SHARES
    args = vars(build_parser().parse_args(PROMOTE))
    for name in shared:
        opt = OPTION[name]
        help_text = opt.help_with_default.replace(PLUGIN_PREFIX, "--")
        assert lines["--" + name.replace("_", "-")].endswith(help_text), name
        assert args[name] == _table_default(opt), name
    assert PromoteOptions.from_arguments(args) == PromoteOptions(), "the options object's defaults are the table's"
    given = build_parser().parse_args([*PROMOTE, "--target", "url", "--port", "8123", "--expect-header", "A=b"])
    options = PromoteOptions.from_arguments({**vars(given), "expect_headers": tuple(given.expect_headers)})
    assert (options.target, options.port, options.expect_headers) == ("url", 8123, (("a", "b"),))


@pytest.mark.parametrize(("argv", "message"), [
    (["--ready-timeout", "0"], "argument --ready-timeout: '0' must be greater than 0"),
    (["--port", "70000"], "argument --port: port 70000 is outside 0-65535"),
    (["--target", "cloud"], "argument --target: unknown target 'cloud'"),
])
def test_promote_refuses_what_the_gate_refuses(capsys: pytest.CaptureFixture[str], argv: list[str],
                                               message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*PROMOTE, *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "--release-" not in err, err


def test_settings_say_where_they_came_from(tmp_path: Path) -> None:
    settings = resolve({"stage": "devtest"}, {"RELEASETEST_PORT": "8123"},
                       {"release_config": "rel/release.toml", "release_require": "smoke,schema"}, tmp_path, tmp_path)
    assert settings.origins(tmp_path) == (
        "stage=devtest (command line), config=rel/release.toml (ini release_config), target=local (default), "
        "require=smoke,schema (ini release_require), port=8123 (environment RELEASETEST_PORT)")


def test_report_header_names_each_setting_source(release_project: ReleaseProject,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASETEST_READY_TIMEOUT", "30")
    result = release_project.pytester.runpytest_inprocess("-p", "no:cacheprovider", "--release-stage", "devtest",
                                                          "--co")
    result.stdout.fnmatch_lines([
        "releasetest: release port-weather@*, stage=devtest (command line), config=release/release.toml "
        "(ini release_config), target=local (default), partial_ok=true (ini release_partial_ok), "
        "ready_timeout=30 (environment RELEASETEST_READY_TIMEOUT)",
    ])
