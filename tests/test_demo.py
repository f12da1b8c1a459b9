"""``neuralcore demo`` end to end, through the command line, on the real model.

The model is a required asset (``make setup`` converts it): when it is missing these tests
fail with the error that says how to convert it; they never skip.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neuralcore.cli import main
from servers import RedisServer, TansuServer

Capture = pytest.CaptureFixture[str]

# a query copied from a docstring the first 25 docs hold, and that docstring's title
QUERY = (
    "Base class for manipulating paths without I/O. PurePath represents a filesystem path"
    " and offers operations which don't imply any actual filesystem I/O."
)
TITLE = "pathlib.PurePath"


def _check_report(out: str) -> None:
    hits = re.findall(r"^  1\. (\d\.\d{3})  (\S+)  -- ", out, re.MULTILINE)
    assert hits, out
    assert hits[0][1] == TITLE, out
    assert float(hits[0][0]) > 0.8
    for stage in ("corpus", "chunk", "embed", "publish", "index", "query", "total"):
        assert re.search(rf"^{stage}\s+\d", out, re.MULTILINE), (stage, out)
    publish = re.search(r"^publish .*$", out, re.MULTILINE)
    assert publish is not None
    assert "events/s" not in publish.group(0)  # a few batch events are not the bus's speed
    assert "neuralcore bench messaging" in publish.group(0)


def test_demo_end_to_end(tmp_path: Path, capsys: Capture) -> None:
    argv = ["demo", "--max-docs", "25", "-k", "2", "-q", QUERY, "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "25 stdlib docstrings ->" in out
    # the variant, runtime, threads and streams it ran with
    assert re.search(r"all-MiniLM-L6-v2 \(\S+ on \S+ \S+, \d+ threads, \d+ streams?\)", out), out
    assert out.count("query: ") == 1
    _check_report(out)
    assert err.startswith("demo: reading up to 25 stdlib docstrings")  # no silent start
    assert "100%" in err  # the progress bar
    bus_file = tmp_path / "demo-bus.sqlite"
    assert bus_file.exists()  # kept, and named in the output
    assert str(bus_file) in out


def test_demo_replaces_the_previous_bus_file(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "demo-bus.sqlite").write_bytes(b"not a database")
    assert main(["demo", "--max-docs", "3", "--no-progress", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""  # --no-progress: nothing on stderr


@pytest.mark.parametrize("option", ["--max-docs", "-k", "--batch"])
def test_demo_rejects_bad_numbers_in_one_line(option: str, capsys: Capture) -> None:
    assert main(["demo", option, "0"]) == 2
    err = capsys.readouterr().err
    assert err == f"neuralcore: error: demo: {option} must be >= 1, got 0\n"


@pytest.mark.timeout(30)  # the bridge would wait 60 s for a server that refused at once
def test_demo_unreachable_server_fails_at_once_in_one_line(capsys: Capture) -> None:
    assert main(["demo", "--max-docs", "3", "--redis", "redis://u:secret@127.0.0.1:1/0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("neuralcore: error: cannot reach the Redis server at 127.0.0.1:1: ")
    assert err.count("\n") == 1
    assert "secret" not in err


@pytest.mark.integration
@pytest.mark.redis
def test_demo_across_processes_over_redis(tmp_path: Path, capsys: Capture) -> None:
    with RedisServer.running() as server:
        argv = ["demo", "--max-docs", "25", "--no-progress", "-q", QUERY, "--redis", server.url]
        assert main([*argv, "--data-dir", str(tmp_path)]) == 0
    _check_report(capsys.readouterr().out)


@pytest.mark.integration
@pytest.mark.kafka
def test_demo_across_processes_over_kafka(tmp_path: Path, capsys: Capture) -> None:
    with TansuServer.running() as server:
        argv = ["demo", "--max-docs", "25", "--no-progress", "-q", QUERY]
        assert main([*argv, "--kafka", server.bootstrap, "--data-dir", str(tmp_path)]) == 0
    _check_report(capsys.readouterr().out)
