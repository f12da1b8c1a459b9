"""Authorization is checked on every way in: patterns, taps, dead letters, request/reply."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from neuralcore.core import AuthorizationError
from neuralcore.messaging import BusConfig, Message, MessageBus

KEYS = {"reader-key": ("reader",), "writer-key": ("writer",)}
PROTECTED: dict[str, Any] = {"allow_publish": ("writer",), "allow_subscribe": ("reader",)}


def _bus(**cfg: Any) -> MessageBus:
    return MessageBus(BusConfig(api_keys=KEYS, **cfg))


async def test_pattern_subscription_without_key_misses_protected_channel_created_later(
    until,  # type: ignore[no-untyped-def]
) -> None:
    async with _bus() as bus:
        bus.create_channel("open", allow_subscribe=("*",), allow_publish=("*",))
        anonymous: list[str] = []
        reader: list[str] = []
        bus.subscribe("*", lambda m: anonymous.append(m.channel))
        bus.subscribe("*", lambda m: reader.append(m.channel), auth="reader-key")
        bus.create_channel("secret", **PROTECTED)  # appears after both subscriptions
        await bus.publish_async("secret", 1, auth="writer-key")
        await until(lambda: reader)
        assert await bus.drain()
    assert anonymous == []
    assert reader == ["secret"]
    assert bus.metrics()["secret"].denied >= 1


def test_tap_needs_the_right_to_subscribe() -> None:
    bus = _bus()
    bus.create_channel("secret", **PROTECTED)
    with pytest.raises(AuthorizationError, match="subscribe on channel 'secret'"):
        bus.tap("secret", print)
    with pytest.raises(AuthorizationError):
        bus.tap("secret", print, auth="writer-key")
    seen: list[Any] = []
    bus.tap("secret", lambda m: seen.append(m.payload), auth="reader-key")
    anonymous: list[Any] = []
    bus.tap("sec*", lambda m: anonymous.append(m.payload))  # pattern: skips what it may not read
    bus.create_channel("secret2", **PROTECTED)
    bus.publish("secret", 1, auth="writer-key")
    bus.publish("secret2", 2, auth="writer-key")
    assert seen == [1]
    assert anonymous == []


async def test_dead_letter_channel_inherits_the_source_acl(until) -> None:  # type: ignore[no-untyped-def]
    async with _bus() as bus:
        bus.create_channel("jobs", dead_letter="jobs.dlq", max_attempts=1, **PROTECTED)
        assert bus.channels()["jobs.dlq"].allow_subscribe == ("reader",)
        with pytest.raises(AuthorizationError):
            bus.subscribe("jobs.dlq", print)
        dead: list[Message] = []
        bus.subscribe("jobs.dlq", dead.append, auth="reader-key")

        def fail(m: Message) -> None:
            raise RuntimeError("boom")

        bus.subscribe("jobs", fail, auth="reader-key")
        await bus.publish_async("jobs", "x", auth="writer-key")
        await until(lambda: dead)  # the bus's own forward to the protected DLQ got through
        assert dead[0].headers["dead_letter_error"] == "RuntimeError: boom"
        with pytest.raises(AuthorizationError):
            bus.dead_letters("jobs")
        with pytest.raises(AuthorizationError):
            bus.dead_letters("jobs", auth="writer-key")
        assert bus.dead_letters() == []  # without a key, protected dead letters are left out
        assert [d.message.payload for d in bus.dead_letters("jobs", auth="reader-key")] == ["x"]
        assert len(bus.dead_letters(auth="reader-key")) == 1


def test_api_keys_set_means_deny_by_default() -> None:
    bus = _bus()
    bus.create_channel("plain")  # no allow_* of its own
    with pytest.raises(AuthorizationError, match="no API key"):
        bus.publish("plain", 1)
    with pytest.raises(AuthorizationError, match="unknown API key"):
        bus.publish("plain", 1, auth="guess")
    with pytest.raises(AuthorizationError):
        bus.subscribe("plain", print)
    assert bus.publish("plain", 1, auth="reader-key") is not None  # any known key
    bus.subscribe("plain", print, auth="writer-key")
    open_bus = MessageBus()  # no api_keys: open, as before
    open_bus.create_channel("plain")
    assert open_bus.publish("plain", 1) is not None


async def test_correlation_ids_cannot_be_guessed() -> None:
    seen: list[str] = []
    async with MessageBus() as bus:
        bus.create_channel("echo")

        def handler(m: Message) -> Any:
            seen.append(str(m.correlation_id))
            return m.payload

        bus.subscribe("echo", handler)
        for i in range(3):
            assert await bus.request("echo", i) == i
    assert len(set(seen)) == 3
    for cid in seen:
        assert len(cid) == 32
        int(cid, 16)  # 128 random bits in hex
        assert bus.bus_id not in cid


async def test_forged_reply_cannot_answer_another_callers_request() -> None:
    async with MessageBus() as bus:
        bus.create_channel("slow")
        bus.create_channel("forge")
        captured: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        release = asyncio.Event()

        async def slow(m: Message) -> Any:
            captured.set_result(m)
            await release.wait()
            return "genuine"

        bus.subscribe("slow", slow)
        # An attacker's handler answers whatever arrives on "forge" with a fixed value.
        bus.subscribe("forge", lambda m: "forged")
        pending = asyncio.create_task(bus.request("slow", "q", timeout=10))
        request = await captured
        forged = await bus.publish_async("forge", "x", headers=dict(request.headers))
        assert forged is not None
        bus.reply(forged, "forged directly")  # the same forgery through reply()
        assert await bus.drain(timeout=1) is False  # "slow" is still busy
        release.set()
        assert await pending == "genuine"
