"""The publish fast path's hand-off to a lone outbound bridge's tap (``Channel.sink``).

On a channel whose only tap is an outbound bridge's and that has no local subscriber,
``publish``, ``publish_async`` and ``publish_batch`` call the bridge's tap callback
directly, and the bridge encodes straight into its buffer. Everything the general path
promised still holds there: order, a failing or refusing bridge keeps the message
locally, a payload that cannot travel is refused at the publish call
(``SerializationError``, as on a persistent channel) while the messages around it go
out, and a subscriber or tap arriving switches the channel back to the general path.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import pytest

from neuralcore.core import SerializationError
from neuralcore.messaging import Message, MessageBus
from neuralcore.messaging.bridges import BridgeConfig, BridgeState, MemoryBridge, MemoryBroker
from neuralcore.messaging.bridges._buffer import OutboundBuffer
from neuralcore.messaging.bridges._kafka import pack, unpack

from .test_forward_only import sender, sent, wait_for

HOW = ("sync", "async", "batch")


async def publish(bus: MessageBus, how: str, payloads: list[Any]) -> list[Message | None]:
    if how == "sync":
        return [bus.publish("jobs", p) for p in payloads]
    if how == "async":
        return [await bus.publish_async("jobs", p) for p in payloads]
    return bus.publish_batch("jobs", payloads)


def queued(bus: MessageBus) -> int:
    return bus.metrics()["jobs"].queue_depth


@pytest.mark.parametrize("how", HOW)
async def test_messages_go_out_in_order_and_are_not_queued(how: str) -> None:
    broker = MemoryBroker()
    bus, bridge = await sender(broker)
    try:
        out = await publish(bus, how, list(range(300)))
        assert [m.payload for m in out if m is not None] == list(range(300))
        assert await bridge.flush(5)
        assert sent(bus, broker) == list(range(300))
        assert queued(bus) == 0
        assert bus.metrics()["jobs"].published == 300
        assert bridge.metrics().sent == 300
    finally:
        await bus.stop()


BAD = [
    pytest.param({"s": {1, 2}}, "holds a set", id="set"),
    pytest.param({"t": [frozenset({1})]}, "holds a frozenset", id="frozenset-in-list"),
    pytest.param({frozenset({1}): 1}, "frozenset at key", id="frozenset-key"),
    pytest.param({(1, frozenset({2})): 1}, r"frozenset at key \(1, ", id="frozenset-in-tuple-key"),
    pytest.param(collections.OrderedDict(a={1}), r"set at \['a'\]", id="ordered-dict-set"),
    pytest.param(type("L", (list,), {})([{1}]), r"set at \[0\]", id="list-subclass-set"),
    pytest.param({"x": "ok \ud800"}, r"payload\['x'\] is not valid UTF-8", id="surrogate"),
    pytest.param({"h": 2**70}, "cannot be encoded", id="int-too-big"),
    pytest.param(None, "nested deeper", id="deep"),
    pytest.param(b"x" * (17 * 1024 * 1024), "over max_message_size", id="oversize"),
]


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize(("bad", "why"), BAD)
async def test_a_payload_that_cannot_travel_is_refused_at_the_publish_call(
    how: str, bad: Any, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No local subscriber: the message would only cross the bridge, so the publish
    raises SerializationError naming the bad value, as on a persistent channel; nothing
    of it is queued, logged or counted as dropped; the messages before it go out in
    order (a batch says how much of it went out)."""
    if why == "nested deeper":
        bad = {"n": deep(300)}
    broker = MemoryBroker()
    bus, bridge = await sender(broker)
    try:
        with caplog.at_level(logging.WARNING, logger="neuralcore"):
            if how == "batch":
                with pytest.raises(SerializationError, match=why) as info:
                    await publish(bus, how, ["a", bad, "b"])
                assert "message 1 of the batch of 3" in str(info.value)
                assert "the first 1 were published" in str(info.value)
                out = await publish(bus, "sync", ["c"])
            else:
                out = await publish(bus, how, ["a"])
                with pytest.raises(SerializationError, match=why):
                    await publish(bus, how, [bad])
                out += await publish(bus, how, ["b"])
            assert all(m is not None for m in out)
            assert await bridge.flush(5)
            assert sent(bus, broker) == (["a", "c"] if how == "batch" else ["a", "b"])
            assert bridge.metrics().dropped == 0
            assert queued(bus) == 0
            assert bus.metrics()["jobs"].published == 2
            await bus.stop()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
            r.getMessage() for r in caplog.records
        ]
    finally:
        await bus.stop()


@pytest.mark.parametrize("how", HOW)
async def test_a_payload_that_cannot_travel_still_reaches_a_local_subscriber(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With a local subscriber the message is delivered here (it was accepted before the
    bridge saw it); the bridge cannot carry it: logged naming the cause, counted as a
    channel error; the messages around it go out."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker)
    got: list[Any] = []
    bus.subscribe("jobs", lambda m: got.append(m.payload))
    try:
        with caplog.at_level(logging.ERROR, logger="neuralcore"):
            out = await publish(bus, how, ["a", {"s": {1}}, "b"])
        assert all(m is not None for m in out)
        await wait_for(lambda: len(got) == 3)
        assert got == ["a", {"s": {1}}, "b"]
        assert await bridge.flush(5)
        assert sent(bus, broker) == ["a", "b"]
        assert bus.metrics()["jobs"].errors == 1
        logged = [r.getMessage() for r in caplog.records if "cannot send" in r.getMessage()]
        assert len(logged) == 1, logged
        assert "holds a set" in logged[0]
    finally:
        await bus.stop()


@pytest.mark.parametrize("how", HOW)
async def test_a_failing_bridge_tap_is_counted_and_the_message_kept(
    how: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The tap callback raising (not a refusal) never reaches the publisher: counted as a
    channel error, logged, the message queued locally; later messages go out again."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker)
    try:
        calls = {"n": 0}
        real = bridge._encode

        def flaky(msg: Message) -> bytes:
            calls["n"] += 1
            if msg.payload == "boom":
                raise RuntimeError("tap exploded")
            return real(msg)

        # the sink closure holds the encoder it was made with: rebuild it like a start
        monkeypatch.setattr(bridge, "_encode", flaky)
        ch = bus._channels["jobs"]
        ch.taps[0].callback = bridge._sink(bridge._enqueue)
        ch.refresh()
        with caplog.at_level(logging.ERROR, logger="neuralcore"):
            await publish(bus, how, ["a", "boom", "b"])
        assert calls["n"] == 3
        assert await bridge.flush(5)
        assert sent(bus, broker) == ["a", "b"]
        assert bus.metrics()["jobs"].errors == 1
        assert queued(bus) == 1
        assert any("failed" in r.getMessage() for r in caplog.records)
    finally:
        await bus.stop()


@pytest.mark.parametrize("how", HOW)
async def test_a_full_bridge_buffer_keeps_the_rest_locally(how: str) -> None:
    """buffer_size=3, broker away: 3 taken, the rest queued here (nothing lost); once
    the broker is back and a subscriber comes, those are delivered locally."""
    broker = MemoryBroker()
    broker.down = True
    bus = MessageBus()
    bus.create_channel("jobs")
    config = BridgeConfig(channels=("jobs",), direction="out", buffer_size=3,
                          startup_timeout_s=0, reconnect_initial_s=0.001,
                          reconnect_max_s=0.01, health_interval_s=0.01)  # fmt: skip
    bridge = MemoryBridge(broker, config)
    await bus.add_bridge(bridge)
    await bus.start()
    try:
        await wait_for(lambda: bridge.state is BridgeState.RECONNECTING)
        await publish(bus, how, list(range(8)))
        assert bridge.buffered == 3
        assert queued(bus) == 5
        broker.down = False
        assert await bridge.flush(5)
        assert sent(bus, broker) == [0, 1, 2]
        got: list[Any] = []
        bus.subscribe("jobs", lambda m: got.append(m.payload))
        await wait_for(lambda: len(got) == 5)
        assert got == [3, 4, 5, 6, 7]
    finally:
        await bus.stop()


async def test_a_subscriber_or_a_tap_switches_the_channel_back() -> None:
    """While a subscriber is there, messages are delivered locally and forwarded; after
    it leaves, forward-only again. A user tap beside the bridge's sees every message."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker)
    ch = bus._channels["jobs"]
    try:
        assert ch.sink is not None
        got: list[Any] = []
        sub = bus.subscribe("jobs", lambda m: got.append(m.payload))
        assert ch.sink is None
        bus.publish("jobs", "both")
        await wait_for(lambda: got == ["both"])
        sub.unsubscribe()
        await wait_for(lambda: ch.sink is not None)
        bus.publish("jobs", "out-only")
        seen: list[Any] = []
        tap = bus.tap("jobs", lambda m: seen.append(m.payload))
        assert ch.sink is None
        bus.publish("jobs", "tapped")
        tap.close()
        assert ch.sink is not None
        assert await bridge.flush(5)
        assert sent(bus, broker) == ["both", "out-only", "tapped"]
        assert seen == ["tapped"]
        assert got == ["both"]
        assert queued(bus) == 0
    finally:
        await bus.stop()


async def test_a_spill_file_takes_the_general_path(tmp_path: Any) -> None:
    """With a spill file the buffer decides each put (order behind what was spilled)."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker, spill_path=str(tmp_path / "spill.db"))
    try:
        assert bridge._limit == 0
        for i in range(50):
            bus.publish("jobs", i)
        assert await bridge.flush(5)
        assert sent(bus, broker) == list(range(50))
    finally:
        await bus.stop()


def test_take_hands_out_fifo_chunks() -> None:
    buffer = OutboundBuffer(1000, None)
    for i in range(700):
        assert buffer.put(("c", str(i).encode(), None, True, 0)) == "memory"
    first = buffer.take(512)
    rest = buffer.take(512)
    assert [int(d) for _, d, _, _, _ in first + rest] == list(range(700))
    assert len(first) == 512
    assert not buffer.ready.is_set()


@pytest.mark.parametrize("sizes", [[2, 1], [0], [70_000, 0, 3], list(range(600))])
def test_pack_framing_is_big_endian_lengths(sizes: list[int]) -> None:
    """``magic | count (u32 BE) | count x length (u32 BE) | envelopes``, byte for byte."""
    envelopes = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    value = pack(envelopes)
    head = b"NCB\x01" + len(sizes).to_bytes(4, "big")
    head += b"".join(n.to_bytes(4, "big") for n in sizes)
    assert value == head + b"".join(envelopes)
    assert unpack(value) == envelopes


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_a_refused_payload_does_not_use_up_its_idempotency_key(how: str) -> None:
    """A publish refused because the bridge cannot encode its payload was not published:
    a corrected retry with the same key goes out (it is no duplicate)."""
    broker = MemoryBroker()
    bus, bridge = await sender(broker, channel={"idempotency_window": 60.0})
    try:

        async def publish_one(payload: Any) -> Message | None:
            if how == "sync":
                return bus.publish("jobs", payload, idempotency_key="k")
            return await bus.publish_async("jobs", payload, idempotency_key="k")

        with pytest.raises(SerializationError, match="holds a set"):
            await publish_one({"s": {1}})
        msg = await publish_one({"s": [1]})
        assert msg is not None
        assert await bridge.flush(5)
        assert sent(bus, broker) == [{"s": [1]}]
    finally:
        await bus.stop()
