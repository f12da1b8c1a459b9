"""Bridge pieces without a server: config, backoff, buffer and spill file, public names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neuralcore.core import ConfigError, QueueFullError
from neuralcore.messaging.bridges import (
    BridgeState,
    KafkaBridge,
    KafkaBridgeConfig,
    RedisBridge,
    RedisBridgeConfig,
)
from neuralcore.messaging.bridges import __all__ as exported
from neuralcore.messaging.bridges._buffer import OutboundBuffer, Outgoing, SpillFile
from neuralcore.messaging.bridges._state import Backoff


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


def _item(i: int, persistent: bool = True) -> Outgoing:
    return ("c", str(i).encode(), None, persistent, 0)


async def test_buffer_bounded_drop_or_reject_without_spill() -> None:
    buf = OutboundBuffer(3, None)
    assert [buf.put(_item(i)) for i in range(3)] == ["memory"] * 3
    assert buf.put(_item(9, persistent=False)) == "dropped"
    with pytest.raises(QueueFullError):
        buf.put(_item(10))
    taken = buf.take(2)
    buf.requeue(taken)
    assert [o[1] for o in buf.take(10)] == [b"0", b"1", b"2"]


async def test_buffer_spills_in_order_and_clears_when_sent(tmp_path: Path) -> None:
    path = tmp_path / "spill.db"
    buf = OutboundBuffer(4, SpillFile(path))
    results = [buf.put(_item(i)) for i in range(10)]
    assert results.count("spilled") == 6
    assert len(buf) == 10
    order: list[bytes] = []
    for _ in range(10):
        order += [o[1] for o in buf.take(3)]
    assert order == [str(i).encode() for i in range(10)]
    assert _rows(path) == 6  # kept until everything read from it was sent
    buf.sent(10, in_flight=0)
    assert _rows(path) == 0
    assert buf.spill is not None
    buf.spill.close()


def _rows(path: Path) -> int:
    reader = SpillFile(path)
    try:
        return len(reader)
    finally:
        reader.close()


def test_spill_file_survives_a_restart_and_keeps_read_but_unsent_rows(tmp_path: Path) -> None:
    path = tmp_path / "spill.db"
    spill = SpillFile(path)
    for i in range(3):
        spill.append(_item(i))
    assert [o[1] for o in spill.read(2)] == [b"0", b"1"]
    spill.close()  # a crash before those two were sent: nothing cleared
    again = SpillFile(path)
    try:
        assert len(again) == 3
        assert again.read(10) == [("c", b"0", None, True, 0), ("c", b"1", None, True, 0),
                                  ("c", b"2", None, True, 0)]  # fmt: skip
        assert again.read(1) == []
    finally:
        again.close()


def test_spill_file_that_is_not_sqlite_is_a_persistence_error(tmp_path: Path) -> None:
    from neuralcore.core import PersistenceError

    path = tmp_path / "spill.db"
    path.write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(PersistenceError, match="spill"):
        SpillFile(path)


def test_bridges_satisfy_the_bus_protocol() -> None:
    from neuralcore.messaging import Bridge

    for bridge in (RedisBridge("redis://127.0.0.1:1/0"), KafkaBridge("127.0.0.1:1")):
        assert isinstance(bridge, Bridge)
        assert bridge.name.startswith(bridge.kind + ":")


def test_recorded_messages_deferred_when_full_then_read_back_in_order() -> None:
    store: list[Outgoing] = [("c", bytes([i]), None, True, i) for i in range(1, 11)]

    def refill(after: int, limit: int) -> list[Outgoing]:
        return [o for o in store if o[4] > after][:limit]

    buf = OutboundBuffer(4, None, refill)
    assert [buf.put(o) for o in store[:6]] == ["memory"] * 4 + ["deferred"] * 2
    assert len(buf) == 6
    assert [o[4] for o in buf.take(3)] == [1, 2, 3]
    assert [o[4] for o in buf.take(10)] == [4, 5, 6, 7]  # low: 5, 6 (and 7) read back
    assert buf.put(store[6]) == "held"  # 7's tap call came after the read-back
    assert len(buf) == 0
    assert buf.put(store[7]) == "memory"


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
