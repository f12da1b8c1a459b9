"""Contract of ATLAS's NeuralCognitiveBus, restated, run against neuralcore's adapter.

ATLAS priorities: lower numbers first (its AgentBus uses CRITICAL 0, HIGH 2, NORMAL 5,
LOW 8, BACKGROUND 10); ``publish`` returns the message id or ``None``; subscriber failures
are retried, then dead-lettered with the original message; metrics are per channel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from neuralcore.compat.atlas import (
    ChannelConfig,
    Message,
    NeuralCognitiveBus,
    Plugin,
    SecurityConfig,
)
from neuralcore.core import AuthorizationError, ConfigError

HIGH, NORMAL, LOW = 2, 5, 8
METRIC_KEYS = {
    "published", "dropped", "dispatched", "errors",
    "publish_latency_ms_sum", "dispatch_latency_ms_sum", "queue_size",
}  # fmt: skip


@pytest.fixture
async def bus() -> AsyncIterator[NeuralCognitiveBus]:
    b = NeuralCognitiveBus()
    yield b
    if b.running:
        await b.stop()


async def _until(cond: Any, timeout: float = 10.0) -> None:  # generous: a loaded CI box
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def test_priority_high_before_normal_before_low(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("prio")
    got: list[str] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("prio", "h", handler)
    await bus.start()
    for name, pr in [("low", LOW), ("high", HIGH), ("normal", NORMAL), ("high2", HIGH)]:
        await bus.publish("prio", name, priority=pr)
    await _until(lambda: len(got) == 4)
    assert got == ["high", "high2", "normal", "low"]


async def test_envelope_fields_and_meta(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("env", ChannelConfig(name="ignored", default_priority=7))
    got: list[Message] = []

    async def handler(msg: Message) -> None:
        got.append(msg)

    await bus.register_subscriber("env", "h", handler)
    await bus.start()
    msg_id = await bus.publish("env", {"a": 1}, meta={"agent_id": "x"}, auth=None)
    await _until(lambda: got)
    m = got[0]
    assert (m.id, m.channel, m.priority, m.payload) == (msg_id, "env", 7, {"a": 1})
    assert m.meta["agent_id"] == "x"
    assert m.meta["published_by"] == "unknown"
    assert m.trace_id == m.meta["trace_id"] != ""
    assert set(m.to_dict()) == {"id", "channel", "ts", "priority", "payload", "meta"}


async def test_per_subscriber_concurrency(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("conc")
    first, second = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def handler(msg: Message) -> None:
        mine, other = (first, second) if msg.payload == "one" else (second, first)
        mine.set()
        await asyncio.wait_for(other.wait(), 2)  # needs both in flight at once
        done.append(msg.payload)

    await bus.register_subscriber("conc", "h", handler, concurrency=2)
    await bus.start()
    await bus.publish("conc", "one")
    await bus.publish("conc", "two")
    await _until(lambda: len(done) == 2)
    assert sorted(done) == ["one", "two"]


async def test_serial_subscriber_sees_one_message_at_a_time(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("serial")
    active, peak, seen = 0, 0, 0

    async def handler(msg: Message) -> None:
        nonlocal active, peak, seen
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.002)
        active -= 1
        seen += 1

    await bus.register_subscriber("serial", "h", handler)
    await bus.start()
    for i in range(10):
        await bus.publish("serial", i)
    await _until(lambda: seen == 10)
    assert peak == 1


async def test_failing_handler_is_retried_then_dead_lettered(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("work", ChannelConfig(name="work", dead_letter_channel="work.dlq"))
    calls: list[int] = []
    dead: list[Message] = []

    async def failing(msg: Message) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    async def dlq(msg: Message) -> None:
        dead.append(msg)

    await bus.register_subscriber("work", "bad", failing, retry_attempts=2, retry_delay=0.001)
    await bus.register_subscriber("work.dlq", "dlq", dlq)
    await bus.start()
    msg_id = await bus.publish("work", {"job": 1})
    await _until(lambda: dead)
    assert len(calls) == 3
    letter = dead[0]
    assert letter.priority == 0
    assert letter.meta["dlq"] is True
    assert letter.meta["origin_msg_id"] == msg_id
    p = letter.payload
    assert (p["origin_channel"], p["subscriber"], p["error_type"], p["error"]) == (
        "work", "bad", "RuntimeError", "boom",
    )  # fmt: skip
    assert "RuntimeError: boom" in p["traceback"]
    assert p["message"]["id"] == msg_id
    assert p["message"]["payload"] == {"job": 1}
    await _until(lambda: bus.snapshot_metrics()["work"]["errors"] == 1)


async def test_retry_succeeds_without_dead_letter(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("flaky", ChannelConfig(name="flaky", dead_letter_channel="flaky.dlq"))
    attempts = 0

    async def flaky(msg: Message) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 2:
            raise ValueError("once")

    await bus.register_subscriber("flaky", "f", flaky, retry_attempts=2, retry_delay=0.001)
    await bus.start()
    await bus.publish("flaky", 1)
    await _until(lambda: bus.snapshot_metrics()["flaky"]["dispatched"] == 1)
    assert attempts == 2
    assert bus.snapshot_metrics()["flaky.dlq"]["published"] == 0


async def test_dead_letters_do_not_loop(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("a", ChannelConfig(name="a", dead_letter_channel="a.dlq"))
    bus._channel_cfg["a.dlq"].dead_letter_channel = "a"  # a DLQ pointing back must not loop

    async def failing(msg: Message) -> None:
        raise RuntimeError("x")

    await bus.register_subscriber("a", "f", failing)
    await bus.register_subscriber("a.dlq", "g", failing)
    await bus.start()
    await bus.publish("a", 1)
    await _until(lambda: bus.snapshot_metrics()["a.dlq"]["errors"] == 1)
    # a marker behind it: a looping dead letter (priority 0) is handled before the marker
    # (default priority), so once the marker has failed on both channels, a loop has shown
    await bus.publish("a", 2)
    await _until(lambda: bus.snapshot_metrics()["a.dlq"]["errors"] == 2)
    m = bus.snapshot_metrics()
    assert (m["a"]["published"], m["a.dlq"]["published"]) == (2, 2)


async def test_filters_and_filter_errors(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("f", ChannelConfig(name="f", dead_letter_channel="f.dlq"))
    even: list[int] = []
    dead: list[Message] = []

    def only_even(msg: Message) -> bool:
        if msg.payload == 99:
            raise KeyError("bad filter")
        return msg.payload % 2 == 0

    async def keep(msg: Message) -> None:
        even.append(msg.payload)

    async def dlq(msg: Message) -> None:
        dead.append(msg)

    await bus.register_subscriber("f", "even", keep, only_even)
    await bus.register_subscriber("f.dlq", "dlq", dlq)
    await bus.start()
    for i in [*range(5), 99]:
        await bus.publish("f", i)
    await _until(lambda: dead and len(even) == 3)
    assert even == [0, 2, 4]
    assert dead[0].payload["error_type"] == "KeyError"


async def test_metrics_keys_and_counts(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("m")

    async def ok(msg: Message) -> None:
        pass

    await bus.register_subscriber("m", "ok", ok)
    await bus.start()
    for _ in range(3):
        await bus.publish("m", None)
    await _until(lambda: bus.snapshot_metrics()["m"]["dispatched"] == 3)
    snap = bus.snapshot_metrics()["m"]
    assert set(snap) == METRIC_KEYS
    assert (snap["published"], snap["dropped"], snap["errors"], snap["queue_size"]) == (3, 0, 0, 0)
    assert snap["publish_latency_ms_sum"] > 0
    assert "m" in bus.metrics_text()


async def test_full_queue_drop_new_returns_none(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("small", ChannelConfig(name="small", max_queue_size=2))
    ids = [await bus.publish("small", i) for i in range(3)]  # not started: nothing drains
    assert ids[0]
    assert ids[1]
    assert ids[2] is None
    snap = bus.snapshot_metrics()["small"]
    assert (snap["published"], snap["dropped"], snap["queue_size"]) == (2, 1, 2)


async def test_full_queue_drop_old_keeps_the_urgent(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("old", ChannelConfig(name="old", max_queue_size=2, drop_policy="drop_old"))
    got: list[str] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("old", "h", handler)
    await bus.publish("old", "low", priority=LOW)
    await bus.publish("old", "high", priority=HIGH)
    assert await bus.publish("old", "normal", priority=NORMAL) is not None
    await bus.start()
    await _until(lambda: len(got) == 2)
    assert got == ["high", "normal"]


async def test_unknown_channel(bus: NeuralCognitiveBus) -> None:
    assert await bus.publish("nope", 1) is None

    async def h(msg: Message) -> None:
        pass

    with pytest.raises(ValueError, match="does not exist"):
        await bus.register_subscriber("nope", "h", h)


async def test_channel_validator() -> None:
    bus = NeuralCognitiveBus(channel_validator=lambda name: "." in name)
    bus.create_channel("ok.name")
    assert await bus.publish("ok.name", 1)
    with pytest.raises(ValueError, match="Invalid channel name"):
        await bus.publish("bad", 1)


async def test_security_api_keys_and_roles() -> None:
    sec = SecurityConfig(enabled=True, api_keys={"k1"}, channel_roles={"ops": {"admin"}})
    bus = NeuralCognitiveBus(security=sec)
    bus.create_channel("ops")
    bus.create_channel("open")
    assert await bus.publish("open", 1, auth={"api_key": "k1"})
    assert await bus.publish("ops", 1, auth={"api_key": "k1", "roles": ["admin"]})
    for auth in (None, {"api_key": "wrong"}, {"api_key": "k1", "roles": ["user"]}, {"x": 1}):
        with pytest.raises(PermissionError):
            await bus.publish("ops", 1, auth=auth)
    with pytest.raises(AuthorizationError):
        await bus.register_subscriber("ops", "h", _noop, auth={"api_key": "k1"})


async def _noop(msg: Message) -> None:
    pass


async def test_plugins_validate_transform_and_observe(bus: NeuralCognitiveBus) -> None:
    seen: list[tuple[str, Any]] = []

    async def validate(msg: Message) -> None:
        if msg.payload == "reject":
            raise ValueError("no")

    async def pre_publish(msg: Message) -> Message:
        return Message(msg.id, msg.channel, msg.ts, msg.priority, f"{msg.payload}!", msg.meta)

    async def post_publish(msg: Message) -> None:
        seen.append(("post_publish", msg.payload))

    async def post_dispatch(msg: Message) -> None:
        seen.append(("post_dispatch", msg.payload))

    async def broken_sink(msg: Message) -> None:
        raise RuntimeError("sink")

    bus.add_plugin(Plugin("p", pre_publish, post_publish, None, post_dispatch, validate))
    bus.add_plugin(Plugin("broken", post_publish=broken_sink))
    bus.create_channel("c")
    got: list[Any] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("c", "h", handler)
    await bus.start()
    assert await bus.publish("c", "reject") is None
    assert await bus.publish("c", "hi")
    await _until(lambda: ("post_dispatch", "hi!") in seen)
    assert got == ["hi!"]
    assert ("post_publish", "hi!") in seen
    assert bus.snapshot_metrics()["c"]["errors"] == 2  # the rejection and the broken sink


async def test_idempotency_key_field_drops_duplicates(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("idem")
    bus._channel_cfg["idem"].idempotency_key_field = "id"  # as ATLAS's AgentBus sets it
    got: list[Any] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("idem", "h", handler)
    await bus.start()
    for p in [{"id": 1}, {"payload": {"id": 1}}, {"id": 2}, {"other": 3}, {"id": "end"}]:
        await bus.publish("idem", p)
    await _until(lambda: {"id": "end"} in got)  # the last one in: the others were handled
    assert got == [{"id": 1}, {"id": 2}, {"other": 3}, {"id": "end"}]


async def test_unregister_and_remove_channel(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("u")
    got: list[Any] = []
    watched: list[Any] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    async def watcher(msg: Message) -> None:
        watched.append(msg.payload)

    await bus.register_subscriber("u", "h", handler)
    await bus.register_subscriber("u", "w", watcher)  # stays: shows when 2 was delivered
    await bus.start()
    await bus.publish("u", 1)
    await _until(lambda: got == [1])
    await bus.unregister_subscriber("u", "h")
    await bus.publish("u", 2)
    await _until(lambda: 2 in watched)
    assert got == [1]
    bus.remove_channel("u")
    assert "u" not in bus._queues
    assert await bus.publish("u", 3) is None


async def test_subscriber_rate_limit_spaces_deliveries(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("r")
    times: list[float] = []

    async def handler(msg: Message) -> None:
        times.append(asyncio.get_running_loop().time())

    await bus.register_subscriber("r", "h", handler, rate_limit_per_sec=50, rate_limit_burst=1)
    await bus.start()
    for i in range(4):
        await bus.publish("r", i)
    await _until(lambda: len(times) == 4)
    assert times[-1] - times[0] >= 0.05  # 3 refills at 50/s


async def test_restart_after_stop(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("s")
    got: list[Any] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("s", "h", handler)
    await bus.start()
    await bus.publish("s", 1)
    await _until(lambda: got == [1])
    await bus.stop()
    assert not bus.running
    await bus.start()
    await bus.publish("s", 2)
    await _until(lambda: got == [1, 2])


async def test_channel_created_while_running_and_agentbus_style_access(
    bus: NeuralCognitiveBus,
) -> None:
    await bus.start()
    bus.create_channel("late", ChannelConfig(name="late", drop_policy="block", default_priority=5))
    assert "late" in bus._queues
    bus._channel_cfg["late"].dead_letter_channel = "late.dlq"  # edited in place, as AgentBus does
    got: list[Any] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("late", "h", handler)
    assert await bus.publish(channel_name="late", payload={"x": 1}, priority=2, meta={})
    await _until(lambda: got == [{"x": 1}])


def test_apply_config_creates_updates_and_names_bad_keys(tmp_path: Path) -> None:
    bus = NeuralCognitiveBus(default_max_queue_size=77)
    bus.apply_config(
        {
            "channels": {"jobs": {"drop_policy": "drop_old", "dead_letter_channel": "jobs.dlq"}},
            "security": {"enabled": True, "api_keys": ["k"]},
        }
    )
    cfg = bus._channel_cfg["jobs"]
    assert (cfg.max_queue_size, cfg.drop_policy) == (77, "drop_old")
    assert "jobs.dlq" in bus._queues
    assert bus._security.enabled
    assert bus._security.api_keys == {"k"}
    bus.apply_config({"channels": {"jobs": {"rate_limit_per_sec": 5, "rate_limit_burst": 2}}})
    assert bus._channel_cfg["jobs"].rate_limit_per_sec == 5
    assert bus._channel_cfg["jobs"].drop_policy == "drop_old"  # untouched keys keep their value
    with pytest.raises(ConfigError) as info:
        bus.apply_config({"channels": {"jobs": {"max_queue_sz": 5}}})
    assert info.value.field == "channels.jobs.max_queue_sz"
    path = tmp_path / "bus.json"
    path.write_text(json.dumps({"channels": {"x": {}}}))
    assert bus.load_config_file(path) == {"channels": {"x": {}}}
    yml = tmp_path / "bus.yaml"
    yml.write_text("channels:\n  y:\n    persistent: true\n")
    assert bus.load_config_file(yml)["channels"]["y"]["persistent"] is True
    with pytest.raises(FileNotFoundError):
        bus.load_config_file(tmp_path / "missing.yaml")


async def test_hot_reload_applies_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "hot.yaml"
    path.write_text("channels:\n  hot.a: {}\n")
    bus = NeuralCognitiveBus(hot_reload_config_path=path, hot_reload_interval_sec=0.01)
    await bus.start()
    try:
        await _until(lambda: "hot.a" in bus._queues)
    finally:
        await bus.stop()


def _atlas_file(path: Path, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """A persistence file as ATLAS's own bus writes it (its schema, msgpack blobs)."""
    import sqlite3

    import msgpack

    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE ncb_messages (channel TEXT NOT NULL, seq INTEGER PRIMARY KEY "
        "AUTOINCREMENT, msg_id TEXT NOT NULL, ts REAL NOT NULL, priority INTEGER NOT NULL, "
        "data BLOB NOT NULL)"
    )
    for channel, d in rows:
        con.execute(
            "INSERT INTO ncb_messages(channel, msg_id, ts, priority, data) VALUES(?,?,?,?,?)",
            (channel, d["id"], d["ts"], d["priority"], msgpack.packb(d, use_bin_type=True)),
        )
    con.commit()
    con.close()


async def test_restart_redelivers_nothing_as_in_atlas(tmp_path: Path) -> None:
    db = tmp_path / "ncb.sqlite"
    first = NeuralCognitiveBus(persistence_path=db)
    first.create_channel("tool.invoke", ChannelConfig(name="tool.invoke", persistent=True))
    assert await first.publish("tool.invoke", {"n": 1})  # never started: never delivered
    await first.stop()
    second = NeuralCognitiveBus(persistence_path=db)
    second.create_channel("tool.invoke", ChannelConfig(name="tool.invoke", persistent=True))
    got: list[Any] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await second.register_subscriber("tool.invoke", "h", handler)
    await second.start()
    try:
        await second.publish("tool.invoke", {"n": 2})
        await _until(lambda: got != [])
        assert got == [{"n": 2}]  # the stale {"n": 1} is not redelivered
    finally:
        await second.stop()


async def test_existing_atlas_persistence_file_opens_and_replays(tmp_path: Path) -> None:
    db = tmp_path / "atlas.sqlite"
    old = {"id": "m1", "channel": "jobs", "ts": 1.0, "priority": 5, "payload": {"n": 1},
           "meta": {"trace_id": "t1"}}  # fmt: skip
    _atlas_file(db, [("jobs", old), ("other", {**old, "id": "m0", "channel": "other"})])
    bus = NeuralCognitiveBus(persistence_path=db)
    bus.create_channel("jobs", ChannelConfig(name="jobs", persistent=True))
    got: list[Message] = []

    async def handler(msg: Message) -> None:
        got.append(msg)

    await bus.register_subscriber("jobs", "h", handler, replay_on_register=True)
    assert [(m.id, m.payload, m.meta["replay"], m.meta["persist_seq"]) for m in got] == [
        ("m1", {"n": 1}, True, 1)
    ]
    await bus.start()
    try:
        new_id = await bus.publish("jobs", {"n": 2})
        await _until(lambda: len(got) == 2)
    finally:
        await bus.stop()
    import sqlite3

    import msgpack

    con = sqlite3.connect(db)
    rows = con.execute("SELECT seq, msg_id, data FROM ncb_messages WHERE channel='jobs'").fetchall()
    con.close()  # ATLAS's own bus reads this file back: same table, same codec
    assert [(seq, mid) for seq, mid, _ in rows] == [(1, "m1"), (3, new_id)]
    assert msgpack.unpackb(rows[1][2])["payload"] == {"n": 2}
    late: list[Message] = []

    async def late_handler(msg: Message) -> None:
        late.append(msg)

    again = NeuralCognitiveBus(persistence_path=db)
    again.create_channel("jobs", ChannelConfig(name="jobs", persistent=True))
    await again.register_subscriber(
        "jobs", "late", late_handler, replay_on_register=True, replay_after_seq=1
    )
    assert [m.payload for m in late] == [{"n": 2}]


async def test_waiters_run_between_deliveries(bus: NeuralCognitiveBus) -> None:
    """As under ATLAS's bus, the loop runs other ready work between deliveries: a
    coroutine woken by one delivery runs before the channel moves far on."""
    bus.create_channel("steps")
    seen: list[int] = []
    second = asyncio.Event()

    async def handler(msg: Message) -> None:
        seen.append(msg.payload)
        if len(seen) == 2:
            second.set()

    await bus.register_subscriber("steps", "h", handler)
    await bus.start()
    for i in range(20):
        await bus.publish("steps", i)
    await asyncio.wait_for(second.wait(), 2)
    assert len(seen) < 20


async def test_drop_old_evicts_the_least_urgent_queued_and_accepts_the_new(
    bus: NeuralCognitiveBus,
) -> None:
    """ATLAS: when full, drop the worst queued (highest number, newest) and accept."""
    bus.create_channel("d", ChannelConfig(name="d", max_queue_size=3, drop_policy="drop_old"))
    got: list[int] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("d", "h", handler)
    for i, pr in enumerate([1, 1, 1, 9]):
        assert await bus.publish("d", i, priority=pr) is not None
    assert bus.snapshot_metrics()["d"]["queue_size"] == 3
    await bus.start()
    await _until(lambda: len(got) == 3)
    assert got == [0, 1, 3]
    for i in range(4, 8):  # equal priorities: the newest queued (6) goes
        await bus.publish("d", i, priority=5)
    await _until(lambda: len(got) == 6)
    assert got[3:] == [4, 5, 7]


async def test_apply_config_reaches_a_live_channel(tmp_path: Path) -> None:
    bus = NeuralCognitiveBus(persistence_path=tmp_path / "ncb.sqlite")
    bus.create_channel("live", ChannelConfig(name="live", max_queue_size=2))
    await bus.publish("live", "a", priority=1)
    await bus.publish("live", "b", priority=9)
    assert await bus.publish("live", "c", priority=1) is None  # drop_new
    bus.apply_config({"channels": {"live": {"drop_policy": "drop_old", "persistent": True}}})
    assert await bus.publish("live", "d", priority=1) is not None  # now drop_old: "b" goes
    got: list[str] = []

    async def handler(msg: Message) -> None:
        got.append(msg.payload)

    await bus.register_subscriber("live", "h", handler)
    await bus.start()
    try:
        await _until(lambda: len(got) == 2)
        assert got == ["a", "d"]
    finally:
        await bus.stop()
    import sqlite3

    con = sqlite3.connect(tmp_path / "ncb.sqlite")
    logged = con.execute("SELECT count(*) FROM ncb_messages WHERE channel='live'").fetchone()
    con.close()
    assert logged == (1,)  # persistence switched on live: "d" was logged


async def test_published_by_never_holds_the_api_key() -> None:
    sec = SecurityConfig(enabled=True, api_keys={"s3cret-key"})
    bus = NeuralCognitiveBus(security=sec)
    bus.create_channel("c")
    got: list[Message] = []

    async def handler(msg: Message) -> None:
        got.append(msg)

    await bus.register_subscriber("c", "h", handler, auth={"api_key": "s3cret-key"})
    await bus.start()
    try:
        await bus.publish("c", 1, auth={"api_key": "s3cret-key"})
        await bus.publish("c", 2, auth={"api_key": "s3cret-key", "sub": "alice"})
        await _until(lambda: len(got) == 2)
    finally:
        await bus.stop()
    by = [m.meta["published_by"] for m in got]
    assert "s3cret-key" not in by[0]
    assert by[0].startswith("api_key:sha256:")
    assert by[1] == "alice"


def test_jwt_without_pyjwt_is_a_permission_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jwt", None)  # import jwt raises ImportError
    sec = SecurityConfig(enabled=True, jwt_secret="s")
    with pytest.raises(PermissionError, match="PyJWT"):
        sec.verify({"jwt": "token"}, "c")


async def test_benchmark_on_unknown_channel_is_a_value_error(bus: NeuralCognitiveBus) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        await bus.benchmark("nope", messages=10)


async def test_message_ids_are_unique_uuid_strings(bus: NeuralCognitiveBus) -> None:
    import uuid

    bus.create_channel("ids", ChannelConfig(name="ids", max_queue_size=100))
    ids = [await bus.publish("ids", i) for i in range(50)]
    assert len(set(ids)) == 50
    assert all(uuid.UUID(str(i)).version == 4 for i in ids)
    other = NeuralCognitiveBus()
    other.create_channel("ids")
    assert await other.publish("ids", 0) not in ids


async def test_benchmark_reports_atlas_keys(bus: NeuralCognitiveBus) -> None:
    bus.create_channel("bench", ChannelConfig(name="bench", max_queue_size=5000))
    await bus.start()
    result = await bus.benchmark("bench", messages=2000, concurrency=7)
    assert set(result) == {
        "channel",
        "messages",
        "concurrency",
        "seconds",
        "msgs_per_sec",
        "metrics",
    }
    assert result["metrics"]["dispatched"] == 2000
    assert result["msgs_per_sec"] == pytest.approx(2000 / result["seconds"])
    with pytest.raises(LookupError):
        await bus.benchmark("missing", messages=1)


async def test_envelopes_are_atlas_messages_when_atlas_bus_is_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses
    import sys
    import types

    @dataclasses.dataclass(frozen=True)
    class AtlasMessage:  # the shape of core.messaging.NCB.Message
        id: str
        channel: str
        ts: float
        priority: int
        payload: Any
        meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    ncb = types.ModuleType("core.messaging.NCB")
    ncb.Message = AtlasMessage  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "core.messaging.NCB", ncb)
    bus = NeuralCognitiveBus()
    bus.create_channel("t")
    got: list[Any] = []

    async def handler(msg: Any) -> None:
        got.append(msg)

    await bus.register_subscriber("t", "h", handler)
    await bus.start()
    try:
        await bus.publish("t", {"x": 1}, meta={"k": "v"})
        await _until(lambda: got != [])
    finally:
        await bus.stop()
    (msg,) = got
    assert isinstance(msg, AtlasMessage)
    assert isinstance(msg, Message)
    assert (msg.payload, msg.meta["k"], msg.trace_id) == ({"x": 1}, "v", msg.id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.payload = 2  # type: ignore[misc]
