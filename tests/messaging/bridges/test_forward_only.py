"""A channel with an outbound bridge and no local subscriber ("forward-only"), and taps.

What the bridge takes there is not queued locally, so it needs no local room: a batch is
never refused, cut or dropped for room it would not use. Taps other than the bridge's
see exactly the messages a publish accepted, after they are queued (a tap that publishes
on its own channel queues behind the message it saw). Rows a bridge's durable outbox
keeps for a bridge that is no longer configured are reported, never lost silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neuralcore.core import InputTypeError, NeuralcoreError, QueueFullError
from neuralcore.messaging import BusConfig, Message, MessageBus
from neuralcore.messaging.bridges import BridgeConfig, BridgeState, MemoryBridge, MemoryBroker

POLICIES = ("block", "error", "drop_new", "drop_oldest")


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.002)


async def sender(
    broker: MemoryBroker,
    *,
    bus: MessageBus | None = None,
    channel: dict[str, Any] | None = None,
    **cfg: Any,
) -> tuple[MessageBus, MemoryBridge]:
    bus = bus or MessageBus()
    bus.create_channel("jobs", **(channel or {}))
    config = BridgeConfig(channels=("jobs",), direction="out", reconnect_initial_s=0.001,
                          reconnect_max_s=0.01, health_interval_s=0.01, **cfg)  # fmt: skip
    bridge = MemoryBridge(broker, config)
    await bus.add_bridge(bridge)
    await bus.start()
    return bus, bridge


def sent(bus: MessageBus, broker: MemoryBroker) -> list[Any]:
    return [bus.codec.decode(d).payload for _, d in broker.streams.get("jobs", [])]


def payloads(results: list[Message | None]) -> list[Any]:
    return [None if m is None else m.payload for m in results]


# -- 1. the room a batch needs -------------------------------------------------------------


@pytest.mark.parametrize("overflow", POLICIES)
@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_batch_larger_than_the_channel_goes_out_whole(overflow: str, how: str) -> None:
    """max_size=3, a batch of 8: the bridge takes all 8, so none needs local room (was
    QueueFullError 'room for 3 of a batch of 8' for error/block, the tail silently dropped
    for drop_new)."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker, channel={"max_size": 3, "overflow": overflow})
    try:
        for i in range(5):  # single publishes: the same
            bus.publish("jobs", i)
        batch = list(range(10, 18))
        if how == "sync":
            out = bus.publish_batch("jobs", batch)
        else:
            out = await bus.publish_batch_async("jobs", batch)
        assert payloads(out) == batch
        assert await bridge.flush(5)
        assert sent(bus, broker) == [0, 1, 2, 3, 4, *batch]
        stats = bus.metrics()["jobs"]
        assert (stats.queue_depth, stats.dropped, stats.published) == (0, 0, 13)
    finally:
        await bus.stop()


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_batch_past_the_default_size_goes_out_whole(how: str) -> None:
    """At default channel settings (10,000 max, block) a batch of 10,001."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker)
    try:
        batch = list(range(10_001))
        if how == "sync":
            out = bus.publish_batch("jobs", batch)
        else:
            out = await bus.publish_batch_async("jobs", batch)
        assert None not in out
        assert await bridge.flush(10)
        assert sent(bus, broker) == batch
        assert bus.metrics()["jobs"].queue_depth == 0
    finally:
        await bus.stop()


@pytest.mark.parametrize("overflow", POLICIES)
@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_persistent_batch_larger_than_the_channel_goes_out_whole(
    tmp_path: Path, overflow: str, how: str
) -> None:
    broker, db = MemoryBroker(), str(tmp_path / "a.db")
    bus, bridge = await sender(
        broker,
        bus=MessageBus(persistence_path=db),
        channel={"max_size": 3, "overflow": overflow, "persistent": True},
    )
    try:
        batch = list(range(8))
        if how == "sync":
            out = bus.publish_batch("jobs", batch)
        else:
            out = await bus.publish_batch_async("jobs", batch)
        assert payloads(out) == batch
        assert await bridge.flush(5)
        await wait_for(lambda: bus.health().unforwarded == ())
        assert sent(bus, broker) == batch
        assert bus.metrics()["jobs"].queue_depth == 0
    finally:
        await bus.stop()


async def refusing(
    overflow: str, *, block_timeout: float = 5.0
) -> tuple[MessageBus, MemoryBridge, MemoryBroker]:
    """A bridge that takes 3 messages (buffer 3, server away, no spill file), a
    channel with room for 2."""
    broker = MemoryBroker()
    bus, bridge = await sender(
        broker,
        bus=MessageBus(BusConfig(block_timeout=block_timeout)),
        channel={"max_size": 2, "overflow": overflow},
        buffer_size=3,
        drain_timeout_s=0.05,
    )
    broker.down = True
    await wait_for(lambda: bridge.state is BridgeState.RECONNECTING)
    return bus, bridge, broker


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_what_the_bridge_refuses_meets_the_policy_drop_new(how: str) -> None:
    """3 taken by the bridge, 2 queued locally, 3 dropped (None, counted)."""
    bus, bridge, _ = await refusing("drop_new")
    try:
        batch = list(range(8))
        if how == "sync":
            out = bus.publish_batch("jobs", batch)
        else:
            out = await bus.publish_batch_async("jobs", batch)
        assert payloads(out) == [0, 1, 2, 3, 4, None, None, None]
        stats = bus.metrics()["jobs"]
        assert (stats.queue_depth, stats.dropped, stats.published) == (2, 3, 5)
        assert bridge.buffered == 3
    finally:
        await bus.stop()


@pytest.mark.parametrize(("overflow", "how"), [("error", "sync"), ("error", "async"),
                                               ("block", "sync"), ("block", "async")])  # fmt: skip
async def test_what_the_bridge_refuses_meets_the_policy_error(overflow: str, how: str) -> None:
    """The queue full of messages the bridge refused: the next message meets the policy
    as a single publish would, QueueFullError saying how much of the batch went out
    (block waits block_timeout first, where it can wait)."""
    bus, bridge, _ = await refusing(overflow, block_timeout=0.05)
    try:
        expected = "the first 5 of the batch of 8 were published"
        if how == "sync":
            with pytest.raises(QueueFullError, match=expected):
                bus.publish_batch("jobs", range(8))
        else:
            with pytest.raises(QueueFullError, match=expected):
                await bus.publish_batch_async("jobs", range(8))
        stats = bus.metrics()["jobs"]
        assert (stats.queue_depth, stats.published) == (2, 5)
        assert bridge.buffered == 3
    finally:
        await bus.stop()


# -- 2. taps see what was accepted ---------------------------------------------------------


@pytest.mark.parametrize("bridged", [False, True])
async def test_a_tap_sees_only_accepted_messages(bridged: bool) -> None:
    """drop_oldest, no subscriber, low-priority messages that evict themselves: publish
    returns None for them, and the tap never sees them (with a bridge: one that refuses,
    so the messages must be queued locally)."""
    if bridged:
        bus, _, _ = await refusing("drop_oldest")
        for i in range(3):  # the bridge's buffer is full from here on
            bus.publish("jobs", f"taken{i}")
    else:
        bus = MessageBus()
        bus.create_channel("jobs", max_size=2, overflow="drop_oldest")
        await bus.start()
    try:
        seen: list[Any] = []
        bus.tap("jobs", lambda m: seen.append(m.payload))
        results = [
            bus.publish("jobs", "a", priority=0),
            bus.publish("jobs", "b", priority=0),
            bus.publish("jobs", "low", priority=9),
            await bus.publish_async("jobs", "low2", priority=9),
            *bus.publish_batch("jobs", ["low3"], priority=9),
            *await bus.publish_batch_async("jobs", ["low4"], priority=9),
        ]
        assert payloads(results) == ["a", "b", None, None, None, None]
        assert seen == ["a", "b"]
        assert bus.metrics()["jobs"].dropped == 4
    finally:
        await bus.stop()


@pytest.mark.parametrize("bridged", [False, True])
@pytest.mark.parametrize(
    "how", ["publish", "publish_async", "batch", "batch_async", "checked", "checked_async"]
)
async def test_a_tap_that_publishes_on_its_channel_queues_behind(bridged: bool, how: str) -> None:
    """Local subscribers get publish order: the message a tap saw, then what the tap
    published (taps run after queueing). 'checked': a channel with per-message features
    (a rate limit), off the fast path (publish_async: Pipeline.publish_now)."""
    broker = MemoryBroker()
    channel: dict[str, Any] = {"rate_limit": 1e6} if how.startswith("checked") else {}
    if bridged:
        bus, bridge = await sender(broker, channel=channel)
    else:
        bus = MessageBus()
        bus.create_channel("jobs", **channel)
        await bus.start()
    try:
        got: list[Any] = []
        bus.subscribe("jobs", lambda m: got.append(m.payload))
        bus.tap("jobs", lambda m: m.payload == "first" and bus.publish("jobs", "from-tap"))
        if how in ("publish", "checked"):
            bus.publish("jobs", "first")
        elif how in ("publish_async", "checked_async"):
            await bus.publish_async("jobs", "first")
        elif how == "batch":
            bus.publish_batch("jobs", ["first"])
        else:
            await bus.publish_batch_async("jobs", ["first"])
        await wait_for(lambda: len(got) == 2)
        assert got == ["first", "from-tap"]
        if bridged:
            assert await bridge.flush(5)
            assert sent(bus, broker) == ["first", "from-tap"]
    finally:
        await bus.stop()


async def test_a_tap_on_a_forward_only_channel_sees_what_the_bridge_took() -> None:
    """No local subscriber: the bridge takes the message (not queued); a user tap still
    sees it once, and one that publishes there keeps the order on the wire too."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker)
    try:
        seen: list[Any] = []

        def tap(m: Message) -> None:
            seen.append(m.payload)
            if m.payload == "first":
                bus.publish("jobs", "from-tap")

        bus.tap("jobs", tap)
        bus.publish("jobs", "first")
        bus.publish_batch("jobs", ["b1", "b2"])
        assert seen == ["first", "from-tap", "b1", "b2"]
        assert await bridge.flush(5)
        assert sent(bus, broker) == seen
        assert bus.metrics()["jobs"].queue_depth == 0
    finally:
        await bus.stop()


# -- 3. bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("bridged", [False, True])
@pytest.mark.parametrize("bad", [5, None, 1.5])
async def test_publish_batch_refuses_a_non_iterable_naming_it(bridged: bool, bad: Any) -> None:
    broker = MemoryBroker()
    if bridged:
        bus, _ = await sender(broker)
    else:
        bus = MessageBus()
        bus.create_channel("jobs")
        await bus.start()
    try:
        with pytest.raises(InputTypeError, match=f"payloads must be .*{type(bad).__name__}"):
            bus.publish_batch("jobs", bad)
        with pytest.raises(NeuralcoreError, match="payloads"):
            await bus.publish_batch_async("jobs", bad)
        assert bus.metrics()["jobs"].published == 0
    finally:
        await bus.stop()


# -- 4. a durable outbox nobody reads -------------------------------------------------------


async def test_outbox_rows_of_a_bridge_no_longer_configured_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Persistent channel, no local subscriber, server away: the rows wait in the
    bridge's outbox. A restart without that bridge says so (health and a warning naming
    the channel, the count and the outbox); adding the bridge again sends them."""
    broker, db = MemoryBroker(), str(tmp_path / "a.db")
    broker.down = True
    bus, _ = await sender(
        broker,
        bus=MessageBus(persistence_path=db),
        channel={"persistent": True},
        startup_timeout_s=0,
        drain_timeout_s=0.05,
    )
    for i in range(3):
        await bus.publish_async("jobs", i)
    bus.publish_batch("jobs", [3, 4])
    assert bus.health().unforwarded == ()  # its bridge is open
    await bus.stop()

    alone = MessageBus(persistence_path=db)
    alone.create_channel("jobs", persistent=True)
    with caplog.at_level(logging.WARNING, logger="neuralcore.messaging"):
        await alone.start()
    try:
        line = "channel 'jobs': 5 messages in the outbox of 'memory>jobs'"
        assert alone.health().unforwarded == (line,)
        assert alone.health().ok
        assert any(line in r.getMessage() for r in caplog.records)
    finally:
        await alone.stop()

    broker.down = False
    again, _ = await sender(
        broker, bus=MessageBus(persistence_path=db), channel={"persistent": True}
    )
    try:
        await wait_for(lambda: len(broker.streams.get("jobs", [])) == 5)
        assert sent(again, broker) == [0, 1, 2, 3, 4]
        await wait_for(lambda: again.health().unforwarded == ())
    finally:
        await again.stop()


# -- 4. the bridge keeps sending; what it refuses ------------------------------------------


async def test_a_loop_of_awaited_publishes_lets_the_bridge_send() -> None:
    """A loop of ``await publish_async`` on a forward-only channel yields to the loop
    every 384 messages the bridge took, as for subscribed channels, so the bridge's send
    loop runs (the fast path returned before the burst countdown: the buffer filled, the
    rest was refused and queued where nobody takes it, then QueueFullError)."""
    broker = MemoryBroker()
    bus, bridge = await sender(
        broker,
        bus=MessageBus(BusConfig(block_timeout=0.05)),
        channel={"max_size": 10},
        buffer_size=500,
    )
    try:
        for i in range(3000):
            await bus.publish_async("jobs", i)
        assert await bridge.flush(5)
        assert sent(bus, broker) == list(range(3000))
        assert bus.metrics()["jobs"].queue_depth == 0
        assert bridge.metrics().dropped == 0
    finally:
        await bus.stop()


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_after_an_outage_the_channel_forwards_again(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An outage longer than the bridge's buffer: what it refused fills the local queue
    (kept for a subscriber that may come; counted by the bridge). Once the server is back
    new publishes go out although the queue is full (were refused: QueueFullError after
    block_timeout); at stop the refused ones are counted dropped with a warning."""
    broker = MemoryBroker()
    bus, bridge = await sender(
        broker,
        bus=MessageBus(BusConfig(block_timeout=0.05)),
        channel={"max_size": 3},
        buffer_size=2,
        drain_timeout_s=0.05,
    )
    stopped = False
    try:
        broker.down = True
        await wait_for(lambda: bridge.state is BridgeState.RECONNECTING)
        for i in range(5):
            await bus.publish_async("jobs", i)
        assert (bus.metrics()["jobs"].queue_depth, bridge.metrics().dropped) == (3, 3)
        broker.down = False
        assert await bridge.flush(5)
        for i in (5, 6):
            if how == "sync":
                bus.publish("jobs", i)
            else:
                await bus.publish_async("jobs", i)
        assert await bridge.flush(5)
        assert sent(bus, broker) == [0, 1, 5, 6]
        with caplog.at_level(logging.INFO, logger="neuralcore.messaging"):
            await bus.stop()
        stopped = True
        assert bus.metrics()["jobs"].dropped == 3
        assert any("3 undelivered messages dropped" in r.getMessage() for r in caplog.records)
        assert not any("forwarded messages" in r.getMessage() for r in caplog.records)
    finally:
        if not stopped:
            await bus.stop()


async def test_a_message_one_bridge_refused_stays_queued() -> None:
    """Two outbound bridges, one refusing (its buffer full): a message the other took is
    kept locally too (was: not queued, lost for the refusing bridge's side)."""
    broker, away = MemoryBroker(), MemoryBroker()
    bus, taking = await sender(broker)
    refusing_cfg = BridgeConfig(channels=("jobs",), direction="out", reconnect_initial_s=0.001,
                                reconnect_max_s=0.01, health_interval_s=0.01, buffer_size=2,
                                drain_timeout_s=0.05, outbox="refusing")  # fmt: skip
    full = MemoryBridge(away, refusing_cfg)
    await bus.add_bridge(full)
    away.down = True
    try:
        await wait_for(lambda: full.state is BridgeState.RECONNECTING)
        for i in range(4):
            await bus.publish_async("jobs", i)
        assert await taking.flush(5)
        assert sent(bus, broker) == [0, 1, 2, 3]
        assert full.metrics().dropped == 2
        got: list[Any] = []
        bus.subscribe("jobs", lambda m: got.append(m.payload))
        await wait_for(lambda: len(got) == 2)
        assert got == [2, 3]
    finally:
        await bus.stop()
