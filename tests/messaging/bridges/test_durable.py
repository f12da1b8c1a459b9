"""Durable outbox + Redis across real processes: SIGKILL of the publisher, request/reply."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bridge_helpers import Peer, PortBus

from neuralcore._testing import RedisServer
from neuralcore.messaging import MessageBus
from neuralcore.messaging.bridges import RedisBridge, RedisBridgeConfig

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]

PeerFactory = Callable[[str, dict[str, Any]], Peer]


def spec(url: str, role: str, n: int, **extra: Any) -> dict[str, Any]:
    config = {"url": url, "channels": ["orders"], "claim_interval_s": 0.2,
              "reconnect_max_s": 0.1, **extra.pop("config", {})}  # fmt: skip
    return {"kind": "redis", "channel": "orders", "n": n, "role": role, "config": config,
            "seconds": 40, **extra}  # fmt: skip


def outbox_rows(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize("server", ["down", "up"])
def test_publisher_sigkilled_then_restarted_delivers_all_exactly_once(
    tmp_path: Path, peers: PeerFactory, server: str
) -> None:
    n = 400
    db = tmp_path / "a.db"
    redis = RedisServer()  # port reserved; started below or now
    try:
        if server == "up":
            redis.start()
        out = {"config": {"direction": "out", "startup_timeout_s": 0}, "db": str(db)}
        a = peers("a1", spec(redis.url, "durable", n, **out))
        assert a.wait_until(lambda p: bool(p.events("published")), 40), a.err.read_text()
        sent_before = a.events("published")[0]["metrics"]["sent"]
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        if server == "down":
            assert sent_before == 0
            assert outbox_rows(db) == n  # every publish that returned is in the outbox
            redis.start()
        sub = spec(redis.url, "sub", n, config={"direction": "in", "group": "gb"})
        b = peers("b", {**sub, "expect": n})
        assert b.wait_until(lambda p: bool(p.events("ready")), 30)
        a2 = peers("a2", spec(redis.url, "resume", 0, expect=0, **out))
        a2.finish()
        got = [e for e in b.finish() if e["ev"] == "got"]
        ids = [e["id"] for e in got]
        assert len(ids) == len(set(ids)) == n, (len(ids), len(set(ids)))
        assert sorted(e["headers"]["seq"] for e in got) == list(range(n))
        assert outbox_rows(db) == 0  # all forwarded and acknowledged by the resumed run
    finally:
        redis.close()


def test_request_answered_by_another_process_over_redis(
    redis_server: RedisServer, peers: PeerFactory
) -> None:
    n = 20
    responder = peers(
        "responder",
        {**spec(redis_server.url, "responder", 0, config={"group": "gr", "channels": ["rpc"]}),
         "channel": "rpc",
         "seconds": 60},
    )  # fmt: skip
    assert responder.wait_until(lambda p: bool(p.events("ready")), 30)
    requester = peers(
        "requester",
        {
            **spec(redis_server.url, "requester", n, config={"group": "gq", "channels": ["rpc"]}),
            "channel": "rpc",
        },
    )
    requester.finish()
    replies = requester.events("reply")
    pid = responder.events("ready")[0]["pid"]
    assert [r["answer"] for r in replies] == [{"echo": {"i": i}, "pid": pid} for i in range(n)]


async def test_full_buffer_leaves_messages_in_the_outbox_and_sends_them_in_order(
    tmp_path: Path, until: Callable[..., Any]
) -> None:
    n, db = 300, tmp_path / "a.db"
    redis = RedisServer()  # not started yet: the bridge buffers
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("orders", persistent=True, max_size=10 * n)
    cfg = RedisBridgeConfig(url=redis.url, channels=("orders",), direction="out",
                            buffer_size=16, reconnect_max_s=0.05,
                            startup_timeout_s=0)  # fmt: skip
    out = RedisBridge(cfg)
    await bus.add_bridge(out)
    receiver = PortBus("receiver")
    try:
        async with bus:
            await bus.publish_batch_async("orders", range(n))
            metrics = out.metrics()
            assert (metrics.buffered, metrics.spilled) == (n, n - 16)  # 16 held in memory
            redis.start()
            cfg_in = RedisBridgeConfig(
                url=redis.url,
                channels=("orders",),
                direction="in",
                claim_interval_s=0.1,
                group="late",  # a new work-queue group takes the backlog (fan-out would not)
            )
            inbound = RedisBridge(cfg_in)
            await inbound.start_port(receiver)
            got = await receiver.wait_for(n, timeout=20)
            await inbound.stop()
            await until(lambda: out.metrics().buffered == 0, 10)
        assert [m.payload for m in got] == list(range(n))
        assert outbox_rows(db) == 0
    finally:
        redis.close()
