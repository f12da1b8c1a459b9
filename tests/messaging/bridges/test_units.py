"""Bridge pieces without a server: config, backoff, buffer and spill file, public names."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from neuralcore.core import ConfigError, InputTypeError, InvalidInputError
from neuralcore.messaging import MessageBus, MsgpackCodec
from neuralcore.messaging.bridges import (
    BridgeConfig,
    BridgeState,
    KafkaBridge,
    KafkaBridgeConfig,
    MemoryBridge,
    MemoryBroker,
    RedisBridge,
    RedisBridgeConfig,
)
from neuralcore.messaging.bridges import __all__ as exported
from neuralcore.messaging.bridges._state import Backoff  # a pure unit: no public seam
from neuralcore.messaging.bridges.memory import MemoryTransport


def test_public_names_pinned() -> None:
    assert exported == (
        "BridgeConfig", "BridgeHealth", "BridgeMetrics", "BridgeRunner", "BridgeState",
        "BusPort", "Direction", "DurablePort", "FatalBridgeError", "KafkaBridge",
        "KafkaBridgeConfig", "Link", "MemoryBridge", "MemoryBroker", "RedisBridge",
        "RedisBridgeConfig", "Transport",
    )  # fmt: skip


def test_import_is_cheap() -> None:
    code = (
        "import sys, neuralcore.messaging.bridges as b\n"
        "print(any(m.split('.')[0] in ('redis', 'confluent_kafka') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("field", "value"),
    [("channels", ()), ("batch_size", 0), ("reconnect_jitter", 2.0), ("direction", "sideways"),
     ("url", "http://x"), ("url", "redis://user:pw@host:1/0"), ("maxlen", -1)],
)  # fmt: skip
def test_redis_config_rejects_bad_fields(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        RedisBridgeConfig.from_dict({field: value})
    assert info.value.field == field
    assert "pw@" not in str(info.value)


def test_kafka_config_validates_and_redacts() -> None:
    cfg = KafkaBridgeConfig.from_dict({
        "bootstrap": "127.0.0.1:1", "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
        "sasl_username": "u", "sasl_password": "pa55-word", "channels": ["a.*"],
    })  # fmt: skip
    assert cfg.channels == ("a.*",)
    assert "pa55-word" not in repr(cfg)
    assert cfg.redacted()["sasl_password"] == "***"
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        KafkaBridgeConfig(sasl_mechanism="PLAIN")


def test_channel_selection_and_direction() -> None:
    cfg = RedisBridgeConfig(channels=("orders.*", "audit"), direction="in")
    assert cfg.matches("orders.new")
    assert cfg.matches("audit")
    assert not cfg.matches("orders")
    assert not cfg.matches("auditx")
    assert cfg.receives
    assert not cfg.sends
    bridge = RedisBridge(cfg)
    assert (bridge.direction, bridge.state) == ("inbound", BridgeState.STOPPED)
    assert KafkaBridge("h:1", direction="out").direction == "outbound"


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    b = Backoff(0.02, 0.4, jitter=0.5)
    delays = [b.next() for _ in range(10)]
    assert all(0.01 <= d <= 0.4 for d in delays)
    assert max(delays[6:]) <= 0.4
    assert min(delays[6:]) >= 0.2
    b.reset()
    assert b.next() <= 0.02


async def _memory_bus(broker: MemoryBroker, **cfg: Any) -> tuple[MessageBus, MemoryBridge]:
    bus = MessageBus()
    bus.create_channel("c")
    config = BridgeConfig(channels=("c",), direction="out", reconnect_initial_s=0.001,
                          reconnect_max_s=0.01, health_interval_s=0.01, **cfg)  # fmt: skip
    bridge = MemoryBridge(broker, config)
    await bus.add_bridge(bridge)
    await bus.start()
    return bus, bridge


async def _away(broker: MemoryBroker, bridge: MemoryBridge) -> None:
    broker.down = True
    async with asyncio.timeout(5):
        while bridge.state is not BridgeState.RECONNECTING:
            await asyncio.sleep(0.002)


def _sent(broker: MemoryBroker) -> list[int]:
    return [MsgpackCodec().decode(data).payload for _, data in broker.streams.get("c", [])]


def _rows(path: Path) -> int:
    """Messages kept in the spill file (documented as SQLite, table ``spill``)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM spill").fetchone()[0])


async def test_flush_refuses_a_timeout_that_is_not_seconds() -> None:
    broker = MemoryBroker()
    bus, bridge = await _memory_bus(broker)
    try:
        for bad, error in ((float("nan"), InvalidInputError), (-1, InvalidInputError),
                           ("1", InputTypeError), (True, InputTypeError)):  # fmt: skip
            with pytest.raises(error, match="timeout"):
                await bridge.flush(timeout=bad)
        bus.publish("c", 1)
        assert await bridge.flush(timeout=float("inf"))  # inf waits for good
    finally:
        await bus.stop()


async def test_full_buffer_without_spill_refuses_counts_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = MemoryBroker()
    bus, bridge = await _memory_bus(broker, buffer_size=3)
    try:
        await _away(broker, bridge)
        with caplog.at_level(logging.WARNING):
            for i in range(5):
                bus.publish("c", i)  # the publisher never sees the bridge's refusal
        assert (bridge.buffered, bridge.metrics().dropped) == (3, 2)
        assert "buffer full" in caplog.text  # a loss is never silent
        broker.down = False
        assert await bridge.flush(timeout=5)
        assert _sent(broker) == [0, 1, 2]
    finally:
        await bus.stop()


async def test_full_buffer_drops_plain_channel_messages_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis Pub/Sub semantics on the memory transport: the channel is not a stream, so a
    # message meeting a full buffer is fire-and-forget (dropped, counted, warned).
    monkeypatch.setattr(MemoryTransport, "persistent", lambda self, channel: False)
    broker = MemoryBroker()
    bus, bridge = await _memory_bus(broker, buffer_size=3)
    try:
        await _away(broker, bridge)
        with caplog.at_level(logging.WARNING):
            for i in range(5):
                bus.publish("c", i)
        assert (bridge.buffered, bridge.metrics().dropped) == (3, 2)
        assert "dropped a plain-channel message" in caplog.text
        broker.down = False
        assert await bridge.flush(timeout=5)
        assert _sent(broker) == [0, 1, 2]
    finally:
        await bus.stop()


async def test_full_buffer_spills_in_order_and_clears_when_sent(tmp_path: Path) -> None:
    path = tmp_path / "spill.db"
    broker = MemoryBroker()
    bus, bridge = await _memory_bus(broker, buffer_size=4, spill_path=str(path))
    try:
        await _away(broker, bridge)
        for i in range(10):
            bus.publish("c", i)
        assert (bridge.metrics().spilled, bridge.buffered, _rows(path)) == (6, 10, 6)
        broker.down = False
        assert await bridge.flush(timeout=5)
        assert _sent(broker) == list(range(10))
        assert _rows(path) == 0  # cleared once everything read from it was sent
    finally:
        await bus.stop()


async def test_spilled_messages_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "spill.db"
    broker = MemoryBroker()
    bus, bridge = await _memory_bus(broker, spill_path=str(path), drain_timeout_s=0.05)
    await _away(broker, bridge)
    for i in range(3):
        bus.publish("c", i)
    await bus.stop()  # the server is away: kept in the file for the next run
    assert (bridge.metrics().unsent, _rows(path)) == (3, 3)
    broker.down = False
    again, second = await _memory_bus(broker, spill_path=str(path))
    try:
        assert await second.flush(timeout=5)
        assert _sent(broker) == [0, 1, 2]
    finally:
        await again.stop()


async def test_spill_file_that_is_not_sqlite_is_a_persistence_error(tmp_path: Path) -> None:
    from neuralcore.core import PersistenceError

    path = tmp_path / "spill.db"
    path.write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(PersistenceError, match="spill"):
        await _memory_bus(MemoryBroker(), spill_path=str(path))


def test_bridges_satisfy_the_bus_protocol() -> None:
    from neuralcore.messaging import Bridge

    for bridge in (RedisBridge("redis://127.0.0.1:1/0"), KafkaBridge("127.0.0.1:1")):
        assert isinstance(bridge, Bridge)
        assert bridge.name.startswith(bridge.kind + ":")


async def test_persistent_messages_left_in_the_outbox_when_full_then_sent_in_order(
    tmp_path: Path,
) -> None:
    """The bus's persistent channels are not spilled: what does not fit in the buffer
    stays in the bus's outbox and is read back, in order, once there is room."""
    broker = MemoryBroker()
    bus = MessageBus(persistence_path=str(tmp_path / "bus.db"))
    bus.create_channel("c", persistent=True)
    bridge = MemoryBridge(broker, BridgeConfig(channels=("c",), direction="out", buffer_size=4,
                                               reconnect_initial_s=0.001, reconnect_max_s=0.01,
                                               health_interval_s=0.01))  # fmt: skip
    await bus.add_bridge(bridge)
    await bus.start()
    try:
        await _away(broker, bridge)
        for i in range(10):
            await bus.publish_async("c", i)
        assert (bridge.metrics().spilled, bridge.buffered) == (6, 10)  # 6 left in the outbox
        broker.down = False
        assert await bridge.flush(timeout=5)
        assert _sent(broker) == list(range(10))
    finally:
        await bus.stop()


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0?password=pa55-word", "redis://h:1/0?db=0&Password=pa55-word",
     "redis://user:pa55-word@h:1/0", "rediss://:pa55-word@h:1/0"],
)  # fmt: skip
def test_redis_url_with_a_password_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        RedisBridgeConfig(url=url)
    assert info.value.field == "url"
    assert "pa55-word" not in str(info.value)
    assert "pa55-word" not in repr(info.value)


@pytest.mark.parametrize(
    ("cls", "field"),
    [(RedisBridgeConfig, "password"), (KafkaBridgeConfig, "sasl_password"),
     (KafkaBridgeConfig, "ssl_key_password")],
)  # fmt: skip
def test_every_secret_field_is_hidden(cls: type, field: str) -> None:
    extra = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"} if "sasl" in field else {}
    cfg = cls.from_dict({field: "pa55-word", **extra})
    assert "pa55-word" not in repr(cfg)
    assert "pa55-word" not in str(cfg)
    assert cfg.redacted()[field] == "***"
    assert "pa55-word" not in str(cfg.redacted())


def test_fan_out_is_the_default_and_group_makes_a_work_queue() -> None:
    fan = RedisBridgeConfig(consumer="svc-a")
    assert (fan.group, fan.fan_out, fan.group_name()) == (None, True, "fanout.svc-a")
    work = RedisBridgeConfig(group="workers")
    assert (work.fan_out, work.group_name()) == (False, "workers")
    with pytest.raises(ConfigError, match="group"):
        RedisBridgeConfig(group="")


def test_per_channel_groups_pick_the_first_match_then_group() -> None:
    cfg = RedisBridgeConfig(channels=("x.*",), groups={"x.jobs": "workers", "x.*": "all"})
    assert (cfg.group_for("x.jobs"), cfg.group_for("x.news"), cfg.fan_out) == (
        "workers", "all", False,
    )  # fmt: skip
    mixed = RedisBridgeConfig(channels=("x.*",), group="g", groups={"x.jobs": "workers"})
    assert (mixed.group_for("x.jobs"), mixed.group_for("x.news")) == ("workers", "g")
    assert RedisBridgeConfig.from_dict({"groups": {"a": "b"}}).group_for("a") == "b"
    with pytest.raises(ConfigError, match="groups"):
        RedisBridgeConfig(groups={"x.jobs": ""})
    kafka = KafkaBridge(KafkaBridgeConfig(channels=("x.*",), groups={"x.jobs": "workers"}))
    assert (kafka.group_of("x.jobs"), kafka.fan_out("x.news")) == ("workers", True)


@pytest.mark.parametrize("field", ["startup_timeout_s", "drain_timeout_s"])
def test_timeouts_must_not_be_negative(field: str) -> None:
    with pytest.raises(ConfigError) as info:
        KafkaBridgeConfig.from_dict({field: -1})
    assert info.value.field == field


async def test_refused_connection_at_start_is_reported_promptly() -> None:
    from bridge_helpers import PortBus

    from neuralcore.core import BridgeConnectionError

    bridge = RedisBridge(RedisBridgeConfig(url="redis://127.0.0.1:1/0", startup_timeout_s=0.3))
    with pytest.raises(BridgeConnectionError, match=r"redis://127\.0\.0\.1:1/0.*0\.3"):
        await bridge.start_port(PortBus("x"))
    assert bridge.state is BridgeState.FAILED
    assert "Connect" in bridge.health().last_error or "refused" in bridge.health().last_error


async def test_startup_timeout_zero_connects_in_the_background() -> None:
    from bridge_helpers import PortBus

    bridge = RedisBridge(RedisBridgeConfig(url="redis://127.0.0.1:1/0", startup_timeout_s=0))
    await bridge.start_port(PortBus("x"))
    try:
        assert bridge.state is BridgeState.RECONNECTING
        assert not bridge.health().healthy
    finally:
        await bridge.stop()
    assert bridge.state is BridgeState.STOPPED


def test_kafka_packs_consecutive_envelopes_per_channel_within_the_limits() -> None:
    from neuralcore.messaging.bridges._kafka import unpack  # the wire format; no public seam

    def records(cfg: KafkaBridgeConfig, items: list[Any]) -> list[tuple[str, list[bytes], Any]]:
        out = KafkaBridge(cfg).transport._records(items)  # type: ignore[attr-defined]
        return [(c, unpack(v) if v.startswith(b"NCB\x01") else [v], k) for c, v, k in out]

    def item(channel: str, n: int, size: int = 10) -> tuple[str, bytes, bytes, bool, int]:
        return (channel, bytes([n]) * size, channel.encode(), True, 0)

    one = [item("a", i) for i in range(7)]
    assert records(KafkaBridgeConfig(), one) == [("a", [i[1] for i in one], b"a")]
    assert [len(r[1]) for r in records(KafkaBridgeConfig(pack=3), one)] == [3, 3, 1]
    assert [len(r[1]) for r in records(KafkaBridgeConfig(pack_bytes=3 * 14), one)] == [3, 3, 1]
    assert len(records(KafkaBridgeConfig(pack=1), one)) == 7
    mixed = [item("a", 0), item("b", 1), item("a", 2), item("b", 3), item("c", 4)]
    got = records(KafkaBridgeConfig(), mixed)
    assert [(c, [e[0] for e in envs]) for c, envs, _ in got] == [
        ("a", [0, 2]), ("b", [1, 3]), ("c", [4])
    ]  # fmt: skip


def test_a_buffer_of_one_refills_from_the_outbox_and_the_spill_file(tmp_path: Path) -> None:
    """buffer_size=1: the memory queue is refilled once empty (it refilled only under
    limit // 2 == 0 messages, never: the send loop found ``ready`` set and nothing to
    take, and the event loop spun forever)."""
    from neuralcore.messaging.bridges._buffer import OutboundBuffer, Outgoing, SpillFile

    rows: list[Outgoing] = [("c", b"%d" % s, None, True, s) for s in (1, 2, 3)]
    recorded = OutboundBuffer(1, None, lambda after, n: [r for r in rows if r[4] > after][:n])
    assert [recorded.put(r) for r in rows] == ["memory", "deferred", "deferred"]
    assert [recorded.take(10) for _ in range(4)] == [[rows[0]], [rows[1]], [rows[2]], []]
    assert not recorded.ready.is_set()

    spill = SpillFile(tmp_path / "spill.db")
    items: list[Outgoing] = [("c", b"%d" % i, None, True, 0) for i in range(3)]
    spilled = OutboundBuffer(1, spill)
    assert [spilled.put(i) for i in items] == ["memory", "spilled", "spilled"]
    assert [spilled.take(10) for _ in range(4)] == [[items[0]], [items[1]], [items[2]], []]
    spill.close()
