"""The console script: --version, info, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import neuralcore
from neuralcore.cli import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"neuralcore {neuralcore.__version__}"


def test_info_lists_engines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"neuralcore {neuralcore.__version__}")
    for engine in neuralcore.backend_info():
        assert engine in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 1
    assert "usage: neuralcore" in capsys.readouterr().out


def test_unknown_bench_suite_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "nope"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "neuralcore", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert neuralcore.__version__ in done.stdout


def test_routed_subcommand_gets_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["models", "--help"])
    assert info.value.code == 0
    assert "convert" in capsys.readouterr().out


def test_neuralcore_error_becomes_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", "/definitely/not/a/model"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert "/definitely/not/a/model" in err
