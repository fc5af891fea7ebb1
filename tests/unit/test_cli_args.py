"""How `callsync` reads its command line: options before or after the command, the window by default,
and --help text on every command and option."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from connector import cli


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], {"command": "gui", "data_dir": None, "port": None}),
        (["--data-dir", "X"], {"command": "gui", "data_dir": Path("X")}),
        (["-v", "--data-dir", "X", "--port", "0"], {"command": "gui", "data_dir": Path("X"), "port": 0, "verbose": True}),
        (["--port", "9000", "serve"], {"command": "serve", "port": 9000}),
        (["serve", "--port", "9000"], {"command": "serve", "port": 9000}),
        (["--data-dir", "A", "serve", "--port", "1", "--admin-port", "2"],
         {"command": "serve", "data_dir": Path("A"), "port": 1, "admin_port": 2}),
        (["--host", "0.0.0.0", "gui", "--data-dir", "B", "-v"],
         {"command": "gui", "host": "0.0.0.0", "data_dir": Path("B"), "verbose": True}),
        (["--data-dir", "C", "dead", "--json"], {"command": "dead", "data_dir": Path("C"), "json": True}),
        (["dead", "--data-dir", "C"], {"command": "dead", "data_dir": Path("C")}),
        (["--data-dir", "D", "secret", "status"], {"command": "secret", "action": "status", "data_dir": Path("D")}),
        (["replay", "--dead", "--data-dir", "E"], {"command": "replay", "dead": True, "data_dir": Path("E")}),
    ],
)
def test_options_parse_before_or_after_the_command(argv, expected):
    args = cli.parse_args(argv)
    assert {key: getattr(args, key) for key in expected} == expected


@pytest.mark.parametrize("argv", [["--port", "70000", "serve"], ["serve", "--port", "x"], ["--port", "1", "dead"],
                                  ["check-crm", "--host", "h"], ["replay"]])
def test_bad_command_lines_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--data-dir", "{dir}", "--port", "0"], ["--port", "0", "gui", "--data-dir", "{dir}"]])
def test_no_command_opens_the_window_with_the_options(tmp_path, monkeypatch, argv):
    import gui.main
    from gui import launcher

    seen = []
    monkeypatch.setattr(gui.main, "run_gui", lambda config: seen.append(config) or 0)
    data = tmp_path / "data"
    assert launcher.main([a.replace("{dir}", str(data)) for a in argv]) == 0
    (config,) = seen
    assert config.data_dir == data and config.server.port == 0
    assert (data / "config.toml").exists()  # the window, like serve, writes the starter config


def _parsers(parser: argparse.ArgumentParser, path: str = "callsync"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"{path} {name}: no help line in the command list"
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_option_has_help():
    checked = 0
    for path, parser in _parsers(cli.build_parser()):
        assert parser.description, f"{path}: no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help != argparse.SUPPRESS, f"{path} {name}: no help text"
            checked += 1
    assert checked > 30  # every command was walked


def test_a_configuration_error_for_the_window_goes_to_its_dialog(tmp_path, monkeypatch):
    import gui.main
    from gui import launcher

    from connector.config import ConfigError

    shown = []
    monkeypatch.setattr(gui.main, "show_startup_error", lambda error: shown.append(error) or 2)
    monkeypatch.setattr(gui.main, "run_gui", lambda config: pytest.fail("the window must not start"))
    (tmp_path / "config.toml").write_text("[sources.dialer]\ntolerance_secs = 5\n")
    assert launcher.main(["--data-dir", str(tmp_path)]) == 2
    (error,) = shown
    assert isinstance(error, ConfigError) and "did you mean 'tolerance_seconds'?" in str(error)


@pytest.mark.parametrize("argv", [[], ["gui"], ["--port", "0"]])
def test_the_headless_command_line_refuses_the_window_in_one_line(tmp_path, capsys, argv):
    assert cli.main([*argv, "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "callsync gui" in err[0] and "serve" in err[0]
    assert not (tmp_path / "data").exists()  # refused before anything was created
