"""RedisBridge against a real redis-server: cross-process delivery, faults, takeover."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bridge_helpers import Peer, PortBus, eventually

from neuralcore._testing import RedisServer
from neuralcore.messaging import Message, MessageBus
from neuralcore.messaging.bridges import (
    BridgeState,
    FatalBridgeError,
    RedisBridge,
    RedisBridgeConfig,
)

pytestmark = [pytest.mark.redis, pytest.mark.integration]

PeerFactory = Callable[[str, dict[str, Any]], Peer]


def spec(server: RedisServer, role: str, n: int, **config: Any) -> dict[str, Any]:
    cfg = {"url": server.url, "channels": ["orders"], "claim_interval_s": 0.2, **config}
    return {"kind": "redis", "channel": "orders", "n": n, "role": role, "config": cfg}


def got_ids(peer: Peer) -> list[str]:
    return [e["id"] for e in peer.events("got")]


def origin_of(peer: Peer) -> str:
    assert peer.wait_until(lambda p: bool(p.events("ready")), 30)
    return str(peer.events("ready")[0]["origin"])


def test_message_crosses_processes_intact(redis_server: RedisServer, peers: PeerFactory) -> None:
    n = 500
    sub = peers("sub", spec(redis_server, "sub", n, channels=["ord*"], direction="in"))
    origin_of(sub)
    pub = peers("pub", spec(redis_server, "pub", n, direction="out"))
    origin = origin_of(pub)
    pub.finish()
    events = sub.finish()
    got = [e for e in events if e["ev"] == "got"]
    assert sorted(e["id"] for e in got) == sorted(f"{origin}-{i + 1:x}" for i in range(n))
    by_seq = {e["headers"]["seq"]: e for e in got}
    for i in (0, 1, 77, n - 1):
        e = by_seq[i]
        assert e["priority"] == i % 5
        assert e["headers"] == {"seq": i, "key": str(i % 4)}
        assert e["payload"] == {"i": i, "text": f"message {i}"}
        assert e["origin"] == origin
    done = events[-1]
    assert done["metrics"]["received"] == n
    assert done["metrics"]["acked"] == n


def test_both_directions_never_echo(redis_server: RedisServer, peers: PeerFactory) -> None:
    n = 100
    a = peers("a", {**spec(redis_server, "both", n, group="ga"), "expect": 2 * n})
    b = peers("b", {**spec(redis_server, "both", n, group="gb"), "expect": 2 * n})
    origin_a, origin_b = origin_of(a), origin_of(b)
    a.finish()
    b.finish()
    for peer, own, other in ((a, origin_a, origin_b), (b, origin_b, origin_a)):
        ids = got_ids(peer)
        assert len(ids) == len(set(ids)) == 2 * n  # local n + remote n, nothing twice
        assert {i for i in ids if i.startswith(other)} == {f"{other}-{k + 1:x}" for k in range(n)}
        assert sum(i.startswith(own) for i in ids) == n  # own ones only locally


def test_server_killed_mid_stream_loses_nothing(
    durable_redis: RedisServer, peers: PeerFactory
) -> None:
    n = 3000
    streams = {"stream_channels": ["orders"], "consumer": "sub-1"}
    sub = peers("sub", {**spec(durable_redis, "sub", n, direction="in", **streams), "seconds": 60})
    origin_of(sub)
    pub = peers("pub", {**spec(durable_redis, "pub", n, direction="out", **streams), "pace": 0.01})
    origin = origin_of(pub)
    assert sub.wait_until(lambda p: len(p.events("got")) >= 300, 30)
    durable_redis.kill()
    time.sleep(0.5)
    durable_redis.start()
    pub_done = pub.finish()[-1]
    sub.finish()
    ids = got_ids(sub)
    assert len(ids) == len(set(ids))
    assert set(ids) == {f"{origin}-{i + 1:x}" for i in range(n)}
    assert pub_done["metrics"]["reconnects"] >= 1


def test_dead_consumer_pending_entries_taken_over(
    redis_server: RedisServer, peers: PeerFactory
) -> None:
    n = 40
    claim = {"group": "workers", "claim_idle_ms": 500, "direction": "in"}
    holder = peers("hold", {**spec(redis_server, "hold", n, consumer="c", **claim)})
    origin_of(holder)
    pub = peers("pub", spec(redis_server, "pub", n, direction="out", group="workers"))
    origin = origin_of(pub)
    pub.finish()
    assert holder.wait_until(lambda p: len(p.events("got")) >= 1, 30)
    import redis

    with redis.Redis.from_url(redis_server.url) as check:  # all n read, none acknowledged

        def pending() -> int:
            return int(check.xpending("nc:orders", "workers")["pending"])

        deadline = time.monotonic() + 30
        while pending() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pending() == n
    holder.kill()  # none of its messages was acknowledged
    taker = peers("take", spec(redis_server, "sub", n, consumer="b", **claim))
    taker.finish()
    assert sorted(got_ids(taker)) == sorted(f"{origin}-{i + 1:x}" for i in range(n))


_GOT: dict[int, list[Message]] = {}


def _rows(spill: str) -> int:
    """Messages kept in the spill file (documented as SQLite, table ``spill``)."""
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(spill)) as db:
        return int(db.execute("SELECT COUNT(*) FROM spill").fetchone()[0])


async def _start_pair(
    url: str, **cfg: Any
) -> tuple[MessageBus, MessageBus, RedisBridge, RedisBridge]:
    sender, receiver = MessageBus(), MessageBus()
    for bus in (sender, receiver):
        bus.create_channel("orders")
    got = _GOT[id(receiver)] = []
    receiver.subscribe("orders", got.append)  # before start: the bridge reads for it
    cfg = {"stream_channels": ("orders",), **cfg}  # plain channels, carried as Streams
    out = RedisBridge(RedisBridgeConfig(url=url, channels=("orders",), direction="out", **cfg))
    inn = RedisBridge(RedisBridgeConfig(url=url, channels=("orders",), direction="in", **cfg))
    await sender.add_bridge(out)
    await receiver.add_bridge(inn)
    await sender.start()
    await receiver.start()
    return sender, receiver, out, inn


async def _collect(bus: MessageBus, n: int, timeout: float = 10.0) -> list[Message]:
    got = _GOT[id(bus)]
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return got


async def test_reconnects_within_500ms_and_resends_buffered(redis_server: RedisServer) -> None:
    sender, receiver, out, _inn = await _start_pair(redis_server.url)
    try:
        redis_server.kill()
        for i in range(50):
            sender.publish("orders", {"i": i})
        deadline = time.monotonic() + 5
        while out.state is not BridgeState.RECONNECTING and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert out.state is BridgeState.RECONNECTING
        assert not out.health().healthy
        assert out.buffered == 50
        redis_server.start()
        back = time.monotonic()
        while out.state is not BridgeState.CONNECTED and time.monotonic() < back + 5:
            await asyncio.sleep(0.002)
        assert time.monotonic() - back < 0.5
        got = await _collect(receiver, 50)
        assert sorted(m.payload["i"] for m in got) == list(range(50))
        assert out.metrics().reconnects >= 1
    finally:
        await sender.stop()
        await receiver.stop()


async def test_full_buffer_spills_and_resends_in_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    spill = str(tmp_path / "spill.db")
    sender, receiver, out, _ = await _start_pair(redis_server.url, buffer_size=10, spill_path=spill)
    try:
        redis_server.kill()
        await eventually(lambda: out.state is BridgeState.RECONNECTING)
        for i in range(100):
            sender.publish("orders", {"i": i})
        assert out.metrics().spilled >= 80
        assert _rows(spill) > 0
        redis_server.start()
        got = await _collect(receiver, 100)
        assert [m.payload["i"] for m in got] == list(range(100))
        await eventually(lambda: _rows(spill) == 0)  # cleared once everything was sent
    finally:
        await sender.stop()
        await receiver.stop()


async def test_malformed_and_foreign_entries_dead_lettered(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    port = PortBus("local")
    bridge = RedisBridge(
        RedisBridgeConfig(url=redis_server.url, channels=("orders",), direction="in")
    )
    await bridge.start_port(port)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await raw.xadd("nc:orders", {b"m": b"\xc1 not msgpack"})
        await raw.xadd("nc:orders", {b"other": b"field"})
        await raw.xadd("nc:orders", {b"m": b"\x93\x01\x02\x03"})  # msgpack, wrong shape
        good = Message("orders", {"ok": True}, id="remote-1", origin="remote")
        await raw.xadd("nc:orders", {b"m": port.encode(good)})
        got = await port.wait_for(1)
        assert [m.id for m in got] == ["remote-1"]
        await eventually(lambda: bridge.metrics().dead_lettered == 3)
        assert await raw.xlen("nc:dlq") == 3
        assert bridge.state is BridgeState.CONNECTED
        async with asyncio.timeout(10):  # bad entries acknowledged too, never redelivered
            while (await raw.xinfo_groups("nc:orders"))[0]["pending"]:
                await asyncio.sleep(0.005)
    finally:
        await raw.aclose()
        await bridge.stop()


async def test_pubsub_channels_fire_and_forget(redis_server: RedisServer) -> None:
    a, b = PortBus("a"), PortBus("b")
    cfg = {"url": redis_server.url, "channels": ("metrics.*",), "pubsub_channels": ("metrics.*",)}
    ba = RedisBridge(RedisBridgeConfig(**cfg, direction="out"))  # type: ignore[arg-type]
    bb = RedisBridge(RedisBridgeConfig(**cfg, direction="in"))  # type: ignore[arg-type]
    await ba.start_port(a)
    await bb.start_port(b)
    try:
        for i in range(20):  # the subscription was made by start
            a.publish("metrics.cpu", i, priority=3)
        got = await b.wait_for(20, 5)
        assert [m.payload for m in got] == list(range(20))
        assert got[0].priority == 3
    finally:
        await ba.stop()
        await bb.stop()


class _PasswordRedis(RedisServer):
    def command(self) -> list[str]:
        return [*super().command(), "--requirepass", "hunter2-secret"]


async def test_credentials_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = _PasswordRedis()
    server.start()
    try:
        bad = RedisBridge(RedisBridgeConfig(url=server.url, password="wrong-secret-42"))
        with pytest.raises(FatalBridgeError):
            await bad.start_port(PortBus("x"))
        assert bad.state is BridgeState.FAILED
        good_cfg = RedisBridgeConfig(url=server.url, password="hunter2-secret")
        good = RedisBridge(good_cfg)
        await good.start_port(PortBus("y"))
        assert good.state is BridgeState.CONNECTED
        server.kill()
        await eventually(lambda: good.state is BridgeState.RECONNECTING)
        await good.stop()
        text = caplog.text + repr(good_cfg) + str(good.health()) + str(bad.health())
        assert "hunter2-secret" not in text
        assert "wrong-secret-42" not in text
        assert "***" in str(good_cfg.redacted())
    finally:
        server.close()


async def test_unsent_messages_survive_a_bridge_restart_via_spill(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    spill = str(tmp_path / "spill.db")
    port = PortBus("sender")
    cfg = RedisBridgeConfig(
        url=redis_server.url,
        channels=("orders",),
        direction="out",
        spill_path=spill,
        stream_channels=("orders",),
        drain_timeout_s=0.2,
    )
    first = RedisBridge(cfg)
    await first.start_port(port)
    redis_server.kill()
    for i in range(30):
        port.publish("orders", {"i": i})
    await first.stop()  # the server is away: nothing could be sent within drain_timeout_s
    assert first.metrics().unsent == 30
    assert _rows(spill) == 30
    redis_server.start()
    receiver = PortBus("receiver")
    inn = RedisBridge(
        RedisBridgeConfig(url=redis_server.url, channels=("orders",), direction="in", group="g")
    )  # a work-queue group: it takes what was sent before it connected
    await inn.start_port(receiver)
    second = RedisBridge(cfg)  # a new process would do the same with the same spill_path
    await second.start_port(PortBus("sender"))
    try:
        got = await receiver.wait_for(30)
        assert [m.payload["i"] for m in got] == list(range(30))
    finally:
        await second.stop()
        await inn.stop()


async def test_envelope_for_another_channel_is_dead_lettered_not_delivered(
    redis_server: RedisServer,
) -> None:
    """Anyone who can XADD to one selected stream must not reach other local channels."""
    import redis.asyncio as aioredis

    port = PortBus("local")
    cfg = RedisBridgeConfig(url=redis_server.url, channels=("orders", "audit.*"), direction="in")
    bridge = RedisBridge(cfg)
    await bridge.start_port(port)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        bad = [
            Message("admin", {}, id="r-1", origin="remote"),  # outside the selection
            Message("audit.log", {}, id="r-2", origin="remote"),
        ]  # selected, wrong stream
        for msg in bad:
            await raw.xadd("nc:orders", {b"m": port.encode(msg)})
        await raw.xadd("nc:orders", {b"m": port.encode(Message("orders", 1, id="ok", origin="r"))})
        got = await port.wait_for(1)
        assert [m.id for m in got] == ["ok"]
        deadline = time.monotonic() + 5
        while await raw.xlen("nc:dlq") < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        entries = await raw.xrange("nc:dlq")
        reasons = sorted(fields[b"reason"].decode() for _, fields in entries)
        assert "outside the bridge's selection" in reasons[0]
        assert "does not belong on 'nc:orders'" in reasons[1]
        assert bridge.metrics().dead_lettered == 2
        assert [m.id for m in port.received] == ["ok"]  # nothing else reached the bus
    finally:
        await raw.aclose()
        await bridge.stop()


async def test_trimming_keeps_unread_entries_and_counts_what_maxlen_forces_out(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(redis_server.url)
    # a work-queue group that exists but reads nothing (its consumer is away)
    await raw.xgroup_create("nc:orders", "workers", id="0", mkstream=True)
    cfg = RedisBridgeConfig(url=redis_server.url, channels=("orders",), direction="out",
                            group="workers", maxlen=100, claim_interval_s=0.05)  # fmt: skip
    sender = PortBus("sender")
    out = RedisBridge(cfg)
    await out.start_port(sender)
    try:
        for i in range(60):
            sender.publish("orders", i)
        deadline = time.monotonic() + 5
        while out.metrics().sent < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # a few trim rounds
        assert await raw.xlen("nc:orders") == 60  # unread: never trimmed below maxlen
        assert out.metrics().trimmed == 0
        entries = await raw.xreadgroup("workers", "c", {"nc:orders": ">"}, count=50)
        await raw.xack("nc:orders", "workers", *(e[0] for e in entries[0][1]))
        for i in range(100):
            sender.publish("orders", 100 + i)
        while out.metrics().trimmed == 0 and time.monotonic() < deadline + 5:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert await raw.xlen("nc:orders") == 100
        assert out.metrics().trimmed == 10  # 110 unread, maxlen 100: 10 counted, not silent
        assert "trimmed 10 entries of nc:orders not yet acknowledged" in caplog.text
    finally:
        await raw.aclose()
        await out.stop()


async def test_a_dead_background_loop_shows_in_health(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = PortBus("local")
    bridge = RedisBridge(RedisBridgeConfig(url=redis_server.url, channels=("orders",)))
    await bridge.start_port(port)
    try:

        async def broken_ack(tokens: list[Any]) -> None:  # fault injection
            raise RuntimeError("ack path broken")

        monkeypatch.setattr(bridge.transport, "ack", broken_ack)
        other = PortBus("other")
        out_cfg = RedisBridgeConfig(
            url=redis_server.url, channels=("orders",), direction="out", stream_channels=("orders",)
        )
        out = RedisBridge(out_cfg)
        await out.start_port(other)
        other.publish("orders", 1)
        deadline = time.monotonic() + 5
        while bridge.state is not BridgeState.FAILED and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        health = bridge.health()
        assert (health.state, health.healthy) == (BridgeState.FAILED, False)
        assert "ack path broken" in health.last_error
        await out.stop()
    finally:
        await bridge.stop()


async def test_a_reader_closed_under_the_stream_loop_reconnects_instead_of_failing(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() (a reconnect, or stop) drops the stream reader while the loop may still
    run: the loop sees a lost connection and the bridge reconnects; it never dies with
    ``'NoneType' object has no attribute 'xreadgroup'``."""
    port = PortBus("local")
    bridge = RedisBridge(RedisBridgeConfig(url=redis_server.url, channels=("orders",)))
    transport: Any = bridge.transport
    real, dropped = transport._activate, []

    async def activate() -> None:  # fault injection: close() runs between two reads
        await real()
        if not dropped and transport._reader is not None:
            dropped.append(transport._reader)
            transport._reader = None

    monkeypatch.setattr(transport, "_activate", activate)
    await bridge.start_port(port)
    other = PortBus("other")
    out = RedisBridge(
        RedisBridgeConfig(
            url=redis_server.url, channels=("orders",), direction="out", stream_channels=("orders",)
        )
    )
    await out.start_port(other)
    try:
        deadline = time.monotonic() + 5
        while not dropped and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert dropped
        other.publish("orders", 1)
        assert [m.payload for m in await port.wait_for(1, 10)] == [1]
        assert bridge.state is BridgeState.CONNECTED
        assert bridge.metrics().reconnects >= 1
    finally:
        await out.stop()
        await bridge.stop()
        for reader in dropped:
            await reader.aclose()


async def test_a_loop_still_running_after_stop_closed_the_connections_ends_quietly(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client library may swallow the cancel at stop: the loop then runs on after the
    connections are closed and ends without an error (no task dies unretrieved)."""
    port = PortBus("local")
    bridge = RedisBridge(RedisBridgeConfig(url=redis_server.url, channels=("orders",)))
    transport: Any = bridge.transport
    real, swallowed = transport._activate, []

    async def activate() -> None:  # fault injection: a cancel swallowed once
        await real()
        if not swallowed:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                swallowed.append(1)
                while transport._reader is not None:  # stop() closes the connections
                    await asyncio.sleep(0.01)

    monkeypatch.setattr(transport, "_activate", activate)
    await bridge.start_port(port)
    tasks = list(bridge._tasks)
    await asyncio.sleep(0.05)
    await bridge.stop()
    done, _ = await asyncio.wait(tasks, timeout=5)
    assert swallowed
    assert len(done) == len(tasks)
    errors = [t.exception() for t in tasks if not t.cancelled()]
    assert errors == [None] * len(errors)
    assert bridge.state is BridgeState.STOPPED


async def test_per_channel_group_work_queue_beside_fan_out(redis_server: RedisServer) -> None:
    cfg = RedisBridgeConfig(
        url=redis_server.url, channels=("x.*",), groups={"x.jobs": "workers"},
        claim_interval_s=0.2, stream_channels=("x.*",),
    )  # fmt: skip
    names = ("x.jobs", "x.news")
    members: list[tuple[MessageBus, dict[str, list[int]]]] = []
    for _ in range(2):
        bus, got = MessageBus(), {name: list[int]() for name in names}
        for name in names:
            bus.create_channel(name)
            bus.subscribe(name, lambda m, into=got[name]: into.append(m.payload))
        await bus.add_bridge(RedisBridge(cfg))
        await bus.start()
        members.append((bus, got))
    sender = MessageBus()
    for name in names:
        sender.create_channel(name)
    await sender.add_bridge(RedisBridge(cfg))
    await sender.start()
    try:
        # no wait for the groups: a fan-out group starts where its bridge connected and
        # the work queue's at the stream's start, so what is published now is not missed
        for i in range(100):
            for name in names:
                sender.publish(name, i)
        jobs = [got["x.jobs"] for _, got in members]
        news = [got["x.news"] for _, got in members]
        await eventually(lambda: sum(map(len, jobs)) == 100 and all(len(g) == 100 for g in news))
        await asyncio.sleep(0.3)  # a duplicate, if any, arrives now
        assert sorted(jobs[0] + jobs[1]) == list(range(100))  # each job handled once
        assert all(g == list(range(100)) for g in news)  # every bus gets every news item
        import redis.asyncio as aioredis

        raw = aioredis.Redis.from_url(redis_server.url)
        try:
            groups = {g["name"].decode() for g in await raw.xinfo_groups("nc:x.jobs")}
            assert groups == {"workers"}
            news_groups = {g["name"].decode() for g in await raw.xinfo_groups("nc:x.news")}
            assert len(news_groups) == 2  # one private group per member
            assert "workers" not in news_groups
        finally:
            await raw.aclose()
    finally:
        await sender.stop()
        for bus, _ in members:
            await bus.stop()


async def test_a_server_that_stops_answering_is_left_and_nothing_is_lost(
    redis_server: RedisServer,
) -> None:
    import signal

    import redis.asyncio as aioredis

    port = PortBus("hung")
    out = RedisBridge(RedisBridgeConfig(
        url=redis_server.url, channels=("orders",), direction="out", socket_timeout_s=0.5,
        stream_channels=("orders",),
    ))  # fmt: skip
    await out.start_port(port)
    proc = redis_server.proc
    assert proc is not None
    try:
        port.publish("orders", 0)
        await eventually(lambda: out.metrics().sent == 1)
        proc.send_signal(signal.SIGSTOP)  # alive, connected, silent
        try:
            for i in range(1, 6):
                port.publish("orders", i)
            await eventually(lambda: out.state is BridgeState.RECONNECTING, timeout=10)
        finally:
            proc.send_signal(signal.SIGCONT)
        await eventually(lambda: out.metrics().sent >= 6 and out.buffered == 0, timeout=15)
        raw = aioredis.Redis.from_url(redis_server.url)
        try:
            entries = await raw.xrange("nc:orders")
        finally:
            await raw.aclose()
        decoded = [port.decode(fields[b"m"]).payload for _, fields in entries]
        assert sorted(set(decoded)) == list(range(6))  # a resend after the loss may repeat
        assert out.metrics().retried >= 1  # the read waiting on the silent server was failed
    finally:
        await out.stop()


async def test_a_crashed_fan_out_bus_is_removed_by_a_live_one(
    redis_server: RedisServer, peers: PeerFactory
) -> None:
    """A SIGKILLed fan-out bus leaves its private group (and reply stream) behind; a live
    bus removes them once its heartbeat is older than ``stale_after_s``, and trimming is
    then by acknowledged id again (nothing counted as lost)."""
    import redis.asyncio as aioredis

    fast: dict[str, Any] = {"stale_after_s": 1.0, "claim_interval_s": 0.2}
    live = MessageBus()
    live.create_channel("orders")
    seen: list[Message] = []
    live.subscribe("orders", seen.append)
    cfg = RedisBridgeConfig(
        url=redis_server.url, channels=("orders",), maxlen=50, stream_channels=("orders",), **fast
    )
    bridge = RedisBridge(cfg)
    await live.add_bridge(bridge)
    await live.start()
    raw = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        crashed = peers("crashed", spec(redis_server, "sub", 1, stream_channels=["orders"], **fast))
        origin = origin_of(crashed)

        async def groups() -> list[str]:
            return [g["name"] for g in await raw.xinfo_groups("nc:orders")]

        async def dead_group() -> list[str]:
            return [g for g in await groups() if g.endswith(origin)]

        async with asyncio.timeout(20):
            while not (await dead_group() and len(await groups()) == 2):
                await asyncio.sleep(0.02)
        (group,) = await dead_group()
        assert await raw.hexists("nc:fanout", group)
        assert await raw.exists(f"nc:_reply.{origin}")
        crashed.kill()  # SIGKILL: no clean stop removes anything
        async with asyncio.timeout(20):
            while await dead_group() or await raw.exists(f"nc:_reply.{origin}"):
                await asyncio.sleep(0.05)
        assert not await raw.hexists("nc:fanout", group)
        assert await groups() == [f"fanout.{bridge.consumer}"]  # the live bus's own stays
        for i in range(120):
            await live.publish_async("orders", i)
        async with asyncio.timeout(20):  # its own group acked all: trimmed, nothing lost
            while bridge.metrics().sent < 120 or await raw.xlen("nc:orders") > 50:
                await asyncio.sleep(0.05)
        assert bridge.metrics().trimmed == 0
    finally:
        await raw.aclose()
        await live.stop()


def test_stale_after_must_exceed_the_heartbeat_period() -> None:
    from neuralcore.core import ConfigError

    with pytest.raises(ConfigError, match="stale_after_s") as info:
        RedisBridgeConfig(claim_interval_s=2.0, stale_after_s=1.0)
    assert info.value.field == "stale_after_s"
