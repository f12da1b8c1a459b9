"""Delivery: priorities, broadcast, groups, wildcards, handlers, retries, DLQ, request/reply."""

from __future__ import annotations

import asyncio
import functools
import operator
import threading
import time
from typing import Any

import pytest

from neuralcore.core import (
    ChannelNotFoundError,
    ConfigError,
    InputTypeError,
    InvalidInputError,
    RequestTimeoutError,
)
from neuralcore.messaging import BusConfig, ChannelConfig, Message, MessageBus, Priority


async def test_priority_order_and_fifo_within_priority(until: Any) -> None:
    bus = MessageBus()
    bus.create_channel("c")
    for i, p in enumerate([50, 0, 100, 0, 50, 25, 100, 0]):
        bus.publish("c", i, priority=p)
    got: list[int] = []
    bus.subscribe("c", lambda m: got.append(m.payload))
    async with bus:
        await until(lambda: len(got) == 8)
    assert got == [1, 3, 7, 5, 0, 4, 2, 6]


async def test_named_priorities_and_default_priority() -> None:
    bus = MessageBus()
    bus.create_channel("c", default_priority=Priority.LOW)
    assert bus.publish("c", 1).priority == 75  # type: ignore[union-attr]
    assert bus.publish("c", 1, priority=Priority.CRITICAL).priority == 0  # type: ignore[union-attr]
    with pytest.raises(InputTypeError, match="'high'"):
        bus.publish("c", 1, priority="high")  # type: ignore[arg-type]


async def test_message_envelope_fields() -> None:
    bus = MessageBus()
    bus.create_channel("c")
    payload = {"big": object()}
    before = time.time()
    msg = bus.publish("c", payload, headers={"trace_id": "t-1", "source": "test"})
    assert msg is not None
    assert msg.payload is payload  # no serialization in-process
    assert msg.channel == "c"
    assert msg.attempt == 1
    assert msg.origin == bus.bus_id
    assert before <= msg.timestamp <= time.time()
    assert msg.trace_id == "t-1"
    assert msg.headers["source"] == "test"
    other = bus.publish("c", 2)
    assert other is not None
    assert other.id != msg.id
    assert other.id.startswith(bus.bus_id)


async def test_broadcast_reaches_every_subscriber(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        a: list[int] = []
        b: list[int] = []

        async def async_handler(m: Message) -> None:
            b.append(m.payload)

        bus.subscribe("c", lambda m: a.append(m.payload))
        bus.subscribe("c", async_handler)
        for i in range(50):
            await bus.publish_async("c", i)
        await until(lambda: len(a) == len(b) == 50)
        assert a == b == list(range(50))
        assert bus.metrics()["c"].delivered == 100


async def test_competing_consumers_share_the_work(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("jobs")
        seen: dict[str, list[int]] = {"x": [], "y": [], "z": []}
        for name in seen:
            bus.subscribe("jobs", lambda m, n=name: seen[n].append(m.payload), group="g")
        async_seen: list[int] = []

        async def other(m: Message) -> None:
            async_seen.append(m.payload)

        bus.subscribe("jobs", other)  # a broadcast subscriber beside the group
        bus.publish_batch("jobs", range(300))
        await until(lambda: sum(map(len, seen.values())) == 300 and len(async_seen) == 300)
        assert sorted(functools.reduce(operator.iadd, seen.values(), [])) == list(range(300))
        assert all(len(v) == 100 for v in seen.values())


async def test_async_group_members_with_concurrency(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("jobs")
        active = 0
        peak = 0
        done: list[int] = []

        async def slow(m: Message) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.005)
            active -= 1
            done.append(m.payload)

        bus.subscribe("jobs", slow, group="g", concurrency=4)
        bus.subscribe("jobs", slow, group="g", concurrency=2)
        for i in range(60):
            await bus.publish_async("jobs", i)
        await until(lambda: len(done) == 60)
        assert sorted(done) == list(range(60))
        assert peak == 6


async def test_sync_handler_with_concurrency_runs_in_threads(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        threads: set[int] = set()
        barrier = threading.Barrier(3, timeout=5)

        def blocking(m: Message) -> None:
            threads.add(threading.get_ident())
            barrier.wait()  # only passes if three handlers run at the same time

        bus.subscribe("c", blocking, concurrency=3)
        bus.publish_batch("c", range(3))
        await until(lambda: bus.metrics()["c"].delivered == 3)
        assert threading.get_ident() not in threads
        assert len(threads) == 3


async def test_wildcard_subscription_includes_later_channels(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("rag.query")
        bus.create_channel("other")
        got: list[str] = []
        bus.subscribe("rag.*", lambda m: got.append(m.channel))
        bus.create_channel("rag.answer")
        bus.publish("rag.query", 1)
        bus.publish("rag.answer", 2)
        bus.publish("other", 3)
        await until(lambda: len(got) == 2)
        assert await bus.drain()  # nothing more arrives
        assert sorted(got) == ["rag.answer", "rag.query"]


async def test_filter_skips_messages_and_counts_filter_errors(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        got: list[int] = []

        def flt(m: Message) -> bool:
            if m.payload == 3:
                raise ValueError("bad filter")
            return bool(m.payload % 2)

        bus.subscribe("c", lambda m: got.append(m.payload), filter=flt)
        bus.publish_batch("c", range(8))
        assert await bus.drain()
        assert got == [1, 5, 7]
        assert bus.metrics()["c"].errors == 1


async def test_retry_with_backoff_then_success(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", max_attempts=3, retry_backoff=0.02)
        attempts: list[tuple[int, float]] = []

        def flaky(m: Message) -> str:
            attempts.append((m.attempt, time.monotonic()))
            if m.attempt < 3:
                raise RuntimeError("transient")
            return "ok"

        bus.subscribe("c", flaky)
        bus.publish("c", "x")
        await until(lambda: bus.metrics()["c"].delivered == 1)
        assert [a for a, _ in attempts] == [1, 2, 3]
        assert attempts[1][1] - attempts[0][1] >= 0.018  # backoff 0.02, then 0.04
        assert attempts[2][1] - attempts[1][1] >= 0.038
        m = bus.metrics()["c"]
        assert (m.retried, m.errors, m.dead_lettered) == (2, 2, 0)


async def test_dead_letter_channel_receives_failed_message(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", max_attempts=2, retry_backoff=0.001, dead_letter="c.dlq")
        dead: list[Message] = []
        bus.subscribe("c.dlq", dead.append)

        async def broken(m: Message) -> None:
            raise ValueError(f"cannot handle {m.payload}")

        bus.subscribe("c", broken, name="broken")
        sent = await bus.publish_async("c", 7, headers={"trace_id": "t7"})
        await until(lambda: len(dead) == 1)
        d = dead[0]
        assert d.payload == 7
        assert d.channel == "c.dlq"
        assert d.headers["dead_letter_error"] == "ValueError: cannot handle 7"
        assert d.headers["dead_letter_subscriber"] == "broken"
        assert d.headers["dead_letter_attempts"] == 2
        assert d.headers["original_id"] == sent.id  # type: ignore[union-attr]
        assert d.trace_id == "t7"
        [record] = bus.dead_letters("c")
        assert record.error == "ValueError: cannot handle 7"
        assert record.subscriber == "broken"
        assert bus.metrics()["c"].dead_lettered == 1


async def test_handler_timeout_counts_as_failure(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", handler_timeout=0.02, max_attempts=1)

        async def hangs(m: Message) -> None:
            await asyncio.sleep(10)

        bus.subscribe("c", hangs)
        bus.publish("c", 1)
        await until(lambda: bus.metrics()["c"].dead_lettered == 1)
        assert "handler_timeout=0.02" in bus.dead_letters()[0].error


async def test_ttl_expires_old_messages(until: Any) -> None:
    bus = MessageBus()
    bus.create_channel("c", ttl=0.3)
    # A message from a peer keeps its envelope: this one was published a second ago.
    await bus.inject(Message("c", "old", timestamp=time.time() - 1.0, origin="peer"))
    bus.publish("c", "fresh")
    got: list[str] = []
    bus.subscribe("c", lambda m: got.append(m.payload))
    async with bus:
        await until(lambda: got == ["fresh"])
        assert bus.metrics()["c"].expired == 1


async def test_request_reply_by_return_value_and_reply() -> None:
    async with MessageBus() as bus:
        bus.create_channel("math")
        bus.create_channel("echo")
        bus.subscribe("math", lambda m: m.payload * 2)

        async def echo(m: Message) -> None:
            bus.reply(m, ("echo", m.payload, m.correlation_id is not None))

        bus.subscribe("echo", echo)
        assert await bus.request("math", 21) == 42
        assert await bus.request("echo", "hi") == ("echo", "hi", True)


async def test_request_timeout_names_channel() -> None:
    async with MessageBus() as bus:
        bus.create_channel("void")
        bus.subscribe("void", lambda m: None)
        with pytest.raises(RequestTimeoutError, match=r"'void' within 0\.05 s"):
            await bus.request("void", 1, timeout=0.05)


async def test_reply_to_plain_message_is_an_error() -> None:
    bus = MessageBus()
    bus.create_channel("c")
    msg = bus.publish("c", 1)
    assert msg is not None
    with pytest.raises(InvalidInputError, match="not a request"):
        bus.reply(msg, 2)


async def test_unsubscribe_stops_delivery_and_requeues_for_next_subscriber(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        first: list[int] = []
        gate = asyncio.Event()

        async def slow(m: Message) -> None:
            first.append(m.payload)
            await gate.wait()

        sub = bus.subscribe("c", slow)
        bus.publish_batch("c", range(10))
        await until(lambda: len(first) == 1)
        sub.unsubscribe()
        gate.set()
        second: list[int] = []
        bus.subscribe("c", lambda m: second.append(m.payload))
        await until(lambda: len(second) == 9)
        assert first == [0]
        assert second == list(range(1, 10))
        assert not sub.active


async def test_subscribe_errors() -> None:
    bus = MessageBus()
    bus.create_channel("c")
    with pytest.raises(ChannelNotFoundError, match="'nope'"):
        bus.subscribe("nope", print)
    with pytest.raises(InputTypeError, match="callable"):
        bus.subscribe("c", 42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="concurrency"):
        bus.subscribe("c", print, concurrency=0)


async def test_dispatch_hooks_wrap_handlers(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", max_attempts=1)
        log: list[tuple[str, Any]] = []
        bus.add_dispatch_hook(
            before=lambda m, s: log.append(("before", m.payload)),
            after=lambda m, s, e: log.append(("after", type(e).__name__ if e else None)),
        )

        def handler(m: Message) -> None:
            if m.payload == 2:
                raise KeyError("x")

        async def ahandler(m: Message) -> None:
            log.append(("async", m.payload))

        bus.subscribe("c", handler)
        bus.publish("c", 1)
        bus.publish("c", 2)
        await until(lambda: len(log) == 4)
        assert log == [("before", 1), ("after", None), ("before", 2), ("after", "KeyError")]
        bus.create_channel("d")
        bus.subscribe("d", ahandler)
        bus.publish("d", 3)
        await until(lambda: len(log) == 7)
        assert log[4:] == [("before", 3), ("async", 3), ("after", None)]


async def test_channel_from_config_and_yaml(tmp_path: Any) -> None:
    path = tmp_path / "bus.yaml"
    path.write_text(
        "channels:\n  - name: a\n    max_size: 5\n    overflow: error\n  - name: b\n"
        "api_keys:\n  k1: [writer]\n"
    )

    bus = MessageBus(BusConfig.from_yaml(path))
    assert bus.channels()["a"] == ChannelConfig(name="a", max_size=5, overflow="error")
    assert set(bus.channels()) == {"a", "b"}
    bus2 = MessageBus({"channels": [{"name": "x"}]})
    assert list(bus2.channels()) == ["x"]


async def test_stop_drains_follow_up_messages_published_by_handlers() -> None:
    bus = MessageBus()
    bus.create_channel("query")
    bus.create_channel("answer")
    answers: list[str] = []

    async def answer(m: Message) -> None:
        await asyncio.sleep(0.001)
        await bus.publish_async("answer", f"re: {m.payload}")

    bus.subscribe("query", answer)
    bus.subscribe("answer", lambda m: answers.append(m.payload))
    await bus.start()
    for i in range(20):
        await bus.publish_async("query", i)
    await bus.stop()
    assert answers == [f"re: {i}" for i in range(20)]
    assert bus.metrics()["query"].dropped == 0


async def test_stop_deadline_counts_undelivered_in_memory_messages(until: Any) -> None:
    bus = MessageBus()
    bus.create_channel("c")
    started: list[int] = []

    async def stuck(m: Message) -> None:
        started.append(m.payload)
        await asyncio.sleep(60)

    bus.subscribe("c", stuck)
    await bus.start()
    bus.publish_batch("c", range(10))
    await until(lambda: started)
    await bus.stop(timeout=0.05)
    m = bus.metrics()["c"]
    assert m.dropped == 9  # the tenth was being handled when the deadline hit
    assert m.delivered == 0


@pytest.mark.parametrize("subscribers", [1, 2])
async def test_urgent_message_overtakes_a_batch_being_handled(subscribers: int, until: Any) -> None:
    bus = MessageBus(BusConfig(prefetch=8))
    bus.create_channel("c")
    order: list[str] = []

    async def slow(m: Message) -> None:
        await asyncio.sleep(0.005)
        order.append(m.payload)

    bus.subscribe("c", slow)
    if subscribers == 2:  # worker mode: only the prefetched inbox can be ahead
        bus.subscribe("c", lambda m: None)
    async with bus:
        for i in range(100):  # one dispatch batch holds them all
            bus.publish("c", f"n{i}")
        await until(lambda: len(order) >= 1)
        before = len(order)
        bus.publish("c", "urgent", priority=Priority.CRITICAL)
        await until(lambda: "urgent" in order)
        # only the message being handled when it arrived (and the inbox) go first
        assert order.index("urgent") <= before + (1 if subscribers == 1 else 8 + 2)
        await bus.stop(timeout=0)


async def test_lone_async_subscriber_with_ttl_hooks_and_retries(until: Any) -> None:
    """The dispatcher's tight loop for one async subscriber also runs ttl and hooks."""
    bus = MessageBus()
    bus.create_channel("c", ttl=0.3, max_attempts=2, dead_letter="c.dlq")
    log: list[tuple[str, Any]] = []
    bus.add_dispatch_hook(
        before=lambda m, s: log.append(("before", m.payload)),
        after=lambda m, s, e: log.append(("after", type(e).__name__ if e else None)),
    )
    await bus.inject(Message("c", "old", timestamp=time.time() - 1.0, origin="peer"))
    bus.publish("c", "ok")
    bus.publish("c", "bad")
    handled: list[str] = []

    async def handler(m: Message) -> None:
        handled.append(m.payload)
        if m.payload == "bad":
            raise ValueError("bad")

    bus.subscribe("c", handler)
    async with bus:
        await until(lambda: bus.metrics()["c"].dead_lettered == 1)
        m = bus.metrics()["c"]
        assert (m.expired, m.delivered, m.retried) == (1, 1, 1)
    assert handled == ["ok", "bad", "bad"]
    assert log == [("before", "ok"), ("after", None), ("before", "bad"), ("after", "ValueError"),
                   ("before", "bad"), ("after", "ValueError")]  # fmt: skip
