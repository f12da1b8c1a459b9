"""Fixtures for the bridge tests: real redis-server / tansu on loopback, peer processes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # bridge_helpers

from bridge_helpers import Peer  # noqa: E402

from neuralcore._testing import DurableRedisServer, RedisServer, TansuServer  # noqa: E402


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Callable[[str, dict[str, Any]], Peer]]:
    started: list[Peer] = []

    def start(name: str, spec: dict[str, Any]) -> Peer:
        peer = Peer(tmp_path, name, spec)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.kill()


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    with DurableRedisServer.running() as server:
        yield server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer.running() as server:
        yield server


@pytest.fixture
def tansu_server() -> Iterator[TansuServer]:
    with TansuServer.running() as server:
        yield server
