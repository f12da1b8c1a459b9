"""The console script: one argparse tree, clean help, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import neuralcore
from neuralcore.cli import main

Capture = pytest.CaptureFixture[str]
COMMANDS = ("info", "demo", "bench", "models", "migrate")


def _help(argv: list[str], capsys: Capture) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_version_flag(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"neuralcore {neuralcore.__version__}"


def test_info_lists_engines(capsys: Capture) -> None:
    assert main(["-v", "info"]) == 0  # a global option before the command
    out = capsys.readouterr().out
    assert out.startswith(f"neuralcore {neuralcore.__version__}")
    for engine in neuralcore.backend_info():
        assert f"  {engine} " in out


def test_info_shows_the_forced_python_backend() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "neuralcore", "info"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "NEURALCORE_BACKEND": "python"},
    )  # fmt: skip
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    for engine in ("vectors", "hnsw", "messaging"):
        assert lines[engine].split()[1] == "python", lines[engine]
    assert "NEURALCORE_BACKEND=python has no effect here" in lines["embedding"]


def test_info_with_a_bad_backend_setting_is_one_line(
    capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURALCORE_BACKEND", "bogus")
    assert main(["info"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing half-printed before the error
    assert err == (
        "neuralcore: error: config field 'NEURALCORE_BACKEND' = 'bogus':"
        " expected auto, native or python\n"
    )


def test_no_command_prints_help(capsys: Capture) -> None:
    assert main([]) == 1
    out = capsys.readouterr().out
    assert out.startswith("usage: neuralcore")
    for command in COMMANDS:
        assert f"    {command} " in out


@pytest.mark.parametrize("argv", [[], *([c] for c in COMMANDS)], ids=["top", *COMMANDS])
def test_help_is_plain_text(argv: list[str], capsys: Capture) -> None:
    out = _help(argv, capsys)
    assert out.startswith(f"usage: neuralcore {' '.join(argv)}".rstrip())
    for markup in ("``", ":class:", ":func:", ":mod:", "Examples\n", ">>>"):
        assert markup not in out, (markup, out)


def test_bench_help_says_what_runs(capsys: Capture) -> None:
    out = _help(["bench"], capsys)
    for suite in ("vectors", "embedding", "messaging", "bridges"):
        assert f"  {suite} " in out
    assert "Without SUITE every suite runs" in out


def test_bench_suite_options_reach_the_suite(capsys: Capture) -> None:
    assert _help(["bench", "vectors"], capsys).startswith("usage: neuralcore bench vectors")


def test_unknown_bench_suite_is_rejected(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "nope"])
    assert info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_unknown_option_is_rejected(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["info", "--frobnicate"])
    assert info.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "neuralcore", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert neuralcore.__version__ in done.stdout


def test_models_subcommand_has_its_own_options(capsys: Capture) -> None:
    assert "convert" in _help(["models"], capsys)


def test_verbose_flag_reaches_migrate(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "app.py").write_text("import json\n", encoding="utf-8")
    assert main(["-v", "migrate", str(tmp_path), "--dry-run"]) == 0
    assert "usage:" not in capsys.readouterr().out


def test_neuralcore_error_is_one_line_with_exit_code_2(capsys: Capture) -> None:
    assert main(["models", "info", "/definitely/not/a/model"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("neuralcore: error: ")
    assert err.count("\n") == 1
    assert "/definitely/not/a/model" in err


# Ctrl-C as a terminal delivers it: a job started in the background by a non-interactive
# shell (CI, `cmd &`) inherits SIGINT ignored, and the child would never see the signal
_AS_IN_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
    " sys.argv = ['neuralcore', 'bench', 'messaging'];"
    " runpy.run_module('neuralcore', run_name='__main__', alter_sys=True)"
)


def test_ctrl_c_is_one_line_with_status_130() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _AS_IN_A_TERMINAL],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline()  # its first line, at once through a pipe: it runs
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    notice, interrupted = err.splitlines(keepends=True)  # nothing else, no traceback
    assert notice.startswith("neuralcore bench messaging: measuring")  # said at once
    assert interrupted == "neuralcore: interrupted\n"
