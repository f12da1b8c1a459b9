"""One grammar for channel selection: subscribe, taps and the bridge port agree."""

from __future__ import annotations

import pytest

from neuralcore.core import ConfigError, InputTypeError, InvalidInputError
from neuralcore.messaging import ChannelConfig, MessageBus, Selector


@pytest.mark.parametrize(
    ("text", "channel", "expected"),
    [
        ("jobs.?", "jobs.1", True),
        ("jobs.?", "jobs.10", False),
        ("rag.*", "rag.query.fast", True),
        ("log.[ab]", "log.a", True),
        ("log.[!ab]", "log.a", False),
        ("jobs", "jobs", True),
        ("jobs", "jobs2", False),
        ("Jobs.*", "jobs.x", False),  # case-sensitive on every platform
    ],
)
def test_selector_grammar_is_fnmatch_case_sensitive(
    text: str, channel: str, expected: bool
) -> None:
    assert Selector(text).matches(channel) is expected


def test_selector_of_several_texts_splits_names_and_patterns() -> None:
    s = Selector(("a", "b.*", "c?"))
    assert (s.names, s.patterns, s.is_pattern) == (("a",), ("b.*", "c?"), True)
    assert [s.matches(c) for c in ("a", "b.x", "cd", "d")] == [True, True, True, False]


@pytest.mark.parametrize("bad", [None, 3, ("a", None)])
def test_selector_rejects_non_strings(bad: object) -> None:
    with pytest.raises(InputTypeError):
        Selector(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", ()])
def test_selector_rejects_empty_selections(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        Selector(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["jobs.*", "jobs.?", "jobs.[a]"])
def test_channel_names_cannot_hold_pattern_characters(name: str) -> None:
    assert Selector(name).is_pattern
    with pytest.raises(ConfigError, match="'name'"):
        ChannelConfig(name=name)


async def test_subscribe_with_question_mark_pattern_receives_matching_channels(until) -> None:  # type: ignore[no-untyped-def]
    async with MessageBus() as bus:
        bus.create_channel("jobs.1")
        got: list[str] = []
        bus.subscribe("jobs.?", lambda m: got.append(m.channel))
        bus.create_channel("jobs.2")  # created after the subscription
        bus.create_channel("jobs.10")
        for name in ("jobs.1", "jobs.2", "jobs.10"):
            await bus.publish_async(name, None)
        assert await bus.drain()
        assert sorted(got) == ["jobs.1", "jobs.2"]


def test_subscribe_none_is_a_clear_type_error() -> None:
    bus = MessageBus()
    with pytest.raises(InputTypeError, match="must be a str"):
        bus.subscribe(None, print)  # type: ignore[arg-type]


def test_tap_uses_the_same_grammar() -> None:
    bus = MessageBus()
    for name in ("jobs.1", "jobs.10"):
        bus.create_channel(name)
    seen: list[str] = []
    bus.tap("jobs.?", lambda m: seen.append(m.channel))
    bus.publish("jobs.1", 1)
    bus.publish("jobs.10", 2)
    assert seen == ["jobs.1"]


def test_port_subscribed_follows_direct_and_pattern_subscriptions() -> None:
    bus = MessageBus()
    bus.create_channel("a")
    port = bus.bridge_port()  # the seam every bridge is given
    assert not port.subscribed("a")
    sub = bus.subscribe("a", print)
    assert port.subscribed("a")
    assert not port.subscribed("b.1")
    pat = bus.subscribe("b.?", print)
    assert port.subscribed("b.1")  # a channel that does not exist yet
    assert not port.subscribed("b.12")
    sub.unsubscribe()
    pat.unsubscribe()
    assert not port.subscribed("a")
    assert not port.subscribed("b.1")
