"""``neuralcore demo``: corpus, chunking, progress, and the end-to-end pipeline."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from neuralcore._demo import main
from neuralcore._demo_corpus import chunk_docs, stdlib_docs
from neuralcore._demo_progress import Progress

Capture = pytest.CaptureFixture[str]


def test_corpus_is_spread_and_sized() -> None:
    docs = stdlib_docs(60)
    assert len(docs) == 60
    assert len({d.title for d in docs}) == 60
    assert all(len(d.text) >= 60 for d in docs)
    assert docs[0].title == "json"  # everyday modules first
    assert len({d.title.split(".")[0] for d in docs}) > 10  # round-robin over modules


def test_chunks_respect_the_size_and_keep_their_source() -> None:
    docs = stdlib_docs(40)
    chunks = chunk_docs(docs, max_chars=300)
    assert [c.key for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text.startswith(f"{c.title}: ")
        assert len(c.text) - len(c.title) - 2 <= 300
    words = " ".join(d.text for d in docs).split()
    assert sum(len(c.text.split()) - 1 for c in chunks) == len(words)  # nothing lost


def test_progress_writes_one_final_line_off_terminal() -> None:
    out = io.StringIO()
    bar = Progress("embed", 10, unit="chunks", stream=out)
    for _ in range(10):
        bar.advance()
    bar.close()
    assert out.getvalue().count("\n") == 1
    assert "100% 10/10 chunks" in out.getvalue()


@pytest.fixture(scope="module")
def model() -> None:
    from neuralcore.core import ModelNotFoundError
    from neuralcore.embedding._models import resolve_model

    try:
        resolve_model("all-MiniLM-L6-v2")
    except ModelNotFoundError:
        pytest.skip("all-MiniLM-L6-v2 is not converted (run scripts/post_install.sh)")


def _probe() -> tuple[str, str]:
    chunk = chunk_docs(stdlib_docs(25))[7]
    return chunk.title, chunk.text.removeprefix(f"{chunk.title}: ")


def _check_report(out: str, title: str) -> None:
    first = re.search(r"^  1\. (\d\.\d{3})  (\S+)  -- ", out, re.MULTILINE)
    assert first is not None, out
    assert first.group(2) == title
    assert float(first.group(1)) > 0.9
    for stage in ("corpus", "chunk", "embed", "bus", "index", "total"):
        assert re.search(rf"^{stage}\s+\d", out, re.MULTILINE), stage


def test_demo_end_to_end(model: None, tmp_path: Path, capsys: Capture) -> None:
    title, query = _probe()
    argv = ["--max-docs", "25", "-k", "2", "-q", query, "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "25 stdlib docstrings ->" in out
    assert out.count("query: ") == 1
    _check_report(out, title)
    assert "100%" in err  # the progress bar
    assert (tmp_path / "demo-bus.sqlite").exists()  # the durable channel's file


def test_demo_rejects_bad_numbers(capsys: Capture) -> None:
    assert main(["--max-docs", "0"]) == 2
    assert main(["-k", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.redis
def test_demo_across_processes_over_redis(model: None, capsys: Capture) -> None:
    from servers import RedisServer

    title, query = _probe()
    with RedisServer.running() as server:
        assert main(["--max-docs", "25", "--no-progress", "-q", query, "--redis", server.url]) == 0
    out = capsys.readouterr().out
    _check_report(out, title)
    assert re.search(r"^answer\s+\d", out, re.MULTILINE)


@pytest.mark.integration
@pytest.mark.kafka
def test_demo_across_processes_over_kafka(model: None, capsys: Capture) -> None:
    from servers import TansuServer

    title, query = _probe()
    with TansuServer.running() as server:
        assert (
            main(["--max-docs", "25", "--no-progress", "-q", query, "--kafka", server.bootstrap])
            == 0
        )
    _check_report(capsys.readouterr().out, title)


def test_cli_routes_demo_options_after_a_separator(capsys: Capture) -> None:
    from neuralcore.cli import main as cli_main

    assert cli_main(["demo", "--", "--max-docs", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().out


@pytest.mark.integration
def test_demo_unreachable_server_fails_with_a_clear_error(
    model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neuralcore._demo_remote as remote
    from neuralcore.core import BridgeConnectionError
    from servers import free_port

    monkeypatch.setattr(remote, "_READY_TIMEOUT", 1.0)
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(BridgeConnectionError, match="reachable"):
        main(["--max-docs", "3", "--no-progress", "--redis", url])
