"""Every number of every bridge setting is checked (NaN passes ``<`` tests: a NaN
``drain_timeout_s`` lost every buffered message at stop, a NaN ``startup_timeout_s``
made ``add_bridge`` hang, a NaN ``health_interval_s`` pinged ~450 times a second), and no
error or ``repr`` shows a credential put in a URL or a broker address."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import pytest

from neuralcore.core import ConfigError, InputTypeError, InvalidInputError
from neuralcore.messaging import MessageBus
from neuralcore.messaging.bridges import (
    BridgeConfig,
    BridgeState,
    KafkaBridgeConfig,
    MemoryBridge,
    MemoryBroker,
    RedisBridgeConfig,
)

from .test_forward_only import sent, wait_for

CONFIGS = (BridgeConfig, RedisBridgeConfig, KafkaBridgeConfig)


def _float_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if hints[f.name] in (float, float | None)]


FLOAT_FIELDS = [
    pytest.param(cls, name, bad, id=f"{cls.__name__}.{name}={bad}")
    for cls in CONFIGS
    for name in _float_fields(cls)
    for bad in (math.nan, math.inf, -math.inf)
]


def test_the_sweep_sees_every_float_field() -> None:
    assert set(_float_fields(RedisBridgeConfig)) == {
        "linger_ms", "reconnect_initial_s", "reconnect_max_s", "reconnect_jitter",
        "health_interval_s", "startup_timeout_s", "drain_timeout_s", "claim_interval_s",
        "stale_after_s", "socket_timeout_s", "connect_timeout_s",
    }  # fmt: skip


@pytest.mark.parametrize(("cls", "field", "bad"), FLOAT_FIELDS)
def test_nan_and_infinity_are_refused_naming_the_field(cls: type, field: str, bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**{field: bad})
    assert info.value.field == field
    with pytest.raises(ConfigError) as info:
        cls.from_dict({field: bad})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [("linger_ms", 60_001.0), ("health_interval_s", 0.0), ("health_interval_s", 86_401.0),
     ("drain_timeout_s", 7 * 86_400 + 1.0), ("startup_timeout_s", -0.5),
     ("reconnect_max_s", 1e300)],
)  # fmt: skip
def test_durations_have_documented_bounds(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as info:
        BridgeConfig(**{field: value})
    assert info.value.field == field


def test_the_defaults_and_the_bounds_themselves_are_accepted() -> None:
    RedisBridgeConfig()
    KafkaBridgeConfig()
    BridgeConfig(linger_ms=60_000, drain_timeout_s=7 * 86_400, startup_timeout_s=0,
                 reconnect_initial_s=0, reconnect_max_s=86_400, reconnect_jitter=1)  # fmt: skip


SECRET_URLS = [
    "http://u:hunter2@host",
    "REDIS://:hunter2@h",
    " redis://:hunter2@h",
    "redis://h/0?%70assword=hunter2",
    "redis://h/0?db=0&%50ASSWORD=hunter2",
    "redis://h/0?pass%77ord=hunter2",
    "redis://alice%3Ahunter2%40h/0",
    "unix://:hunter2@/tmp/redis.sock",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_a_redis_url_with_a_secret_is_refused_without_echoing_it(url: str) -> None:
    for data in ({"url": url}, {"url": url, "password": "other"}):
        with pytest.raises(ConfigError) as info:
            RedisBridgeConfig.from_dict(data)
        assert info.value.field == "url"
        assert "hunter2" not in str(info.value)
        assert "hunter2" not in repr(info.value)
        assert "hunter2" not in repr(info.value.value)
    with pytest.raises(ConfigError) as info:
        RedisBridgeConfig(url=url)
    assert "hunter2" not in str(info.value)


def test_a_url_of_the_wrong_type_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        RedisBridgeConfig(url=b"redis://:hunter2@h")  # type: ignore[arg-type]
    assert info.value.field == "url"
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        KafkaBridgeConfig(bootstrap=b"sasl://alice:hunter2@h:1")  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)


def test_a_url_without_a_secret_is_still_shown() -> None:
    with pytest.raises(ConfigError, match="http://h:1"):
        RedisBridgeConfig(url="http://h:1")
    cfg = RedisBridgeConfig(url="redis://h:1/0?db=0")
    assert cfg.redacted()["url"] == "redis://h:1/0?db=0"
    assert "redis://h:1/0?db=0" in repr(cfg)


@pytest.mark.parametrize(
    "bootstrap",
    ["sasl://alice:hunter2@127.0.0.1:1", "alice:hunter2@127.0.0.1:9092",
     "127.0.0.1:9092,bob:hunter2@h:9093", "alice%3Ahunter2%40h:1"],
)  # fmt: skip
def test_a_kafka_bootstrap_with_credentials_is_refused_without_echoing_them(
    bootstrap: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        KafkaBridgeConfig(bootstrap=bootstrap)
    assert info.value.field == "bootstrap"
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value)
    cfg = KafkaBridgeConfig(bootstrap="h1:9092,h2:9092")
    assert cfg.redacted()["bootstrap"] == "h1:9092,h2:9092"


async def _down_bridge(broker: MemoryBroker) -> tuple[MessageBus, MemoryBridge]:
    broker.down = True
    bus = MessageBus()
    bus.create_channel("jobs")
    config = BridgeConfig(channels=("jobs",), direction="out", startup_timeout_s=0,
                          reconnect_initial_s=0.001, reconnect_max_s=0.01,
                          health_interval_s=0.01)  # fmt: skip
    bridge = MemoryBridge(broker, config)
    await bus.add_bridge(bridge)
    await bus.start()
    await wait_for(lambda: bridge.state is BridgeState.RECONNECTING)
    return bus, bridge


@pytest.mark.parametrize(("timeout", "error"), [(math.nan, InvalidInputError),
                                                (-1.0, InvalidInputError),
                                                ("5", InputTypeError)])  # fmt: skip
async def test_bridge_stop_with_a_bad_timeout_is_refused_before_anything_stops(
    timeout: Any, error: type[Exception]
) -> None:
    """stop(timeout=nan) used to give up at once and count the 10 buffered messages as
    unsent; now it is refused and the bridge keeps carrying them."""
    broker = MemoryBroker()
    bus, bridge = await _down_bridge(broker)
    try:
        for i in range(10):
            bus.publish("jobs", i)
        assert bridge.buffered == 10
        with pytest.raises(error, match="timeout"):
            await bridge.stop(timeout=timeout)
        assert bridge.state is BridgeState.RECONNECTING
        broker.down = False
        assert await bridge.flush(5)
        assert sent(bus, broker) == list(range(10))
    finally:
        await bus.stop()
