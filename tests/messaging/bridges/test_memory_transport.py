"""The bridge runner's logic over the in-memory transport: fast and deterministic.

Reconnect and requeue, inbound dedup, acknowledgement only after the local handlers
settled, echo skipping, fan-out against work queues, supervision. The real-server tests
cover the same rows against redis-server and tansu.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neuralcore.core import BusClosedError
from neuralcore.messaging import BusConfig, Message, MessageBus
from neuralcore.messaging._codec import MsgpackCodec
from neuralcore.messaging.bridges import BridgeConfig, BridgeState, MemoryBridge, MemoryBroker

Until = Callable[..., Any]


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.002)


async def bus_with(
    broker: MemoryBroker, got: list[Message] | None = None, **cfg: Any
) -> tuple[MessageBus, MemoryBridge]:
    bus = MessageBus()
    bus.create_channel("jobs")
    if got is not None:
        bus.subscribe("jobs", got.append)
    config = BridgeConfig(channels=("jobs",), reconnect_initial_s=0.001, reconnect_max_s=0.01,
                          health_interval_s=0.01, **cfg)  # fmt: skip
    bridge = MemoryBridge(broker, config)
    await bus.add_bridge(bridge)
    await bus.start()
    return bus, bridge


async def test_server_away_buffers_then_resends_in_order() -> None:
    broker, got = MemoryBroker(), []
    receiver, _ = await bus_with(broker, got)
    sender, out = await bus_with(broker)
    try:
        broker.down = True
        await wait_for(lambda: out.state is BridgeState.RECONNECTING)
        for i in range(20):
            sender.publish("jobs", i)
        assert out.buffered == 20
        broker.down = False
        await wait_for(lambda: len(got) == 20)
        assert [m.payload for m in got] == list(range(20))
        assert out.metrics().reconnects >= 1
        assert out.state is BridgeState.CONNECTED
    finally:
        await sender.stop()
        await receiver.stop()


async def test_redelivered_entry_is_delivered_once() -> None:
    broker, got = MemoryBroker(), []
    receiver, inbound = await bus_with(broker, got)
    try:
        data = receiver.codec.encode(Message("jobs", 1, id="remote-1", origin="remote"))
        broker.append("jobs", data)
        broker.append("jobs", data)  # the same message again (a resend after a lost reply)
        await wait_for(lambda: inbound.metrics().duplicates == 1)
        assert [m.id for m in got] == ["remote-1"]
        await wait_for(lambda: broker.pending("jobs", inbound.group) == 0)
    finally:
        await receiver.stop()


async def test_acknowledged_only_after_the_handler_settled() -> None:
    broker = MemoryBroker()
    release = asyncio.Event()
    started: list[int] = []

    async def slow(msg: Message) -> None:
        started.append(msg.payload)
        await release.wait()

    receiver = MessageBus()
    receiver.create_channel("jobs")
    receiver.subscribe("jobs", slow)
    inbound = MemoryBridge(broker, BridgeConfig(channels=("jobs",), group="workers"))
    await receiver.add_bridge(inbound)
    await receiver.start()
    sender, _ = await bus_with(broker)
    try:
        sender.publish("jobs", 7)
        await wait_for(lambda: started == [7])
        await asyncio.sleep(0.05)
        assert broker.pending("jobs", "workers") == 1  # delivered, not settled: not acked
        release.set()
        await wait_for(lambda: broker.pending("jobs", "workers") == 0)
        assert inbound.metrics().acked == 1
    finally:
        await sender.stop()
        await receiver.stop()


async def test_acks_wait_out_a_lost_connection() -> None:
    broker, got = MemoryBroker(), []
    receiver, inbound = await bus_with(broker, got)
    sender, _ = await bus_with(broker)
    try:
        sender.publish("jobs", 1)
        await wait_for(lambda: len(got) == 1)
        group = inbound.group
        await wait_for(lambda: broker.pending("jobs", group) == 0)
        broker.down = True
        await wait_for(lambda: inbound.state is BridgeState.RECONNECTING)
        broker.down = False
        sender.publish("jobs", 2)
        await wait_for(lambda: len(got) == 2)
        await wait_for(lambda: broker.pending("jobs", group) == 0)
    finally:
        await sender.stop()
        await receiver.stop()


async def test_fan_out_reaches_every_bus_and_a_group_shares() -> None:
    broker = MemoryBroker()
    fan = [list[Message]() for _ in range(2)]
    work = [list[Message]() for _ in range(2)]
    buses = [await bus_with(broker, got) for got in fan]
    buses += [await bus_with(broker, got, group="workers") for got in work]
    sender, _ = await bus_with(broker, group="workers")
    try:
        for i in range(50):
            sender.publish("jobs", i)
        await wait_for(lambda: all(len(g) == 50 for g in fan))
        await wait_for(lambda: sum(len(g) for g in work) == 50)
        assert all([m.payload for m in g] == list(range(50)) for g in fan)
        shared = sorted(m.payload for g in work for m in g)
        assert shared == list(range(50))  # each message handled by one member
    finally:
        await sender.stop()
        for bus, _ in buses:
            await bus.stop()


async def test_own_messages_are_skipped_and_idle_members_claim_nothing() -> None:
    broker, got = MemoryBroker(), []
    both, bridge = await bus_with(broker, got)  # subscribed, sends and receives
    idle, idle_bridge = await bus_with(broker, group="workers")  # no local subscriber
    try:
        both.publish("jobs", 1)
        await wait_for(lambda: bridge.metrics().skipped == 1)
        assert [m.payload for m in got] == [1]  # delivered locally once, not again
        assert broker.groups("jobs") == [bridge.group]  # idle never joined
        assert idle_bridge.metrics().received == 0
    finally:
        await both.stop()
        await idle.stop()


async def test_close_drains_what_was_accepted() -> None:
    broker = MemoryBroker()
    sender, out = await bus_with(broker)
    for i in range(200):
        sender.publish("jobs", i)
    await sender.stop()
    assert len(broker.streams["jobs"]) == 200
    assert (out.metrics().sent, out.metrics().unsent) == (200, 0)


async def test_close_reports_what_it_could_not_send() -> None:
    broker = MemoryBroker()
    sender, out = await bus_with(broker, drain_timeout_s=0.05)
    broker.down = True
    await wait_for(lambda: out.state is BridgeState.RECONNECTING)
    for i in range(5):
        sender.publish("jobs", i)
    await sender.stop()
    assert out.metrics().unsent == 5
    assert "jobs" not in broker.streams


async def test_publishes_racing_stop_are_refused_or_sent_never_lost() -> None:
    # A publisher keeps going while another task stops the bus: every publish either
    # raises BusClosedError or reaches the server (the bridge stops after the drain).
    broker = MemoryBroker()
    sender, out = await bus_with(broker)
    accepted = 0

    async def publish() -> str:
        nonlocal accepted
        i = 0
        while True:
            try:
                await sender.publish_async("jobs", i)
            except BusClosedError:
                return "refused"
            accepted, i = accepted + 1, i + 1
            if i % 50 == 0:
                await asyncio.sleep(0)

    task = asyncio.create_task(publish())
    await wait_for(lambda: accepted >= 100)
    await sender.stop()
    assert await task == "refused"
    assert sender.metrics()["jobs"].dropped == 0
    assert len(broker.streams["jobs"]) == accepted >= 100
    assert (out.metrics().sent, out.metrics().unsent) == (accepted, 0)


async def test_stop_refuses_outside_publishes_but_keeps_handlers_follow_ups() -> None:
    broker = MemoryBroker()
    bus = MessageBus()
    bus.create_channel("in")
    bus.create_channel("jobs")
    out = MemoryBridge(broker, BridgeConfig(channels=("jobs",)))
    await bus.add_bridge(out)

    def relay(m: Message) -> None:  # sync, on the executor: a follow-up from a thread
        time.sleep(0.002)
        bus.publish("jobs", m.payload)

    bus.subscribe("in", relay, concurrency=2)
    await bus.start()
    bus.publish_batch("in", range(20))
    stopping = asyncio.create_task(bus.stop())
    await asyncio.sleep(0)
    with pytest.raises(BusClosedError):
        await bus.publish_async("jobs", "outside")
    await stopping
    assert sorted(MsgpackCodec().decode(d).payload for _, d in broker.streams["jobs"]) == list(
        range(20)
    )


async def test_per_channel_group_shares_one_channel_and_fans_out_the_rest() -> None:
    broker = MemoryBroker()
    config = {"groups": {"jobs": "workers"}}
    work = [list[Message]() for _ in range(2)]
    news = [list[Message]() for _ in range(2)]
    buses = []
    for jobs_got, news_got in zip(work, news, strict=True):
        bus = MessageBus()
        for name in ("jobs", "news"):
            bus.create_channel(name)
        bus.subscribe("jobs", jobs_got.append)
        bus.subscribe("news", news_got.append)
        bridge = MemoryBridge(broker, BridgeConfig(channels=("jobs", "news"), **config))
        await bus.add_bridge(bridge)
        await bus.start()
        buses.append((bus, bridge))
    sender = MessageBus()
    for name in ("jobs", "news"):
        sender.create_channel(name)
    await sender.add_bridge(MemoryBridge(broker, BridgeConfig(channels=("jobs", "news"))))
    await sender.start()
    try:
        for i in range(40):
            sender.publish("jobs", i)
            sender.publish("news", i)
        await wait_for(lambda: sum(len(g) for g in work) == 40)
        await wait_for(lambda: all(len(g) == 40 for g in news))
        assert sorted(m.payload for g in work for m in g) == list(range(40))  # each once
        assert all([m.payload for m in g] == list(range(40)) for g in news)  # every bus
        assert "workers" in broker.groups("jobs")
        assert "workers" not in broker.groups("news")
        assert buses[0][1].group_of("jobs") == "workers"
        assert buses[0][1].group_of("news") == buses[0][1].group  # private fan-out group
        await wait_for(lambda: broker.pending("jobs", "workers") == 0)
    finally:
        await sender.stop()
        for bus, _ in buses:
            await bus.stop()


async def test_a_loop_that_dies_fails_the_bridge_in_health() -> None:
    broker = MemoryBroker()
    receiver, inbound = await bus_with(broker, [])
    sender, _ = await bus_with(broker)

    async def broken_ack(tokens: list[Any]) -> None:  # fault injection: not a lost server
        raise RuntimeError("ack path broken")

    inbound.transport.ack = broken_ack  # type: ignore[method-assign]
    try:
        sender.publish("jobs", 1)
        await wait_for(lambda: inbound.state is BridgeState.FAILED)
        health = inbound.health()
        assert (health.healthy, health.last_error) == (False, "RuntimeError: ack path broken")
    finally:
        await sender.stop()
        await receiver.stop()


async def test_flush_waits_for_the_server_and_gives_up_at_its_timeout() -> None:
    broker = MemoryBroker()
    sender, out = await bus_with(broker)
    try:
        assert await out.flush()  # nothing buffered
        broker.down = True
        await wait_for(lambda: out.state is BridgeState.RECONNECTING)
        for i in range(30):
            sender.publish("jobs", i)
        assert not await out.flush(timeout=0.05)  # the server is away: still buffered
        assert out.buffered == 30
        broker.down = False
        assert await out.flush(timeout=5)
        assert (out.buffered, len(broker.streams["jobs"]), out.metrics().sent) == (0, 30, 30)
    finally:
        await sender.stop()


async def test_a_recorded_message_goes_out_with_the_bytes_the_journal_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a persistent channel the journal encodes each message for its file; the bridge
    sends those bytes instead of encoding the message a second time."""
    encoded: list[Any] = []
    broker = MemoryBroker()
    bus = MessageBus(persistence_path=str(tmp_path / "a.db"))
    assert isinstance(bus.codec, MsgpackCodec)
    real = bus.codec.encode  # an instance attribute (compiled when the glue is built)

    def counting(msg: Message) -> bytes:
        encoded.append(msg.payload)
        return real(msg)

    monkeypatch.setattr(bus.codec, "encode", counting)
    bus.create_channel("jobs", persistent=True)
    bridge = MemoryBridge(broker, BridgeConfig(channels=("jobs",), direction="out"))
    await bus.add_bridge(bridge)
    async with bus:
        for i in range(3):
            await bus.publish_async("jobs", {"n": i})
        bus.publish("jobs", {"n": 3})
        bus.publish_batch("jobs", [{"n": 4}, {"n": 5}])
        assert await bridge.flush(5)
        sent = [bus.codec.decode(data) for _, data in broker.streams["jobs"]]
    assert [m.payload for m in sent] == [{"n": i} for i in range(6)]
    assert encoded == [{"n": i} for i in range(6)]  # once each: the journal's encode


async def test_outbox_rows_of_a_json_bus_go_out_in_the_current_codec(tmp_path: Path) -> None:
    """Rows a JSON-codec run left in the outbox are sent re-encoded by a MessagePack bus
    (the stored bytes are reused only when they are in the bus's own codec)."""
    broker, db = MemoryBroker(), str(tmp_path / "a.db")
    broker.down = True
    first = MessageBus(BusConfig(codec="json"), persistence_path=db)
    first.create_channel("jobs", persistent=True)
    config = BridgeConfig(channels=("jobs",), direction="out", startup_timeout_s=0,
                          drain_timeout_s=0.05)  # fmt: skip
    await first.add_bridge(MemoryBridge(broker, config))
    async with first:
        for i in range(3):
            await first.publish_async("jobs", {"n": i})
    broker.down = False
    second = MessageBus(BusConfig(codec="msgpack"), persistence_path=db)
    second.create_channel("jobs", persistent=True)
    bridge = MemoryBridge(broker, BridgeConfig(channels=("jobs",), direction="out"))
    await second.add_bridge(bridge)
    async with second:
        await wait_for(lambda: len(broker.streams.get("jobs", ())) == 3)
        data = [d for _, d in broker.streams["jobs"]]
        assert all(not d.startswith(b"[") for d in data)  # not the JSON rows
        assert [MsgpackCodec().decode(d).payload for d in data] == [{"n": i} for i in range(3)]


async def test_an_outbound_channel_without_a_local_subscriber_keeps_no_copy() -> None:
    """What the bridge took on a channel nobody here subscribes to is not queued locally:
    at default channel settings (10,000 max, ``block``) a publisher goes on past 10,000
    messages, and the channel stays empty. A local subscriber gets what is published
    from then on (and the bridge still carries it)."""
    broker = MemoryBroker()
    sender, out = await bus_with(broker)
    try:
        for i in range(12_000):
            sender.publish("jobs", i)
        for i in range(12_000, 24_000):
            await sender.publish_async("jobs", i)
        assert sender.metrics()["jobs"].queue_depth == 0
        assert await out.flush(10)
        assert [sender.codec.decode(d).payload for _, d in broker.streams["jobs"]] == list(
            range(24_000)
        )
        got: list[int] = []
        sender.subscribe("jobs", lambda m: got.append(m.payload))
        sender.publish("jobs", "later")
        await wait_for(lambda: got == ["later"])
        assert await out.flush(10)
        assert len(broker.streams["jobs"]) == 24_001
    finally:
        await sender.stop()


async def test_what_the_bridge_did_not_take_is_kept_for_a_local_subscriber() -> None:
    """A message the bridge refused (full buffer, no spill file) was not forwarded: it
    stays queued like on any channel without a subscriber."""
    broker = MemoryBroker()
    sender, out = await bus_with(broker, buffer_size=3, drain_timeout_s=0.05)
    try:
        broker.down = True
        await wait_for(lambda: out.state is BridgeState.RECONNECTING)
        for i in range(5):
            sender.publish("jobs", i)
        assert out.metrics().dropped == 2
        assert sender.metrics()["jobs"].queue_depth == 2
        got: list[int] = []
        sender.subscribe("jobs", lambda m: got.append(m.payload))
        await wait_for(lambda: got == [3, 4])
    finally:
        await sender.stop()


async def test_a_request_answered_on_the_same_bus_with_a_bridge_attached() -> None:
    """The bridge does not carry this bus's own reply channel: a request answered by a
    local handler still gets its reply."""
    broker = MemoryBroker()
    bus, _ = await bus_with(broker)
    try:
        bus.subscribe("jobs", lambda m: m.payload * 2)
        assert await bus.request("jobs", 21, timeout=5) == 42
    finally:
        await bus.stop()


async def test_publish_batch_on_a_bridged_channel_forwards_in_order() -> None:
    """A batch on a carried channel: every message goes out in order; with no local
    subscriber none is queued, with one each is also delivered locally."""
    broker = MemoryBroker()
    sender, out = await bus_with(broker)
    try:
        sender.publish_batch("jobs", range(300))
        await sender.publish_batch_async("jobs", range(300, 600))
        assert sender.metrics()["jobs"].queue_depth == 0
        got: list[int] = []
        sender.subscribe("jobs", lambda m: got.append(m.payload))
        sender.publish_batch("jobs", range(600, 700))
        await wait_for(lambda: got == list(range(600, 700)))
        assert await out.flush(10)
        sent = [sender.codec.decode(d).payload for _, d in broker.streams["jobs"]]
        assert sent == list(range(700))
        assert sender.metrics()["jobs"].published == 700
    finally:
        await sender.stop()


def _rows(db: str) -> tuple[int, int]:
    """(message rows, outbox rows) left in a bus file."""
    con = sqlite3.connect(db)
    try:
        messages = int(con.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        return messages, int(con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        con.close()


async def test_a_persistent_outbound_channel_without_a_local_subscriber_keeps_no_copy(
    tmp_path: Path,
) -> None:
    """The same on a persistent channel: past 10,000 messages at default settings, each
    row kept only until the bridge forwarded it (then nothing is left in the file). With
    the server away, the rows wait in the file, not in the channel's queue."""
    broker, db = MemoryBroker(), str(tmp_path / "a.db")
    bus = MessageBus(persistence_path=db)
    bus.create_channel("jobs", persistent=True)
    bridge = MemoryBridge(broker, BridgeConfig(channels=("jobs",), direction="out"))
    await bus.add_bridge(bridge)
    async with bus:
        for i in range(10_500):
            await bus.publish_async("jobs", i)
        assert bus.metrics()["jobs"].queue_depth == 0
        assert await bridge.flush(10)
        broker.down = True
        await wait_for(lambda: bridge.state is BridgeState.RECONNECTING)
        for i in range(10_500, 10_600):
            await bus.publish_async("jobs", i)
        assert bus.metrics()["jobs"].queue_depth == 0
        broker.down = False
        await wait_for(lambda: len(broker.streams["jobs"]) == 10_600)
    sent = [bus.codec.decode(d).payload for _, d in broker.streams["jobs"]]
    assert sent == list(range(10_600))
    assert _rows(db) == (0, 0)


async def test_a_forwarded_persistent_message_costs_one_commit(tmp_path: Path) -> None:
    """Sequential ``await publish_async`` on a persistent channel that only an outbound
    bridge reads: each message is settled as soon as it is stored, and that ack rides the
    next publish's commit. It woke the writer for a transaction of its own (two commits
    per message, ~21K -> ~8K msgs/s); counted with SQLite's own statement trace."""
    broker, db = MemoryBroker(), str(tmp_path / "a.db")
    bus = MessageBus(persistence_path=db)
    bus.create_channel("jobs", persistent=True)
    bridge = MemoryBridge(broker, BridgeConfig(channels=("jobs",), direction="out"))
    await bus.add_bridge(bridge)
    journal = bus._journal
    assert journal is not None
    commits: list[str] = []  # appended by the loop and the writer thread alike
    journal.store._con.set_trace_callback(
        lambda sql: commits.append(sql) if sql == "COMMIT" else None
    )
    n = 400
    async with bus:
        for i in range(n):
            await bus.publish_async("jobs", i)
        assert bus.metrics()["jobs"].queue_depth == 0
        await wait_for(lambda: len(broker.streams["jobs"]) == n)
        during = len(commits)
    assert n <= during <= n + n // 10, f"{during} commits for {n} messages"  # was ~600
    sent = [bus.codec.decode(d).payload for _, d in broker.streams["jobs"]]
    assert sent == list(range(n))
    assert _rows(db) == (0, 0)  # every ack and every outbox row still written
