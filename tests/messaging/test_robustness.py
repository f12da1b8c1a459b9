"""Probes from outside the happy path: the writer thread, bad input, bad config, secrets,
and the release of files, threads and locks. Real SQLite files throughout; the writer is
patched only to inject faults."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from neuralcore.core import (
    AuthorizationError,
    ConfigError,
    InputTypeError,
    InvalidInputError,
    NeuralcoreError,
    PersistenceError,
    SerializationError,
)
from neuralcore.messaging import BusConfig, ChannelConfig, Message, MessageBus

SECRET = "sk-live-7c1e9d0b"


def _writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "neuralcore-bus-writer"]


async def _durable_bus(tmp_path: Path, **cfg: Any) -> MessageBus:
    bus = MessageBus(BusConfig(**cfg), persistence_path=str(tmp_path / "bus.db"))
    bus.create_channel("p", persistent=True, idempotency_window=60.0, max_attempts=1)
    await bus.start()
    return bus


async def _still_durable(bus: MessageBus) -> None:
    """The writer still commits: a durable publish returns and health says so."""
    msg = await asyncio.wait_for(bus.publish_async("p", "after"), 10)
    assert msg is not None
    health = bus.health()
    assert health.writer == "running"
    assert health.ok, health


# -- the writer thread --------------------------------------------------------------------


async def test_lone_surrogate_idempotency_key_fails_only_its_publish(tmp_path: Path) -> None:
    bus = await _durable_bus(tmp_path)
    with pytest.raises(SerializationError, match="lone surrogate"):
        await bus.publish_async("p", 1, idempotency_key="user-\udcff")
    await _still_durable(bus)
    await bus.stop()


@pytest.mark.parametrize("priority", [2**63, 2**64 - 1, -(2**63) - 1])
async def test_priority_outside_int64_is_refused_up_front(tmp_path: Path, priority: int) -> None:
    bus = await _durable_bus(tmp_path)
    bus.create_channel("mem")
    for channel in ("p", "mem"):
        with pytest.raises(InvalidInputError, match="64-bit"):
            await bus.publish_async(channel, 1, priority=priority)
        with pytest.raises(InvalidInputError, match="64-bit"):
            bus.publish(channel, 1, priority=priority)
    await _still_durable(bus)
    await bus.stop()


async def test_dead_letter_with_lone_surrogate_error_text_is_stored(tmp_path: Path) -> None:
    bus = await _durable_bus(tmp_path)
    failed = asyncio.Event()

    def handler(m: Message) -> None:
        if m.payload == "bad":
            failed.set()
            raise ValueError("broken \udcff text")

    bus.subscribe("p", handler)
    await bus.publish_async("p", "bad")
    await asyncio.wait_for(failed.wait(), 10)
    assert await bus.drain()
    await _still_durable(bus)
    await bus.stop()
    with MessageBus(persistence_path=str(tmp_path / "bus.db")) as again:
        again.create_channel("p", persistent=True)
        [dead] = again.dead_letters("p")
    assert dead.error == "ValueError: broken \\udcff text"  # escaped, not lost


def _store(bus: MessageBus) -> Any:
    """The bus's SQLite store, for fault injection only: a writer that raises or stalls
    cannot be caused through the public API, so these tests reach it here, and only here."""
    journal = bus._journal
    assert journal is not None
    return journal.store


# "process": loop publishers commit on their loop; "power": through the writer thread.
WRITERS = pytest.mark.parametrize(
    ("durability", "method"), [("process", "_commit_rows"), ("power", "_write")]
)


@WRITERS
async def test_any_writer_exception_fails_only_the_calls_that_joined_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str, method: str
) -> None:
    bus = await _durable_bus(tmp_path, durability=durability)
    store = _store(bus)
    original = getattr(store, method)
    calls = 0

    def once_broken(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OverflowError("injected")
        return original(*args, **kwargs)

    monkeypatch.setattr(store, method, once_broken)
    with pytest.raises(PersistenceError, match="injected"):
        await bus.publish_async("p", "lost")
    await _still_durable(bus)
    await bus.stop()


async def test_wait_on_a_stuck_writer_times_out_with_a_truthful_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = await _durable_bus(tmp_path, commit_timeout=0.3, durability="power")
    store = _store(bus)
    original = store._write
    release = threading.Event()

    def stuck(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "_write", stuck)
    try:
        with pytest.raises(PersistenceError, match=r"not durable after 0\.3 s \(writer thread"):
            await bus.publish_async("p", 1)
        with pytest.raises(PersistenceError, match=r"not durable after 0\.3 s"):
            await asyncio.to_thread(bus.publish, "p", 2)  # the sync path, from a thread
    finally:
        release.set()
    await bus.stop()


async def test_loop_commit_behind_a_stuck_writer_times_out_with_a_truthful_error(
    tmp_path: Path,
) -> None:
    bus = await _durable_bus(tmp_path, commit_timeout=0.3)
    lock = _store(bus)._db  # the writer thread holds it while it writes
    held, release = threading.Event(), threading.Event()

    def stuck_writer() -> None:
        with lock:
            held.set()
            release.wait(30)

    thread = threading.Thread(target=stuck_writer)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(PersistenceError, match=r"not durable after 0\.3 s"):
            await bus.publish_async("p", 1)
    finally:
        release.set()
        thread.join()
    await _still_durable(bus)
    await bus.stop()


# -- bad input: clear errors, never a raw UnicodeEncodeError or RecursionError ------------


def _deep(n: int) -> Any:
    out: Any = []
    for _ in range(n):
        out = [out]
    return out


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"headers": ["a"]}, InputTypeError),
        ({"headers": "a=1"}, InputTypeError),
        ({"headers": {1: "x"}}, InputTypeError),
        ({"idempotency_key": ["k"]}, InputTypeError),
        ({"priority": "high"}, InputTypeError),
    ],
)
def test_publish_with_malformed_arguments_names_them(kwargs: dict[str, Any], error: type) -> None:
    bus = MessageBus()
    bus.create_channel("a", idempotency_window=5.0)
    with pytest.raises(error) as info:
        bus.publish("a", 1, **kwargs)
    assert isinstance(info.value, NeuralcoreError)


@pytest.mark.parametrize(
    ("payload", "headers", "match"),
    [
        ("x\udcff", None, "surrogate"),
        (1, {"h": "x\udcff"}, "surrogate"),
        (_deep(100_000), None, "nested deeper"),
        ({"tags": {"a", "b"}}, None, "set"),
        (frozenset({1}), None, "frozenset"),
    ],
    ids=["payload-surrogate", "header-surrogate", "deep", "set", "frozenset"],
)
async def test_unencodable_payloads_raise_serialization_error_on_persistent_channels(
    tmp_path: Path, payload: Any, headers: dict[str, Any] | None, match: str
) -> None:
    bus = await _durable_bus(tmp_path)
    with pytest.raises(SerializationError, match=match):
        await bus.publish_async("p", payload, headers=headers)
    with pytest.raises(SerializationError, match=match):
        bus.publish("p", payload, headers=headers)
    await _still_durable(bus)
    await bus.stop()


async def test_set_payload_on_memory_channel_is_delivered_as_is(until) -> None:  # type: ignore[no-untyped-def]
    got: list[Any] = []
    async with MessageBus() as bus:
        bus.create_channel("m")
        bus.subscribe("m", lambda m: got.append(m.payload))
        await bus.publish_async("m", {1, 2})
        await until(lambda: got)
    assert got == [{1, 2}]  # in-process delivery never encodes


# -- configuration ------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("drain_timeout", NAN),
        ("drain_timeout", INF),
        ("block_timeout", NAN),
        ("block_timeout", -1.0),
        ("commit_timeout", 0.0),
        ("commit_timeout", INF),
        ("retention_seconds", NAN),
        ("max_message_size", 2**40),
        ("prefetch", 10**9),
        ("batch_size", 0),
        ("metrics_sample_every", 10**12),
        ("retention_count", -1),
    ],
)
def test_bus_config_rejects_non_finite_and_absurd_numbers(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        BusConfig(**{field: value})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_limit", NAN),
        ("rate_limit", INF),
        ("rate_limit", 0.0),
        ("rate_burst", 10**12),
        ("max_size", 10**12),
        ("max_attempts", 10**9),
        ("default_priority", 2**63),
        ("idempotency_window", NAN),
        ("ttl", INF),
        ("handler_timeout", NAN),
        ("retry_backoff", NAN),
        ("retry_backoff_max", INF),
    ],
)
def test_channel_config_rejects_non_finite_and_absurd_numbers(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ChannelConfig(name="c", **{field: value})
    assert info.value.field == field


async def test_stop_returns_with_nan_free_drain_timeout() -> None:
    # drain_timeout=nan used to be accepted and made stop() hang; now it cannot be set.
    with pytest.raises(ConfigError, match="drain_timeout"):
        MessageBus(BusConfig(drain_timeout=NAN))


# -- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: BusConfig(api_keys={SECRET: 5}),  # type: ignore[dict-item]
        lambda: BusConfig(api_keys={SECRET: [1]}),  # type: ignore[list-item]
        lambda: BusConfig(api_keys=[SECRET]),  # type: ignore[arg-type]
        lambda: BusConfig.from_dict({"api_keys": {SECRET: 5}}),
        lambda: BusConfig.from_dict({"api_keys": {SECRET: [None]}}),
        lambda: BusConfig.from_dict({"api_keys": SECRET}),
        lambda: BusConfig.from_yaml(f"api_keys:\n  {SECRET}: 3\n"),
    ],
)
def test_config_errors_never_show_an_api_key(make: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.value)
    assert info.value.field == "api_keys"


async def test_api_keys_never_appear_in_reprs_errors_or_logs(caplog: Any) -> None:
    cfg = BusConfig(api_keys={SECRET: ("ops",)})
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg)
    with caplog.at_level(logging.DEBUG):
        async with MessageBus(cfg) as bus:
            bus.create_channel("ops", allow_publish=("ops",), allow_subscribe=("ops",))
            bus.create_channel("admin", allow_publish=("admin",), allow_subscribe=("admin",))
            sub = bus.subscribe("*", lambda m: None, auth=SECRET)  # admin: not attached
            texts = [repr(sub), repr(bus.channels()), repr(bus.health())]
            for call in (
                lambda: bus.publish("admin", 1, auth=SECRET),
                lambda: bus.subscribe("admin", print, auth=SECRET),
                lambda: bus.tap("admin", print, auth=SECRET),
                lambda: bus.dead_letters("admin", auth=SECRET),
            ):
                with pytest.raises(AuthorizationError) as info:
                    call()
                texts.append(str(info.value))
            bus.create_channel("admin.late", allow_subscribe=("admin",))  # logs a refusal
    texts.append(caplog.text)
    assert "not authorized" in caplog.text
    assert all(SECRET not in t for t in texts)


# -- resources ----------------------------------------------------------------------------


def test_close_releases_thread_and_file_lock(tmp_path: Path) -> None:
    db = str(tmp_path / "bus.db")
    before = len(_writers())
    bus = MessageBus(persistence_path=db)
    assert len(_writers()) == before + 1
    bus.close()
    bus.close()  # idempotent
    assert len(_writers()) == before
    MessageBus(persistence_path=db).close()  # the exclusive lock is free again


def test_with_block_closes_the_bus(tmp_path: Path) -> None:
    db = str(tmp_path / "bus.db")
    with MessageBus(persistence_path=db) as bus:
        bus.create_channel("p", persistent=True)
        bus.publish("p", 1)
    with MessageBus(persistence_path=db) as again:
        again.create_channel("p", persistent=True)
        assert again.metrics()["p"].queue_depth == 1


async def test_async_with_stops_and_releases_the_file(tmp_path: Path) -> None:
    db = str(tmp_path / "bus.db")
    before = len(_writers())
    async with MessageBus(persistence_path=db) as bus:
        bus.create_channel("p", persistent=True)
    assert len(_writers()) == before
    MessageBus(persistence_path=db).close()


def test_dropped_bus_is_finalised(tmp_path: Path) -> None:
    db = str(tmp_path / "bus.db")
    before = len(_writers())
    bus = MessageBus(persistence_path=db)
    bus.create_channel("p", persistent=True)
    bus.publish("p", 1)
    del bus
    gc.collect()
    assert len(_writers()) == before
    with MessageBus(persistence_path=db) as again:  # lock released, message kept
        again.create_channel("p", persistent=True)
        assert again.metrics()["p"].queue_depth == 1


def test_failed_constructor_releases_the_file(tmp_path: Path) -> None:
    db = str(tmp_path / "bus.db")
    before = len(_writers())
    bad = BusConfig(
        channels=(
            ChannelConfig(name="a", persistent=True, dead_letter="b"),  # makes "b"...
            ChannelConfig(name="b", persistent=True),  # ...so this one is a duplicate
        )
    )
    with pytest.raises(ConfigError, match="already exists"):
        MessageBus(bad, persistence_path=db)
    assert len(_writers()) == before
    MessageBus(persistence_path=db).close()


@pytest.mark.parametrize(
    "call",
    [
        lambda bus: bus.publish(["c"], 1),  # unhashable channel
        lambda bus: bus.publish("c", 1, priority=_deep(5_000)),  # repr would recurse
        lambda bus: bus.publish("c", 1, headers=memoryview(b"x")),  # not a mapping
        lambda bus: bus.subscribe(["c"], print),
        lambda bus: bus.subscribe({"c": 1}, print),
    ],
    ids=["channel-list", "priority-deep", "headers-buffer", "subscribe-list", "subscribe-dict"],
)
def test_unusual_argument_types_give_input_type_errors(call: Any) -> None:
    bus = MessageBus()
    bus.create_channel("c")
    with pytest.raises(InputTypeError):
        call(bus)


@pytest.mark.parametrize("timeout", ["1", True, float("nan"), -1.0, 0, 1e9])
async def test_request_timeout_must_be_a_sane_number(timeout: Any) -> None:
    async with MessageBus() as bus:
        bus.create_channel("c")
        bus.subscribe("c", lambda m: "answer")
        with pytest.raises(NeuralcoreError, match="timeout"):
            await bus.request("c", 1, timeout=timeout)
        assert await bus.request("c", 1, timeout=5) == "answer"


async def test_a_failed_background_task_is_logged_and_shown_in_health(
    monkeypatch: pytest.MonkeyPatch, caplog: Any, until: Any
) -> None:
    # Fault injection needs the private class: a dispatcher bug cannot be caused from the
    # public API (that is the point of the test).
    from neuralcore.messaging._channel import Channel

    async def broken(self: Channel, batch: list[Message], loop: Any) -> None:
        raise RuntimeError("dispatcher bug")

    monkeypatch.setattr(Channel, "deliver", broken)  # fault injection: a dispatcher bug
    async with MessageBus() as bus:
        bus.create_channel("c")
        bus.subscribe("c", lambda m: None)
        assert bus.health().ok
        with caplog.at_level(logging.ERROR):
            bus.publish("c", 1)
            await until(lambda: not bus.health().ok)
        health = bus.health()
        assert any("dispatcher bug" in t for t in health.failed_tasks), health
        assert "dispatcher bug" in caplog.text
        assert "neuralcore_bus_failed_tasks_total 1" in bus.metrics_text()
        assert await bus.drain(timeout=30) is False  # at once: nobody will empty the queue


async def test_stop_ends_every_background_task_of_the_bus() -> None:
    """Dispatchers, workers and dead-letter forwards all belong to the bus's supervisor:
    after ``stop()`` none of them is left running."""
    hold = asyncio.Event()

    async def slow(m: Message) -> None:
        await hold.wait()

    def bad(m: Message) -> None:
        raise ValueError("no")

    bus = MessageBus()
    bus.create_channel("work")
    bus.create_channel("fail", max_attempts=1, dead_letter="dlq")
    bus.subscribe("work", slow, concurrency=3)
    bus.subscribe("fail", bad)
    async with bus:
        for i in range(5):
            await bus.publish_async("work", i)
        await bus.publish_async("fail", 0)
        ours = [t for t in asyncio.all_tasks() if t.get_name().startswith("bus:")]
        assert len(ours) >= 5  # 3 dispatchers (work, fail, dlq) + 3 workers
        await bus.stop(timeout=0.05)
    assert all(t.done() for t in ours)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("bus:")]
    assert bus.health().failed_tasks == ()  # cancelled at stop is not a failure


async def test_close_from_another_thread_ends_the_running_bus_tasks(until: Any) -> None:
    bus = MessageBus()
    bus.create_channel("c")
    bus.subscribe("c", lambda m: None, concurrency=2)
    await bus.start()
    ours = [t for t in asyncio.all_tasks() if t.get_name().startswith("bus:")]
    assert ours
    await asyncio.to_thread(bus.close)  # cancels through the loop, not across threads
    await until(lambda: all(t.done() for t in ours))
    assert not bus.health().running
    assert bus.health().failed_tasks == ()
