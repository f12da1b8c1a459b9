"""Publishing: errors, overflow policies, backpressure, threads, batches, limits, auth, hooks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from neuralcore.core import (
    AuthorizationError,
    BusClosedError,
    ChannelNotFoundError,
    ConfigError,
    InputTypeError,
    InvalidInputError,
    QueueFullError,
    RateLimitedError,
)
from neuralcore.messaging import BusConfig, ChannelConfig, Message, MessageBus


def test_missing_channel_names_it() -> None:
    bus = MessageBus()
    bus.create_channel("known")
    with pytest.raises(ChannelNotFoundError, match=r"no channel 'nope' \(known: known\)"):
        bus.publish("nope", 1)


async def test_closed_bus_refuses_publish() -> None:
    bus = MessageBus()
    bus.create_channel("c")
    await bus.start()
    await bus.stop()
    with pytest.raises(BusClosedError, match="stopped"):
        bus.publish("c", 1)
    with pytest.raises(BusClosedError):
        await bus.publish_async("c", 1)
    with pytest.raises(BusClosedError, match="create a new MessageBus"):
        await bus.start()


def test_duplicate_channel_and_bad_settings() -> None:
    bus = MessageBus()
    bus.create_channel("c")
    with pytest.raises(ConfigError, match="already exists"):
        bus.create_channel("c")
    with pytest.raises(ConfigError, match="'max_size' = 0"):
        bus.create_channel("d", max_size=0)
    with pytest.raises(ConfigError, match="persistence_path"):
        bus.create_channel("p", persistent=True)
    with pytest.raises(ConfigError, match="not both"):
        bus.create_channel(ChannelConfig(name="e"), max_size=3)


def test_overflow_error_raises_with_channel_and_size() -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=3, overflow="error")
    for i in range(3):
        bus.publish("c", i)
    with pytest.raises(
        QueueFullError, match=r"'c' is full \(3 messages queued; overflow='error'\)"
    ):
        bus.publish("c", 3)
    assert bus.metrics()["c"].queue_depth == 3


async def test_overflow_drop_new_keeps_the_first(until: Any) -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=3, overflow="drop_new")
    results = [bus.publish("c", i) for i in range(5)]
    assert [r is None for r in results] == [False, False, False, True, True]
    got: list[int] = []
    bus.subscribe("c", lambda m: got.append(m.payload))
    async with bus:
        await until(lambda: len(got) == 3)
    assert got == [0, 1, 2]
    assert bus.metrics()["c"].dropped == 2


async def test_overflow_drop_oldest_evicts_least_urgent_oldest(until: Any) -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=3, overflow="drop_oldest")
    bus.publish("c", "n1", priority=50)
    bus.publish("c", "crit", priority=0)
    bus.publish("c", "n2", priority=50)
    assert bus.publish("c", "n3", priority=50) is not None  # evicts n1
    assert bus.publish("c", "bg", priority=100) is None  # itself the least urgent: dropped
    assert bus.publish("c", "crit2", priority=0) is not None  # evicts n2
    got: list[str] = []
    bus.subscribe("c", lambda m: got.append(m.payload))
    async with bus:
        await until(lambda: len(got) == 3)
    assert got == ["crit", "crit2", "n3"]
    assert bus.metrics()["c"].dropped == 3


async def test_overflow_block_waits_for_room_async(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", max_size=2, overflow="block")
        gate = asyncio.Event()
        got: list[int] = []

        async def slow(m: Message) -> None:
            await gate.wait()
            got.append(m.payload)

        bus.subscribe("c", slow)
        bus.config  # noqa: B018 - prefetch 64 absorbs messages: fill beyond it
        published: list[int] = []

        async def producer() -> None:
            for i in range(100):
                await bus.publish_async("c", i)
                published.append(i)

        task = asyncio.create_task(producer())
        await until(lambda: bus.metrics()["c"].queue_depth == 2)  # full: producer waits
        for _ in range(20):
            await asyncio.sleep(0)  # it stays blocked however often the loop turns
        assert len(published) < 100  # blocked: queue 2 + inbox prefetch
        assert bus.metrics()["c"].queue_depth <= 2
        gate.set()
        await task
        await until(lambda: len(got) == 100)
        assert got == list(range(100))


async def test_overflow_block_times_out() -> None:
    bus = MessageBus(BusConfig(block_timeout=0.05))
    bus.create_channel("c", max_size=1)
    async with bus:
        await bus.publish_async("c", 1)  # nobody subscribed: it stays queued
        t0 = time.monotonic()
        with pytest.raises(QueueFullError, match=r"still full after waiting 0\.05 s"):
            await bus.publish_async("c", 2)
        assert time.monotonic() - t0 >= 0.045
        with pytest.raises(QueueFullError, match="event loop thread"):
            bus.publish("c", 3)


async def test_publish_from_other_threads(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", max_size=10)
        got: list[tuple[int, int]] = []
        bus.subscribe("c", lambda m: got.append(m.payload))

        def worker(t: int) -> None:
            for i in range(200):
                bus.publish("c", (t, i))  # blocks when full: backpressure across threads

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        await until(lambda: len(got) == 800, timeout=20)
        for th in threads:
            await asyncio.to_thread(th.join)
        for t in range(4):
            assert [i for tt, i in got if tt == t] == list(range(200))


async def test_publish_from_thread_blocks_then_times_out() -> None:
    bus = MessageBus(BusConfig(block_timeout=0.05))
    bus.create_channel("c", max_size=1)
    async with bus:
        await bus.publish_async("c", 1)
        with pytest.raises(QueueFullError, match="still full"):
            await asyncio.to_thread(bus.publish, "c", 2)


async def test_batch_publish(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        got: list[int] = []
        bus.subscribe("c", lambda m: got.append(m.payload))
        msgs = await bus.publish_batch_async("c", range(5), priority=10, headers={"k": 1})
        assert [m.priority for m in msgs if m] == [10] * 5
        await until(lambda: got == list(range(5)))
        made = bus.publish_batch("c", "ab", headers={"k": 1})
        assert [m.headers for m in made if m] == [{"k": 1}, {"k": 1}]
        first, second = made
        assert first is not None
        assert second is not None
        first.headers["k"] = 2  # each message has its own copy of the headers
        assert second.headers == {"k": 1}
        assert len({m.id for m in [*msgs, *made] if m}) == 7
        with pytest.raises(InvalidInputError, match="priority"):
            bus.publish_batch("c", range(3), priority=2**63)
        with pytest.raises(InputTypeError, match="header names must be str"):
            bus.publish_batch("c", range(3), headers={1: "x"})
        await until(lambda: got == [*range(5), "a", "b"])
        assert bus.metrics()["c"].published == 7
    with pytest.raises(BusClosedError):
        bus.publish_batch("c", range(3))


def test_rate_limit_token_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]  # the bucket refills by time.monotonic(): a fake clock, no sleep
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    bus = MessageBus()
    bus.create_channel("c", rate_limit=2.0, rate_burst=3)
    for i in range(3):
        bus.publish("c", i)
    with pytest.raises(RateLimitedError, match=r"'c' is limited to 2.0/s \(burst 3\)"):
        bus.publish("c", 3)
    now[0] += 0.45  # not yet: one token per 500 ms
    with pytest.raises(RateLimitedError):
        bus.publish("c", 3)
    now[0] += 0.1
    bus.publish("c", 4)
    assert bus.metrics()["c"].published == 4


def test_idempotency_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000.0]  # the window follows time.time(): a fake clock, no sleep
    monkeypatch.setattr(time, "time", lambda: now[0])
    bus = MessageBus()
    bus.create_channel("c", idempotency_window=0.5)
    first = bus.publish("c", 1, idempotency_key="order-1")
    assert first is not None
    assert bus.publish("c", 1, idempotency_key="order-1") is None
    assert bus.publish("c", 2, idempotency_key="order-2") is not None
    now[0] += 0.55
    assert bus.publish("c", 1, idempotency_key="order-1") is not None
    m = bus.metrics()["c"]
    assert (m.published, m.duplicates) == (3, 1)
    bus.create_channel("plain")
    with pytest.raises(InvalidInputError, match="no idempotency_window"):
        bus.publish("plain", 1, idempotency_key="k")


def test_failed_publish_does_not_burn_the_idempotency_key() -> None:
    bus = MessageBus()
    bus.create_channel("c", idempotency_window=60, max_size=1, overflow="error")
    bus.publish("c", 0)
    with pytest.raises(QueueFullError):
        bus.publish("c", 1, idempotency_key="k")
    bus.create_channel("d", idempotency_window=60)
    assert bus.publish("d", 1, idempotency_key="k") is not None


async def test_authorization_by_api_key_roles() -> None:
    cfg = BusConfig(api_keys={"key-w": ("writer",), "key-r": ("reader",), "key-a": ("admin",)})
    bus = MessageBus(cfg)
    bus.create_channel("secure", allow_publish=("writer", "admin"), allow_subscribe=("reader",))
    bus.create_channel("any", allow_publish=("*",))
    assert bus.publish("secure", 1, auth="key-w") is not None
    with pytest.raises(
        AuthorizationError, match=r"publish on channel 'secure' denied for roles \['reader'\]"
    ):
        bus.publish("secure", 1, auth="key-r")
    with pytest.raises(AuthorizationError, match="no API key"):
        await bus.publish_async("secure", 1)
    with pytest.raises(AuthorizationError, match="unknown API key"):
        bus.publish("any", 1, auth="stolen")
    assert bus.publish("any", 1, auth="key-r") is not None
    with pytest.raises(AuthorizationError, match="subscribe on channel 'secure'"):
        bus.subscribe("secure", print, auth="key-w")
    bus.subscribe("secure", print, auth="key-r")
    assert bus.metrics()["secure"].denied == 3
    assert bus.metrics()["any"].denied == 1


def test_error_messages_do_not_echo_the_key() -> None:
    bus = MessageBus(BusConfig(api_keys={"s3cr3t": ("reader",)}))
    bus.create_channel("c", allow_publish=("writer",))
    with pytest.raises(AuthorizationError) as info:
        bus.publish("c", 1, auth="s3cr3t")
    assert "s3cr3t" not in str(info.value)


async def test_publish_hooks_validate_and_transform(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")

        def validate(m: Message) -> Message:
            if not isinstance(m.payload, dict):
                raise ValueError(f"payload must be a dict, got {m.payload!r}")
            m.headers["validated"] = True
            return m

        bus.add_publish_hook(validate)
        got: list[Message] = []
        bus.subscribe("c", got.append)
        bus.publish("c", {"a": 1})
        with pytest.raises(ValueError, match="got 5"):
            bus.publish("c", 5)
        await until(lambda: len(got) == 1)
        assert got[0].headers["validated"] is True
        assert bus.metrics()["c"].errors == 1
        bus.add_publish_hook(lambda m: "oops")  # type: ignore[arg-type,return-value]
        with pytest.raises(InputTypeError, match="returned str"):
            bus.publish("c", {"a": 2})


async def test_metrics_and_prometheus_text(until: Any) -> None:
    async with MessageBus(BusConfig(metrics_sample_every=1)) as bus:
        bus.create_channel("c", max_attempts=1)

        def h(m: Message) -> None:
            if m.payload == 0:
                raise RuntimeError("boom")

        bus.subscribe("c", h)
        bus.publish_batch("c", range(4))
        await until(lambda: bus.metrics()["c"].delivered == 3)
        m = bus.metrics()["c"]
        assert (m.published, m.delivered, m.errors, m.dead_lettered, m.queue_depth) == (
            4,
            3,
            1,
            1,
            0,
        )
        assert m.handler_latency.samples == 4  # every call, failures included
        text = bus.metrics_text()
        assert 'neuralcore_bus_published_total{channel="c"} 4' in text
        assert 'neuralcore_bus_dead_lettered_total{channel="c"} 1' in text
        assert 'neuralcore_bus_handler_latency_seconds_count{channel="c"} 4' in text
        assert "# TYPE neuralcore_bus_handler_latency_seconds histogram" in text


def test_batch_respects_the_overflow_policy() -> None:
    bus = MessageBus()
    bus.create_channel("err", max_size=3, overflow="error")
    bus.create_channel("new", max_size=3, overflow="drop_new")
    bus.create_channel("old", max_size=3, overflow="drop_oldest")
    with pytest.raises(QueueFullError, match="room for 3 of a batch of 5"):
        bus.publish_batch("err", range(5))
    assert bus.metrics()["err"].queue_depth == 0  # all or nothing
    kept = bus.publish_batch("new", range(5))
    assert [m.payload if m else None for m in kept] == [0, 1, 2, None, None]
    bus.publish_batch("old", range(5))
    m = bus.metrics()
    assert (m["new"].dropped, m["old"].dropped, m["old"].queue_depth) == (2, 2, 3)


async def test_async_batch_waits_for_room_chunk_by_chunk(until: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c", max_size=4)
        got: list[int] = []

        async def slow(m: Message) -> None:
            await asyncio.sleep(0.001)
            got.append(m.payload)

        bus.subscribe("c", slow)
        depths: list[int] = []
        bus.tap("c", lambda m: depths.append(bus.metrics()["c"].queue_depth))
        await bus.publish_batch_async("c", range(40))
        await until(lambda: len(got) == 40)
        assert got == list(range(40))
        assert max(depths) <= 4


def test_threads_publishing_before_start_are_serialised() -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=100_000)

    def worker(t: int) -> None:
        for i in range(2000):
            bus.publish("c", (t, i), priority=(t + i) % 3)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert bus.metrics()["c"].queue_depth == 8000
    items: list[Any] = []
    bus.subscribe("c", lambda m: items.append(m.payload))

    async def consume() -> None:
        async with bus:
            assert await bus.drain()

    asyncio.run(consume())
    assert len(items) == 8000
    assert sorted(items) == sorted((t, i) for t in range(4) for i in range(2000))


@pytest.mark.parametrize("way", ["publish", "publish_async"])
async def test_every_checked_publish_path_applies_the_same_features(way: str) -> None:
    """``publish`` (the general pipeline) and ``publish_async`` on an in-memory channel
    (its one-call checked path) give the same answers for every feature."""
    bus = MessageBus(BusConfig(api_keys={"w": ("writer",), "r": ("reader",)}))
    bus.create_channel(
        "c", allow_publish=("writer",), rate_limit=1e-3, rate_burst=4, idempotency_window=60
    )
    bus.add_publish_hook(lambda m: (m.headers.__setitem__("seen", True), m)[1])
    seen: list[Message] = []
    tap = bus.tap("c", seen.append, auth="r")

    async def send(payload: Any, **kw: Any) -> Message | None:
        if way == "publish":
            return bus.publish("c", payload, **kw)
        return await bus.publish_async("c", payload, **kw)

    async with bus:
        with pytest.raises(AuthorizationError, match="denied for no API key"):
            await send(0)
        with pytest.raises(AuthorizationError, match=r"denied for roles \['reader'\]"):
            await send(0, auth="r")
        with pytest.raises(InvalidInputError, match="outside the signed 64-bit range"):
            await send(0, auth="w", priority=2**63)
        first = await send(1, auth="w", idempotency_key="k", priority=3)
        assert first is not None
        assert first.priority == 3
        assert first.headers["seen"] is True
        assert await send(1, auth="w", idempotency_key="k") is None  # a duplicate
        assert await send(2, auth="w") is not None
        with pytest.raises(RateLimitedError, match=r"'c' is limited"):
            await send(3, auth="w")
        assert [m.payload for m in seen] == [1, 2]
        m = bus.metrics()["c"]
        assert (m.published, m.duplicates, m.denied, m.dropped, m.queue_depth) == (2, 1, 2, 1, 2)
        tap.close()


async def test_api_keys_deny_by_default_on_a_running_bus() -> None:
    """With ``api_keys`` set, a channel without ``allow_publish`` still needs a known
    key once the bus runs (the unchecked fast path was taken before)."""
    async with MessageBus(BusConfig(api_keys={"k": ("app",)})) as bus:
        bus.create_channel("plain")
        with pytest.raises(AuthorizationError, match="no API key"):
            bus.publish("plain", 1)
        with pytest.raises(AuthorizationError, match="no API key"):
            await bus.publish_async("plain", 1)
        assert await bus.publish_async("plain", 1, auth="k") is not None


async def test_publish_hook_that_fills_the_channel_makes_publish_async_wait(until: Any) -> None:
    """A publish hook that publishes to the same channel can take its last place: the
    message being published then waits for room like any other (``block``)."""
    async with MessageBus() as bus:
        bus.create_channel("c", max_size=2, overflow="block")
        bus.create_channel("side")
        filled = []

        def hook(m: Message) -> Message:
            if m.payload == "trigger" and not filled:
                filled.append(bus.publish("c", "from-hook"))
            return m

        bus.add_publish_hook(hook)
        assert await bus.publish_async("c", "first") is not None
        task = asyncio.create_task(bus.publish_async("c", "trigger"))
        await until(lambda: bool(filled))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        assert bus.metrics()["c"].queue_depth == 2
        got: list[Any] = []
        bus.subscribe("c", lambda m: got.append(m.payload))
        assert (await task) is not None
        await until(lambda: len(got) == 3)
        assert got == ["first", "from-hook", "trigger"]


async def test_fast_path_sets_every_slot_of_the_message() -> None:
    # publish() and publish_async() build the envelope inline (no call): a slot they
    # forget would raise AttributeError later, in a handler or a bridge.
    bus = MessageBus()
    bus.create_channel("c")
    async with bus:
        made = [bus.publish("c", 1), await bus.publish_async("c", 2)]
        for msg in made:
            assert msg is not None
            unset = [s for s in Message.__slots__ if s != "_tapped" and not hasattr(msg, s)]
            assert unset == []
            assert (msg.attempt, msg.origin, msg.headers) == (1, bus.bus_id, {})
            assert msg.id.startswith(bus.bus_id)
            assert abs(msg.timestamp - time.time()) < 60
        assert made[0].id != made[1].id


async def test_a_burst_of_awaited_publishes_is_handled_while_it_is_published(
    until: Any,
) -> None:
    # The publisher never waits for room here (max_size 10,000), yet the subscriber
    # runs during the loop: a burst does not pile up until the channel is full.
    async with MessageBus() as bus:
        bus.create_channel("c")
        got: list[int] = []

        async def handler(m: Message) -> None:
            got.append(m.payload)

        bus.subscribe("c", handler)
        seen_mid_burst = -1
        for i in range(3000):
            await bus.publish_async("c", i)
            if i == 2000:
                seen_mid_burst = len(got)
        assert seen_mid_burst > 1000
        await until(lambda: len(got) == 3000)
        assert got == list(range(3000))
