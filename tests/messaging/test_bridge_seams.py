"""The seams the Redis/Kafka bridges build on: lifecycle, taps, inject + on_settled, codec."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from neuralcore.core import (
    AuthorizationError,
    BusClosedError,
    InputTypeError,
    InvalidInputError,
    RateLimitedError,
)
from neuralcore.messaging import Bridge, BusConfig, Message, MessageBus, Tap


class LoopbackBridge:
    """Carries messages between two buses through bytes, like a broker would."""

    def __init__(self, name: str, peer: list[bytes], channels: tuple[str, ...] = ("x.*",)) -> None:
        self.name = name
        self.channels = channels
        self.direction = "both"
        self.outbox = peer
        self.events: list[str] = []
        self.tap: Tap | None = None
        self.bus: MessageBus | None = None

    async def start(self, bus: MessageBus) -> None:
        self.events.append("start")
        self.bus = bus
        self.tap = bus.tap(self.channels[0], lambda m: self.outbox.append(bus.codec.encode(m)))

    async def stop(self) -> None:
        self.events.append("stop")
        if self.tap is not None:
            self.tap.close()


async def test_bridges_start_and_stop_with_the_bus() -> None:
    bridge = LoopbackBridge("b", [])
    assert isinstance(bridge, Bridge)
    bus = MessageBus()
    await bus.add_bridge(bridge)
    with pytest.raises(InvalidInputError, match="already attached"):
        await bus.add_bridge(bridge)
    with pytest.raises(InputTypeError, match="Bridge protocol"):
        await bus.add_bridge(object())  # type: ignore[arg-type]
    assert bridge.events == []
    async with bus:
        assert bridge.events == ["start"]
        late = LoopbackBridge("late", [])
        await bus.add_bridge(late)
        assert late.events == ["start"]
        await bus.remove_bridge(late)
        assert late.events == ["start", "stop"]
        assert bus.bridges() == [bridge]
    assert bridge.events == ["start", "stop"]


async def test_tap_sees_local_messages_in_order_and_skips_remote_ones() -> None:
    async with MessageBus() as bus:
        bus.create_channel("x.a")
        bus.create_channel("y")
        seen: list[Any] = []
        everything: list[Any] = []
        tap = bus.tap("x.*", lambda m: seen.append(m.payload))
        bus.tap("x.a", lambda m: everything.append(m.payload), include_remote=True)
        bus.create_channel("x.b")  # patterns include later channels
        for i in range(3):
            bus.publish("x.a", i)
        bus.publish("x.b", "b")
        bus.publish("y", "not tapped")
        await bus.inject(Message("x.a", "remote", origin="other-bus"))
        assert seen == [0, 1, 2, "b"]
        assert everything == [0, 1, 2, "remote"]
        tap.close()
        bus.publish("x.a", 9)
        assert seen == [0, 1, 2, "b"]


async def test_a_failing_tap_never_fails_the_publisher() -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        bus.tap("c", lambda m: 1 / 0)  # type: ignore[func-returns-value]
        assert bus.publish("c", 1) is not None
        assert bus.metrics()["c"].errors == 1


async def test_inject_keeps_the_envelope_and_reports_settlement(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", max_attempts=1)
        got: list[Message] = []

        async def handler(m: Message) -> None:
            if m.payload == "bad":
                raise ValueError("bad")
            got.append(m)

        bus.subscribe("c", handler)
        bus.subscribe("c", lambda m: None, group="g")
        settled: list[tuple[str, str]] = []
        remote = Message(
            "c", "ok", priority=3, headers={"trace_id": "t"}, id="remote-1",
            timestamp=123.5, origin="peer",
        )  # fmt: skip
        assert await bus.inject(remote, on_settled=lambda m, o: settled.append((m.id, o)))
        assert await bus.inject(Message("c", "bad", id="remote-2", origin="peer"),
                                on_settled=lambda m, o: settled.append((m.id, o)))  # fmt: skip
        await until(lambda: len(settled) == 2)
        assert sorted(settled) == [("remote-1", "acked"), ("remote-2", "dead_lettered")]
        [m] = got
        assert (m.id, m.priority, m.headers, m.timestamp, m.origin) == (
            "remote-1", 3, {"trace_id": "t"}, 123.5, "peer",
        )  # fmt: skip


async def test_on_settled_fires_only_after_every_handler(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        gate = asyncio.Event()
        settled: list[str] = []

        async def slow(m: Message) -> None:
            await gate.wait()

        bus.subscribe("c", lambda m: None)
        bus.subscribe("c", slow)
        await bus.inject(Message("c", 1, origin="peer"), on_settled=lambda m, o: settled.append(o))
        await until(lambda: bus.metrics()["c"].delivered == 1)  # the quick one is done
        assert settled == []
        gate.set()
        await until(lambda: settled == ["acked"])


async def test_inject_dropped_by_overflow_reports_dropped() -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=1, overflow="drop_new")
    outcomes: list[str] = []
    assert await bus.inject(Message("c", 1), on_settled=lambda m, o: outcomes.append(o))
    assert not await bus.inject(Message("c", 2), on_settled=lambda m, o: outcomes.append(o))
    assert outcomes == ["dropped"]


async def test_bytes_round_trip_between_two_buses(tmp_path: Path, until: Any) -> None:
    wire: list[bytes] = []
    a, b = MessageBus(), MessageBus(persistence_path=str(tmp_path / "b.db"))
    for bus in (a, b):
        bus.create_channel("x.jobs", persistent=bus is b)
    await a.add_bridge(LoopbackBridge("a->b", wire))
    got: list[Message] = []
    b.subscribe("x.jobs", got.append)
    acked: list[str] = []
    async with a, b:
        sent = a.publish("x.jobs", {"v": [1, 2]}, priority=5, headers={"source": "a"})
        assert sent is not None
        assert len(wire) == 1
        msg = b.codec.decode(wire.pop())
        await b.inject(msg, on_settled=lambda m, o: acked.append(o))
        await until(lambda: acked == ["acked"])
        assert (got[0].id, got[0].origin, got[0].payload) == (sent.id, a.bus_id, {"v": [1, 2]})
        assert got[0].origin != b.bus_id  # b's own taps would skip it: no echo


async def test_remote_reply_travels_on_the_reply_channel(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("ask")
        outbound: list[Message] = []
        bus.subscribe("ask", outbound.append)
        task = asyncio.create_task(bus.request("ask", "q", timeout=2))
        await until(lambda: outbound)
        [req] = outbound
        # A remote bus answered: its bridge brings the reply home on "_reply.<bus id>".
        reply = Message(
            f"_reply.{bus.bus_id}", "answer", headers={"correlation_id": req.correlation_id}
        )
        assert await bus.inject(reply)
        assert await task == "answer"


async def test_messages_a_tap_forwarded_are_not_counted_dropped_at_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A channel carried only by an outbound bridge has no local subscriber: what the tap
    took was forwarded, not lost. What nobody took, and what subscribers never got, is."""
    outbox: list[bytes] = []
    bus = MessageBus()
    await bus.add_bridge(LoopbackBridge("b", outbox, channels=("x.*",)))
    bus.create_channel("x.out")  # tapped, no subscriber
    bus.create_channel("nobody")  # neither tapped nor subscribed
    await bus.start()
    for i in range(5):
        await bus.publish_async("x.out", i)
    for i in range(3):
        await bus.publish_async("nobody", i)
    with caplog.at_level("INFO", logger="neuralcore.messaging"):
        await bus.stop()
    assert len(outbox) == 5
    metrics = bus.metrics()
    assert metrics["x.out"].dropped == 0
    assert metrics["nobody"].dropped == 3
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "channel 'x.out': 5 forwarded messages not delivered locally (no subscriber)" in infos
    assert not any("x.out" in w for w in warnings)
    assert any("'nobody': 3 undelivered messages dropped" in w for w in warnings)


async def test_forwarded_messages_are_dropped_when_local_subscribers_never_got_them(
    until: Any, caplog: pytest.LogCaptureFixture
) -> None:
    outbox: list[bytes] = []
    bus = MessageBus()
    await bus.add_bridge(LoopbackBridge("b", outbox, channels=("x.*",)))
    bus.create_channel("x.out")
    started: list[int] = []

    async def stuck(m: Message) -> None:
        started.append(m.payload)
        await asyncio.sleep(60)

    bus.subscribe("x.out", stuck)
    await bus.start()
    bus.publish_batch("x.out", range(4))
    await until(lambda: started)
    with caplog.at_level("INFO", logger="neuralcore.messaging"):
        await bus.stop(timeout=0.05)
    assert len(outbox) == 4
    assert bus.metrics()["x.out"].dropped == 3  # a local subscriber expected them
    assert any(
        "'x.out': 3 undelivered messages dropped at stop" in r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING"
    )


async def test_a_tapped_channel_delivers_to_subscribers_and_taps_with_every_check(
    until: Any,
) -> None:
    """A tap (an outbound bridge) keeps a plain channel on the bus's publish fast path,
    which then feeds the taps itself: subscribers and taps both get every message, in
    order, from ``publish`` and ``publish_async``; rate limits, ttl, authorization and a
    stopped bus still apply to a tapped channel."""
    bus = MessageBus()
    bus.create_channel("open")
    bus.create_channel("limited", rate_limit=1e-3, rate_burst=2)
    bus.create_channel("short", ttl=0.05)
    tapped: list[tuple[str, Any]] = []
    also: list[Any] = []
    bus.tap(("open", "limited", "short"), lambda m: tapped.append((m.channel, m.payload)))
    bus.tap("open", lambda m: also.append(m.payload))
    bus.tap("open", lambda m: 1 / 0)  # type: ignore[func-returns-value]  # counted, not fatal
    got: list[Any] = []
    bus.subscribe("open", lambda m: got.append(m.payload))
    await bus.start()
    for i in range(300):
        if i % 2:
            assert await bus.publish_async("open", i) is not None
        else:
            assert bus.publish("open", i) is not None
    await until(lambda: len(got) == 300)
    assert got == also == list(range(300))
    assert [p for c, p in tapped if c == "open"] == list(range(300))
    assert bus.metrics()["open"].errors == 300  # the failing tap, once per message
    assert bus.metrics()["open"].published == 300

    tapped.clear()
    assert bus.publish("limited", 1) is not None
    assert await bus.publish_async("limited", 2) is not None
    with pytest.raises(RateLimitedError):
        bus.publish("limited", 3)
    with pytest.raises(RateLimitedError):
        await bus.publish_async("limited", 3)
    assert tapped == [("limited", 1), ("limited", 2)]

    assert bus.publish("short", "stale") is not None  # tapped at publish time
    await asyncio.sleep(0.1)
    late: list[Any] = []
    bus.subscribe("short", lambda m: late.append(m.payload))
    assert bus.publish("short", "fresh") is not None
    await until(lambda: late == ["fresh"])
    assert bus.metrics()["short"].expired == 1
    assert [p for c, p in tapped if c == "short"] == ["stale", "fresh"]

    await bus.stop()
    with pytest.raises(BusClosedError):
        bus.publish("open", "after")
    with pytest.raises(BusClosedError):
        await bus.publish_async("open", "after")
    assert len(also) == 300

    keyed = MessageBus(BusConfig(api_keys={"w": ("writer",)}))
    keyed.create_channel("guarded", allow_publish=("writer",))
    seen: list[Any] = []
    keyed.tap("guarded", lambda m: seen.append(m.payload), auth="w")
    async with keyed:
        with pytest.raises(AuthorizationError, match="no API key"):
            keyed.publish("guarded", "x")
        with pytest.raises(AuthorizationError, match="no API key"):
            await keyed.publish_async("guarded", "x")
        assert keyed.publish("guarded", "ok", auth="w") is not None
        assert await keyed.publish_async("guarded", "ok2", auth="w") is not None
    assert seen == ["ok", "ok2"]
