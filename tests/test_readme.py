"""Every ``python`` code block in README.md is a complete program that runs.

Each block runs in a fresh interpreter in an empty folder. Blocks that talk to Redis or
Kafka run against servers started here: the README's addresses are replaced by theirs.
Shell blocks are marked ``bash`` and drawings ``text``; they are not run. A block with no
language is an error, so no Python block escapes the test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from servers import RedisServer, TansuServer

README = Path(__file__).resolve().parents[1] / "README.md"
REDIS_URL = "redis://127.0.0.1:6379/0"
KAFKA_SERVERS = "127.0.0.1:9092"


class Block(NamedTuple):
    line: int
    language: str
    code: str


def _blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(line, match.group(1), match.group(2)))
    return found


PYTHON = [b for b in _blocks() if b.language == "python"]


def _run(code: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


def test_every_block_names_its_language() -> None:
    assert PYTHON
    for block in _blocks():
        assert block.language in ("python", "bash", "text"), f"README.md:{block.line}"


@pytest.mark.parametrize(
    "block",
    [b for b in PYTHON if REDIS_URL not in b.code and KAFKA_SERVERS not in b.code],
    ids=lambda b: f"line{b.line}",
)
def test_block_runs(block: Block, tmp_path: Path) -> None:
    _run(block.code, tmp_path)


@pytest.mark.integration
@pytest.mark.redis
@pytest.mark.parametrize(
    "block", [b for b in PYTHON if REDIS_URL in b.code], ids=lambda b: f"line{b.line}"
)
def test_redis_block_runs(block: Block, tmp_path: Path) -> None:
    with RedisServer.running() as server:
        _run(block.code.replace(REDIS_URL, server.url), tmp_path)


@pytest.mark.integration
@pytest.mark.kafka
@pytest.mark.parametrize(
    "block", [b for b in PYTHON if KAFKA_SERVERS in b.code], ids=lambda b: f"line{b.line}"
)
def test_kafka_block_runs(block: Block, tmp_path: Path) -> None:
    with TansuServer.running() as server:
        _run(block.code.replace(KAFKA_SERVERS, server.bootstrap), tmp_path)
