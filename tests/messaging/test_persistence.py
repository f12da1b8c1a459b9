"""Persistence on real SQLite files: replay, acks, dead letters, keys, retention, corruption."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuralcore.core import PersistenceError, SerializationError
from neuralcore.messaging import BusConfig, Message, MessageBus


def _rows(path: Path, sql: str) -> list[Any]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def _consume(path: Path, channel: str = "p", **cfg: Any) -> list[Message]:
    got: list[Message] = []
    bus = MessageBus(BusConfig(**cfg), persistence_path=str(path))
    bus.create_channel(channel, persistent=True)
    bus.subscribe(channel, got.append)
    async with bus:
        assert await bus.drain(timeout=10)
    return got


async def test_unacked_messages_replay_in_order_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    for i in range(20):
        bus.publish("p", {"i": i}, priority=0 if i % 5 == 0 else 50)
    await bus.stop()  # never started: nothing delivered, everything unacknowledged
    got = await _consume(db)
    assert [m.payload["i"] for m in got] == [0, 5, 10, 15] + [i for i in range(20) if i % 5]
    assert all(m.attempt == 1 for m in got)  # never handed to a handler: first attempt
    assert await _consume(db) == []  # acknowledged now: not replayed again


async def test_envelope_survives_the_file(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    sent = bus.publish("p", {"v": arr, "b": b"\x00\xff"}, priority=7, headers={"trace_id": "t"})
    assert sent is not None
    await bus.stop()
    [got] = await _consume(db)
    assert (got.id, got.priority, got.timestamp, got.origin) == (
        sent.id, 7, sent.timestamp, sent.origin,
    )  # fmt: skip
    assert got.headers == {"trace_id": "t"}
    assert got.payload["b"] == b"\x00\xff"
    np.testing.assert_array_equal(got.payload["v"], arr)
    assert got.payload["v"].dtype == np.float32


async def test_unencodable_payload_fails_at_publish(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    with pytest.raises(SerializationError, match="'p' cannot be encoded"):
        bus.publish("p", {"f": object()})
    with pytest.raises(SerializationError, match="dtype object"):
        await bus.publish_async("p", np.array([object()]))
    assert bus.metrics()["p"].queue_depth == 0
    await bus.stop()
    assert _rows(db, "SELECT COUNT(*) FROM messages") == [(0,)]


async def test_oversized_message_is_refused(tmp_path: Path) -> None:
    bus = MessageBus(BusConfig(max_message_size=1000), persistence_path=str(tmp_path / "b.db"))
    bus.create_channel("p", persistent=True)
    with pytest.raises(SerializationError, match="over max_message_size=1000"):
        bus.publish("p", b"x" * 2000)
    await bus.stop()


async def test_stop_deadline_keeps_in_flight_messages(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(BusConfig(drain_timeout=0.05), persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    started = asyncio.Event()

    async def stuck(m: Message) -> None:
        started.set()
        await asyncio.sleep(60)

    bus.subscribe("p", stuck)
    async with bus:
        await bus.publish_batch_async("p", range(5))
        await started.wait()
    got = await _consume(db)
    assert [m.payload for m in got] == list(range(5))


async def test_dead_letters_and_idempotency_keys_survive_restart(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("p", persistent=True, max_attempts=1, idempotency_window=3600)

    def broken(m: Message) -> None:
        raise RuntimeError("no")

    bus.subscribe("p", broken, name="broken")
    async with bus:
        await bus.publish_async("p", "x", idempotency_key="once")
        assert await bus.drain()
    bus2 = MessageBus(persistence_path=str(db))
    bus2.create_channel("p", persistent=True, idempotency_window=3600)
    [dead] = bus2.dead_letters("p")
    assert (dead.message.payload, dead.error, dead.subscriber) == (
        "x",
        "RuntimeError: no",
        "broken",
    )
    assert bus2.publish("p", "x", idempotency_key="once") is None
    assert bus2.publish("p", "y", idempotency_key="other") is not None
    await bus2.stop()


async def test_dead_letter_channel_of_persistent_channel_is_persistent(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("p", persistent=True, max_attempts=1, dead_letter="p.dlq")
    bus.subscribe("p", lambda m: 1 / 0)
    async with bus:
        await bus.publish_async("p", "x")
        assert await bus.drain()
    assert bus.channels()["p.dlq"].persistent
    got = await _consume(db, "p.dlq")
    assert [m.payload for m in got] == ["x"]
    assert got[0].headers["dead_letter_error"] == "ZeroDivisionError: division by zero"


async def test_retention_by_age_and_count(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    cfg = BusConfig(retention_seconds=3600, retention_count=5)
    got = []
    bus = MessageBus(cfg, persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    bus.subscribe("p", got.append)
    async with bus:
        await bus.publish_batch_async("p", range(13))
        assert await bus.drain()
    # The writer prunes about once a second, and once more when it closes.
    rows = _rows(db, "SELECT acked FROM messages ORDER BY seq")
    assert rows == [(1,)] * 5  # kept acknowledged rows, at most retention_count
    db2 = tmp_path / "del.db"
    await _consume(db2)
    bus = MessageBus(persistence_path=str(db2))  # default: delete on acknowledgement
    bus.create_channel("p", persistent=True)
    bus.subscribe("p", got.append)
    async with bus:
        await bus.publish_batch_async("p", range(3))
        assert await bus.drain()
    assert _rows(db2, "SELECT COUNT(*) FROM messages") == [(0,)]


@pytest.mark.parametrize(("durability", "level"), [("process", 1), ("power", 2)])
def test_durability_sets_synchronous(tmp_path: Path, durability: str, level: int) -> None:
    bus = MessageBus(BusConfig(durability=durability), persistence_path=str(tmp_path / "b.db"))  # type: ignore[arg-type]
    assert bus._journal is not None
    con = bus._journal.store._con  # the setting lives on the bus's own connection only
    assert con.execute("PRAGMA synchronous").fetchone()[0] == level
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    bus.close()


def test_corrupt_file_is_moved_aside_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    db.write_bytes(b"this is not an sqlite file" * 100)
    with pytest.raises(PersistenceError, match=r"bus\.db is corrupt") as info:
        MessageBus(persistence_path=str(db))
    assert str(db) in str(info.value)
    [aside] = list(tmp_path.glob("bus.db.corrupt-*"))
    assert str(aside) in str(info.value)
    assert aside.read_bytes() == b"this is not an sqlite file" * 100
    assert not db.exists()


async def test_truncated_database_detected(tmp_path: Path, caplog: Any) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    bus.publish_batch("p", [b"x" * 3000 for _ in range(50)])
    await bus.stop()
    data = db.read_bytes()
    db.write_bytes(data[:4096] + b"\xde\xad" * ((len(data) - 4096) // 2))  # keep the header
    with caplog.at_level(logging.ERROR):
        bus = MessageBus(BusConfig(on_corrupt="recover"), persistence_path=str(db))
    assert "corrupt" in caplog.text
    assert "moved aside" in caplog.text
    assert len(list(tmp_path.glob("bus.db.corrupt-*"))) == 1
    bus.create_channel("p", persistent=True)
    assert bus.metrics()["p"].queue_depth == 0  # fresh file
    await bus.stop()


def test_foreign_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users(id)")
    con.commit()
    con.close()
    with pytest.raises(PersistenceError, match="another application"):
        MessageBus(persistence_path=str(db))
    assert _rows(db, "SELECT name FROM sqlite_master") == [("users",)]


async def test_second_bus_on_same_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(persistence_path=str(db))
    with pytest.raises(PersistenceError, match="in use by another"):
        MessageBus(persistence_path=str(db))
    await bus.stop()
    MessageBus(persistence_path=str(db)).close()


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize("durability", ["process", "power"])
async def test_group_commit_shares_transactions(tmp_path: Path, durability: str) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(BusConfig(durability=durability), persistence_path=str(db))  # type: ignore[arg-type]
    bus.create_channel("p", persistent=True)
    assert bus._journal is not None
    store = bus._journal.store  # counting transactions needs the writer itself
    commits = 0
    for method in ("_commit_rows", "_write"):  # on the loop / on the writer thread
        original = getattr(store, method)

        def counting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            nonlocal commits
            commits += 1
            return _original(*args, **kwargs)

        setattr(store, method, counting)
    async with bus:
        await asyncio.gather(*(bus.publish_async("p", Point(i, i)) for i in range(200)))
    assert 1 <= commits < 100  # 200 durable publishes, far fewer transactions
    got = await _consume(db)
    assert sorted(m.payload["x"] for m in got) == list(range(200))
    assert got[0].payload == {"x": got[0].payload["x"], "y": got[0].payload["x"]}


async def test_file_written_with_json_codec_replays_under_msgpack(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(BusConfig(codec="json"), persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    bus.publish("p", {"b": b"\x01", "n": 1})
    await bus.stop()
    [got] = await _consume(db)  # default codec: msgpack
    assert got.payload == {"b": b"\x01", "n": 1}


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ("UPDATE messages SET data = x'c1c1' WHERE seq = 2", "checksum"),  # bytes changed
        ("UPDATE messages SET data = x'c1c1', crc = NULL WHERE seq = 2", "cannot decode"),
    ],
    ids=["checksum", "undecodable"],
)
async def test_unreadable_row_is_set_aside_and_the_rest_replays(
    tmp_path: Path, caplog: Any, update: str, reason: str
) -> None:
    db = tmp_path / "bus.db"
    with MessageBus(persistence_path=str(db)) as bus:
        bus.create_channel("p", persistent=True)
        bus.publish_batch("p", [1, 2, 3])
    con = sqlite3.connect(db)
    con.execute(update)
    con.commit()
    con.close()
    with caplog.at_level(logging.ERROR):
        got = await _consume(db)
    assert [m.payload for m in got] == [1, 3]
    assert "row 2" in caplog.text
    assert reason in caplog.text
    with MessageBus(persistence_path=str(db)) as bus:
        bus.create_channel("p", persistent=True)
        [dead] = bus.dead_letters("p")
    assert reason in dead.error
    assert dead.message.payload == b"\xc1\xc1"  # the raw bytes, kept for inspection


async def test_flipped_bit_in_payload_is_caught_by_the_row_checksum(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    with MessageBus(BusConfig(codec="json"), persistence_path=str(db)) as bus:
        bus.create_channel("p", persistent=True)
        bus.publish("p", {"amount": 100})
    con = sqlite3.connect(db)
    [(data,)] = con.execute("SELECT data FROM messages").fetchall()
    flipped = bytes(data).replace(b"100", b"900")  # still valid JSON: decodes silently
    con.execute("UPDATE messages SET data = ?", (flipped,))
    con.commit()
    con.close()
    assert await _consume(db) == []
    with MessageBus(persistence_path=str(db)) as bus:
        bus.create_channel("p", persistent=True)
        assert "checksum" in bus.dead_letters("p")[0].error


async def test_retention_by_age_keeps_unacknowledged_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "bus.db"
    bus = MessageBus(BusConfig(retention_seconds=0.05), persistence_path=str(db))
    bus.create_channel("p", persistent=True)
    bus.create_channel("q", persistent=True)  # nobody consumes it
    bus.subscribe("p", lambda m: None)
    async with bus:
        await bus.publish_batch_async("p", range(3))
        await bus.publish_async("q", "waiting")
        assert await bus.drain()
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 60)  # the rows are old now
    rows = _rows(db, "SELECT channel, acked FROM messages")
    assert rows == [("q", 0)]  # old acknowledged rows pruned, the unacknowledged one kept


async def test_an_ack_riding_the_loops_pending_commit_survives_a_close_before_it(
    tmp_path: Path,
) -> None:
    # An ack made on the loop joins the loop's inline commit still to come (no writer
    # transaction of its own); a close before that commit hands it to the writer's last.
    import zlib

    from neuralcore.messaging._store import SQLiteStore

    def row(seq: int) -> tuple[int, str, str, int, float, bytes, int]:
        return (seq, "c", f"m{seq}", 50, time.time(), b"x", zlib.crc32(b"x"))

    store = SQLiteStore(tmp_path / "bus.db")
    first, second = store.reserve(1), store.reserve(1)
    await store.insert_soon([row(first)], None, [], 5.0)
    pending = store.insert_soon([row(second)], None, [], 5.0)
    store.ack([first])
    store.close()
    with pytest.raises(PersistenceError, match="closed"):
        await pending
    again = SQLiteStore(tmp_path / "bus.db")
    try:
        assert [seq for seq, *_ in again.unacked("c")] == []
    finally:
        again.close()


async def test_an_ack_riding_the_loops_pending_commit_is_written_with_it(
    tmp_path: Path,
) -> None:
    import zlib

    from neuralcore.messaging._store import SQLiteStore

    def row(seq: int) -> tuple[int, str, str, int, float, bytes, int]:
        return (seq, "c", f"m{seq}", 50, time.time(), b"x", zlib.crc32(b"x"))

    store = SQLiteStore(tmp_path / "bus.db")
    first, second = store.reserve(1), store.reserve(1)
    await store.insert_soon([row(first)], None, [], 5.0)
    pending = store.insert_soon([row(second)], None, [], 5.0)
    store.ack([first])
    await pending
    assert [seq for seq, *_ in store.unacked("c")] == [second]
    store.close()


async def test_an_ack_made_between_commits_rides_the_next_one_or_the_close(
    tmp_path: Path,
) -> None:
    # An ack made on a loop with no inline commit pending waits for the end of the
    # callback: the publish that follows opens one and the ack rides it (no transaction
    # of the writer's: two commits per message on a bridged channel otherwise). A close
    # before that callback ran still writes it (the writer's last commit).
    import zlib

    from neuralcore.messaging._store import SQLiteStore

    def row(seq: int) -> tuple[int, str, str, int, float, bytes, int]:
        return (seq, "c", f"m{seq}", 50, time.time(), b"x", zlib.crc32(b"x"))

    statements: list[str] = []  # SQLite's own trace, on the loop and the writer alike
    store = SQLiteStore(tmp_path / "bus.db")
    store._con.set_trace_callback(statements.append)
    first, second, third = store.reserve(1), store.reserve(1), store.reserve(1)
    await store.insert_soon([row(first)], None, [], 5.0)
    store.ack([first])  # nothing pending: waits for the end of this callback
    await store.insert_soon([row(second)], None, [], 5.0)
    await store.insert_soon([row(third)], None, [], 5.0)
    store.ack([second, third])
    store.close()  # before the callback: the writer's last commit takes them
    transactions = " ".join(statements).split("BEGIN")[1:]
    acking = [t for t in transactions if "DELETE FROM messages WHERE seq=1 " in t]
    assert len(acking) == 1, transactions
    assert "INSERT INTO messages" in acking[0], transactions  # no transaction of its own
    again = SQLiteStore(tmp_path / "bus.db")
    try:
        assert [seq for seq, *_ in again.unacked("c")] == []
    finally:
        again.close()
