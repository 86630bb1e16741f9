"""The `roadedge` command line as a user meets it: help for every command, exit codes, signals."""
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from roadedge.cli import build_parser, main

COMMANDS = [["synth"], ["dataset", "convert"], ["dataset", "convert-seg"], ["dataset", "upload"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command + ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: roadedge " + " ".join(command))
    assert "--overwrite" in out or "--dry-run" in out


def test_top_level_help_lists_the_commands():
    text = build_parser().format_help()
    assert "synth" in text and "dataset" in text


def test_python_dash_m_edge_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "roadedge", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip().startswith("roadedge ")


def test_output_folder_gets_normal_permissions(tmp_path):
    assert main(["synth", str(tmp_path / "out"), "--count", "1", "--seed", "1", "--size", "64x64"]) == 0
    mode = stat.S_IMODE(os.stat(tmp_path / "out").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask


def test_sigterm_leaves_nothing_half_written(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "roadedge", "synth", str(out), "--count", "5000", "--seed", "1"],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(name.endswith(".partial") for name in os.listdir(tmp_path)):
        time.sleep(0.05)
    assert any(name.endswith(".partial") for name in os.listdir(tmp_path)), "the run never started writing"
    while time.time() < deadline and not [n for _, _, names in os.walk(str(tmp_path)) for n in names
                                          if n.endswith(".jpg")]:
        time.sleep(0.05)  # the render workers are up (a SIGTERM while the pool starts is a separate race)
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "roadedge: terminated" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def _failing(error):
    def handler(args):
        raise error
    return handler


def test_an_unexpected_error_is_one_line_with_a_hint_and_debug_shows_the_traceback(monkeypatch, capsys):
    import roadedge.cli as cli

    parser = cli.build_parser()
    real_parse = parser.parse_args

    def parse(argv=None):
        args = real_parse(argv)
        args.handler = _failing(ValueError("shape (3,) does not match (4,)\nsecond line"))
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["profiles"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadedge: internal error: ValueError: shape (3,) does not match (4,) "
                                               "second line")
    assert "roadedge --debug" in err[0] and "Traceback" not in err[0]
    with pytest.raises(ValueError):
        cli.main(["--debug", "profiles"])


def test_an_io_error_that_names_its_file_is_one_line_exit_2(monkeypatch, capsys):
    import errno

    import roadedge.cli as cli

    parser = cli.build_parser()
    real_parse = parser.parse_args

    def parse(argv=None):
        args = real_parse(argv)
        args.handler = _failing(OSError(errno.ENOSPC, "No space left on device", "/data/out/summary.json"))
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["profiles"]) == 2
    assert capsys.readouterr().err == "roadedge: error: /data/out/summary.json: disk full\n"
