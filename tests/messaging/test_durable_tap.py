"""Durable taps (what bridges forward from), tuple selectors, the default channel template."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from neuralcore.core import InvalidInputError
from neuralcore.messaging import BusConfig, ChannelConfig, Message, MessageBus


def _bus(db: Path) -> MessageBus:
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    bus.create_channel("m")
    return bus


async def test_unacknowledged_messages_replayed_to_the_next_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replay reads the outbox in pages of 4,096 rows; a page of 2 makes this small test
    # cross page boundaries (no public setting for it: a private constant, on purpose).
    monkeypatch.setattr("neuralcore.messaging._taps._PAGE", 2)
    db = tmp_path / "bus.db"
    bus, seen = _bus(db), list[Message]()
    tap = bus.tap(("p", "m"), seen.append, durable=True, name="out")
    async with bus:
        for i in range(10):
            await bus.publish_async("p", i)
            await bus.publish_async("m", -i)  # in-memory channel: seen, never recorded
        tap.ack(m for m in seen if m.payload in (0, 1, 2, 5))
    assert [m.payload for m in seen if m.channel == "p"] == list(range(10))

    bus, again = _bus(db), list[Message]()
    bus.tap(("p", "m"), again.append, durable=True, name="out")
    assert again == []  # replayed at start, not before
    async with bus:
        await bus.publish_async("p", 99)
    assert [m.payload for m in again] == [3, 4, 6, 7, 8, 9, 99]
    assert again[0].origin != bus.bus_id  # replays keep the publishing run's origin

    bus, other = _bus(db), list[Message]()
    bus.tap("p", other.append, durable=True, name="another")  # its own, empty, record
    async with bus:
        assert other == []


async def test_tap_made_while_running_replays_at_once(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = _bus(db)
    bus.tap("p", lambda m: None, durable=True, name="out")
    async with bus:
        await bus.publish_batch_async("p", range(3))
    bus, seen = _bus(db), list[Message]()
    async with bus:
        bus.tap("p", seen.append, durable=True, name="out")
        assert [m.payload for m in seen] == [0, 1, 2]


async def test_remote_messages_are_not_recorded(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus, seen = _bus(db), list[Message]()
    bus.tap("p", seen.append, durable=True, name="out")
    async with bus:
        await bus.inject(Message("p", "remote", id="peer-1", origin="peer"))
    bus, again = _bus(db), list[Message]()
    bus.tap("p", again.append, durable=True, name="out")
    async with bus:
        pass
    assert seen == again == []


def test_durable_tap_needs_a_unique_name(tmp_path: Path) -> None:
    bus = _bus(tmp_path / "bus.db")
    with pytest.raises(InvalidInputError, match="needs a name"):
        bus.tap("p", print, durable=True)
    tap = bus.tap("p", print, durable=True, name="x")
    with pytest.raises(InvalidInputError, match="already open"):
        bus.tap("p", print, durable=True, name="x")
    tap.close()
    bus.tap("p", print, durable=True, name="x")  # free again once closed


def test_tuple_selector_sees_each_message_once_and_later_channels() -> None:
    bus, seen = MessageBus(), list[str]()
    bus.create_channel("rag.q")
    bus.tap(("rag.*", "rag.q"), lambda m: seen.append(m.channel))
    bus.create_channel("rag.late")
    bus.publish("rag.q", 1)
    bus.publish("rag.late", 2)
    assert seen == ["rag.q", "rag.late"]


async def test_inject_create_uses_the_default_channel_template() -> None:
    template = ChannelConfig(name="template", max_size=7, overflow="drop_new")
    async with MessageBus(BusConfig(default_channel=template)) as bus:
        await bus.inject(Message("new.one", 1, id="r-1", origin="peer"), create=True)
        assert bus.channels()["new.one"] == ChannelConfig(
            name="new.one", max_size=7, overflow="drop_new"
        )
    async with MessageBus() as plain:
        await plain.inject(Message("x", 1, id="r-2", origin="peer"), create=True)
        assert plain.channels()["x"] == ChannelConfig(name="x")


def test_default_channel_read_from_a_dict() -> None:
    cfg = BusConfig.from_dict({"default_channel": {"name": "t", "max_size": 5}})
    assert cfg.default_channel == ChannelConfig(name="t", max_size=5)


def _rows(db: Path) -> tuple[list[int], int]:
    con = sqlite3.connect(db)
    try:
        acked = [int(a) for (a,) in con.execute("SELECT acked FROM messages ORDER BY seq")]
        return acked, int(con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        con.close()


async def test_message_row_kept_until_subscribers_and_tap_are_both_done(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus, seen = _bus(db), list[Message]()
    bus.subscribe("p", lambda m: None)
    tap = bus.tap("p", seen.append, durable=True, name="out")
    async with bus:
        await bus.publish_batch_async("p", range(4))
        assert await bus.drain()
        tap.ack(seen[:2])
    assert _rows(db) == ([1, 1], 2)  # handled by subscribers, 2 and 3 not yet forwarded

    bus, got, again = _bus(db), list[Message](), list[Message]()
    bus.subscribe("p", got.append)
    tap = bus.tap("p", lambda m: (again.append(m), tap.ack([m])), durable=True, name="out")
    async with bus:
        await bus.publish_async("p", 99)  # forwarded (acked by the tap) before it is handled
        assert await bus.drain()
    assert [m.payload for m in again] == [2, 3, 99]
    assert [m.payload for m in got] == [99]  # subscribers are not given 2 and 3 again
    assert _rows(db) == ([], 0)
