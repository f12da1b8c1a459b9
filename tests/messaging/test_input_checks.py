"""Arguments the bus must refuse with a clear error naming the value: a concurrency that
would create a billion tasks, a drain/stop deadline that never comes (NaN) or is not a
number, and channel names that are not valid text (a lone surrogate)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from neuralcore.core import ConfigError, InputTypeError, InvalidInputError
from neuralcore.messaging import MessageBus

MAX_CONCURRENCY = 10_000  # documented in MessageBus.subscribe


@pytest.mark.parametrize("concurrency", [10**9, MAX_CONCURRENCY + 1, 0, -3])
def test_concurrency_out_of_range_is_a_config_error(concurrency: int) -> None:
    bus = MessageBus()
    bus.create_channel("p")
    with pytest.raises(ConfigError, match="10,000") as info:
        bus.subscribe("p", print, concurrency=concurrency)
    assert info.value.field == "concurrency"
    assert info.value.value == concurrency


def test_concurrency_must_be_an_int_and_the_cap_itself_is_accepted() -> None:
    bus = MessageBus()
    bus.create_channel("p")
    with pytest.raises(InputTypeError, match="concurrency"):
        bus.subscribe("p", print, concurrency=2.0)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="concurrency"):
        bus.subscribe("p", print, concurrency=True)
    assert bus.subscribe("p", print, concurrency=MAX_CONCURRENCY).concurrency == MAX_CONCURRENCY


async def test_a_subscriber_at_the_cap_handles_messages() -> None:
    async with MessageBus() as bus:
        bus.create_channel("p")
        got: list[int] = []

        async def handler(msg: Any) -> None:
            got.append(msg.payload)

        bus.subscribe("p", handler, concurrency=MAX_CONCURRENCY)
        for i in range(20):
            await bus.publish_async("p", i)
        assert await bus.drain(5)
        assert sorted(got) == list(range(20))


BAD_WAITS = [
    pytest.param(math.nan, InvalidInputError, id="nan"),
    pytest.param(math.inf, InvalidInputError, id="inf"),
    pytest.param(-1, InvalidInputError, id="negative"),
    pytest.param("x", InputTypeError, id="str"),
    pytest.param(True, InputTypeError, id="bool"),
]


@pytest.mark.parametrize(("timeout", "error"), BAD_WAITS)
async def test_drain_and_stop_refuse_a_bad_timeout(timeout: Any, error: type[Exception]) -> None:
    """drain(nan)/stop(nan) waited for good behind a slow handler; a str raised a raw
    TypeError. Refused before anything stops: the bus then stops normally."""
    release = asyncio.Event()
    bus = MessageBus()
    bus.create_channel("c")

    async def slow(_msg: Any) -> None:
        await release.wait()

    bus.subscribe("c", slow)
    await bus.start()
    try:
        await bus.publish_async("c", 1)
        await asyncio.sleep(0.01)
        for call in (bus.drain, bus.stop):
            with pytest.raises(error, match="timeout"):
                await asyncio.wait_for(call(timeout), 2)
        assert bus.running
        assert await bus.drain(0) is False  # 0 is a valid deadline: already past
    finally:
        release.set()
        await bus.stop(5)
    assert not bus.running


def test_a_channel_name_with_a_lone_surrogate_is_refused(tmp_path: Path) -> None:
    bus = MessageBus(persistence_path=str(tmp_path / "bus.db"))
    try:
        for settings in ({"persistent": True}, {}):
            with pytest.raises(ConfigError, match="lone surrogate") as info:
                bus.create_channel("\ud800x", **settings)
            assert info.value.field == "name"
        with pytest.raises(ConfigError, match="lone surrogate") as info:
            bus.create_channel("ok", dead_letter="dl\udcff")
        assert info.value.field == "dead_letter"
        assert bus.channels() == {}
        with pytest.raises(InvalidInputError, match="lone surrogate"):
            bus.publish("\ud800x", 1)
        with pytest.raises(InvalidInputError, match="lone surrogate"):
            bus.subscribe("\ud800x", print)
        with pytest.raises(InvalidInputError, match="lone surrogate"):
            bus.subscribe("\ud800*", print)
        bus.create_channel("é.ok", persistent=True)  # other non-ASCII text is fine
        assert bus.publish("é.ok", "x") is not None
    finally:
        bus.close()


async def test_publish_async_to_a_surrogate_name_is_refused() -> None:
    async with MessageBus() as bus:
        with pytest.raises(InvalidInputError, match="lone surrogate"):
            await bus.publish_async("\ud800x", 1)
        with pytest.raises(InvalidInputError, match="lone surrogate"):
            bus.publish_batch("\ud800x", [1])
