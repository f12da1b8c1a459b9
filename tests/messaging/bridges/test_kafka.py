"""KafkaBridge against a real Kafka-protocol broker (tansu): processes, faults, dead letters."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
from bridge_helpers import Peer, PortBus

from neuralcore._testing import TansuServer
from neuralcore.messaging import Message
from neuralcore.messaging.bridges import BridgeState, KafkaBridge, KafkaBridgeConfig

pytestmark = [pytest.mark.kafka, pytest.mark.integration]

PeerFactory = Callable[[str, dict[str, Any]], Peer]


def spec(server: TansuServer, role: str, n: int, **config: Any) -> dict[str, Any]:
    cfg = {"bootstrap": server.bootstrap, "channels": ["orders"], "session_timeout_ms": 6000,
           "compression": "lz4", "linger_ms": 2.0, **config}  # fmt: skip
    return {"kind": "kafka", "channel": "orders", "n": n, "role": role, "config": cfg}


def origin_of(peer: Peer) -> str:
    assert peer.wait_until(lambda p: bool(p.events("ready")), 30)
    return str(peer.events("ready")[0]["origin"])


def got_ids(peer: Peer) -> list[str]:
    return [e["id"] for e in peer.events("got")]


def test_message_crosses_processes_intact(tansu_server: TansuServer, peers: PeerFactory) -> None:
    n = 500
    sub = peers("sub", spec(tansu_server, "sub", n, channels=["ord*"], direction="in"))
    origin_of(sub)
    pub = peers("pub", spec(tansu_server, "pub", n, direction="out", compression="zstd"))
    origin = origin_of(pub)
    pub.finish()
    sub.finish()
    got = sub.events("got")
    assert sorted(e["id"] for e in got) == sorted(f"{origin}-{i + 1:x}" for i in range(n))
    e = next(e for e in got if e["headers"]["seq"] == 42)
    assert (e["priority"], e["headers"], e["payload"]) == (
        2, {"seq": 42, "key": "2"}, {"i": 42, "text": "message 42"},
    )  # fmt: skip
    per_key: dict[tuple[str, int], list[int]] = {}
    for ev in got:  # one key -> one partition -> publish order kept within a priority
        per_key.setdefault((ev["headers"]["key"], ev["priority"]), []).append(ev["headers"]["seq"])
    assert len(per_key) == 20
    assert all(seqs == sorted(seqs) for seqs in per_key.values())


def test_both_directions_never_echo(tansu_server: TansuServer, peers: PeerFactory) -> None:
    n = 100
    a = peers("a", {**spec(tansu_server, "both", n, group="ga"), "expect": 2 * n, "linger": 2})
    b = peers("b", {**spec(tansu_server, "both", n, group="gb"), "expect": 2 * n, "linger": 2})
    origin_a, origin_b = origin_of(a), origin_of(b)
    a.finish()
    b.finish()
    for peer, own, other in ((a, origin_a, origin_b), (b, origin_b, origin_a)):
        ids = got_ids(peer)
        assert len(ids) == len(set(ids)) == 2 * n
        assert {i for i in ids if i.startswith(other)} == {f"{other}-{k + 1:x}" for k in range(n)}
        assert sum(i.startswith(own) for i in ids) == n


def test_dead_consumer_uncommitted_messages_redelivered(
    tansu_server: TansuServer, peers: PeerFactory
) -> None:
    n = 40
    holder = peers("hold", spec(tansu_server, "hold", n, group="workers", direction="in"))
    origin_of(holder)
    pub = peers("pub", spec(tansu_server, "pub", n, direction="out"))
    origin = origin_of(pub)
    pub.finish()
    assert holder.wait_until(lambda p: len(p.events("got")) >= 1, 30)
    holder.kill()  # committed nothing
    taker = peers("take", {**spec(tansu_server, "sub", n, group="workers", direction="in"),
                           "seconds": 40})  # fmt: skip
    taker.finish()
    assert sorted(got_ids(taker)) == sorted(f"{origin}-{i + 1:x}" for i in range(n))


async def test_broker_restart_buffers_then_resends(tansu_server: TansuServer) -> None:
    port, reader = PortBus("sender"), PortBus("reader")
    boot = tansu_server.bootstrap
    out = KafkaBridge(KafkaBridgeConfig(bootstrap=boot, channels=("orders",), direction="out"))
    inn = KafkaBridge(KafkaBridgeConfig(
        bootstrap=boot, channels=("orders",), direction="in", session_timeout_ms=6000,
    ))  # fmt: skip
    await out.start_port(port)
    await inn.start_port(reader)
    try:
        for i in range(20):
            port.publish("orders", {"i": i})
        assert len(await reader.wait_for(20, 30)) == 20
        tansu_server.kill()
        await _until(lambda: out.state is BridgeState.RECONNECTING)
        for i in range(20, 120):
            port.publish("orders", {"i": i})
        await _until(lambda: out.buffered == 100)
        tansu_server.start()  # tansu's memory engine comes back empty
        back = time.monotonic()
        await _until(lambda: out.state is BridgeState.CONNECTED)
        reconnect_s = time.monotonic() - back
        got = await reader.wait_for(120, 40)
        assert sorted(m.payload["i"] for m in got) == list(range(120))  # same consumer, resumed
        assert len({m.id for m in got}) == 120
        assert out.buffered == 0
        assert reconnect_s < 1.0
    finally:
        await inn.stop()
        await out.stop()


async def test_malformed_records_dead_lettered(tansu_server: TansuServer) -> None:
    from confluent_kafka import Consumer, Producer

    reader = PortBus("reader")
    inn = KafkaBridge(KafkaBridgeConfig(
        bootstrap=tansu_server.bootstrap, channels=("orders",), session_timeout_ms=6000,
    ))  # fmt: skip
    await inn.start_port(reader)
    try:
        raw = Producer({"bootstrap.servers": tansu_server.bootstrap})
        raw.produce("nc.orders", b"\xc1 garbage")
        raw.produce("nc.orders", b"\x93\x01\x02\x03")
        good = Message("orders", {"ok": 1}, id="remote-1", origin="remote", priority=9)
        raw.produce("nc.orders", reader.encode(good))
        envelopes = [  # a pack (the documented wire format) with one bad envelope inside
            reader.encode(Message("orders", 2, id="remote-2", origin="remote")),
            b"\xc1 in a pack",
            reader.encode(Message("orders", 3, id="remote-3", origin="remote")),
        ]
        lengths = struct.pack(">4sI3I", b"NCB\x01", 3, *map(len, envelopes))
        raw.produce("nc.orders", lengths + b"".join(envelopes), b"orders")
        broken = b"NCB\x01" + struct.pack(">I", 5) + b"short"  # framing that does not add up
        raw.produce("nc.orders", broken, b"orders")
        raw.flush(10)
        got = await reader.wait_for(3, 30)
        assert sorted((m.id, m.priority) for m in got) == [
            ("remote-1", 9), ("remote-2", 50), ("remote-3", 50),
        ]  # fmt: skip
        await _until(lambda: inn.metrics().dead_lettered == 4)
        assert inn.state is BridgeState.CONNECTED
        dlq = Consumer({"bootstrap.servers": tansu_server.bootstrap, "group.id": "dlq-check",
                        "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                        "fetch.wait.max.ms": 10})  # fmt: skip
        dlq.subscribe(["nc._dlq"])
        seen: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            seen += [r.value() for r in await asyncio.to_thread(dlq.consume, 10, 0.2)
                     if r.error() is None]  # fmt: skip
        dlq.close()
        assert sorted(seen) == sorted(
            [b"\xc1 garbage", b"\x93\x01\x02\x03", b"\xc1 in a pack", broken]
        )
    finally:
        await inn.stop()


async def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_sasl_credentials_never_logged(
    tansu_server: TansuServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = KafkaBridgeConfig(
        bootstrap=tansu_server.bootstrap, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_username="svc", sasl_password="kafka-s3cret-77",
        direction="out", channels=("orders",),
    )  # fmt: skip
    bridge = KafkaBridge(cfg)
    refusal = ""
    try:
        await bridge.start_port(PortBus("x"))  # tansu may accept or refuse SASL: either way
        await asyncio.sleep(1.0)
    except Exception as err:  # a refusal must not carry the secret either
        refusal = repr(err)
    finally:
        await bridge.stop(timeout=0.5)
    text = caplog.text + repr(cfg) + str(bridge.health()) + str(cfg.redacted()) + refusal
    assert "kafka-s3cret-77" not in text


class _FatalAfterPolls:
    """Fault injection: a real producer whose poll goes FATAL (as after a broker restart)."""

    made = 0

    def __init__(self, conf: dict[str, Any]) -> None:
        import confluent_kafka as ck

        self._ck = ck
        self._real = ck.Producer(conf)
        self._polls = 0
        self._broken = _FatalAfterPolls.made == 0  # only the first producer breaks
        _FatalAfterPolls.made += 1

    def _fatal(self) -> Exception:
        ck = self._ck
        return ck.KafkaException(ck.KafkaError(ck.KafkaError._FATAL, "injected", fatal=True))

    def poll(self, timeout: float) -> int:
        self._polls += 1
        if self._broken and self._polls > 4:
            raise self._fatal()
        return int(self._real.poll(timeout))

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self._real.produce(*args, **kwargs)

    def purge(self, **kwargs: Any) -> None:
        if self._broken:
            raise self._fatal()
        self._real.purge(**kwargs)

    def flush(self, timeout: float) -> int:
        return int(self._real.flush(timeout))


async def test_fatal_producer_is_rebuilt_and_nothing_lost(tansu_server: TansuServer) -> None:
    import types

    import confluent_kafka

    port, reader = PortBus("sender"), PortBus("reader")
    boot = tansu_server.bootstrap
    out = KafkaBridge(KafkaBridgeConfig(bootstrap=boot, channels=("orders",), direction="out"))
    transport: Any = out.transport  # fault injection: a producer that dies
    assert transport.kind == "kafka"
    transport._ck = types.SimpleNamespace(**vars(confluent_kafka))
    transport._ck.Producer = _FatalAfterPolls
    _FatalAfterPolls.made = 0
    inn = KafkaBridge(KafkaBridgeConfig(
        bootstrap=boot, channels=("orders",), direction="in", session_timeout_ms=6000,
    ))  # fmt: skip
    await out.start_port(port)
    await inn.start_port(reader)
    try:
        for i in range(200):
            port.publish("orders", {"i": i})
            if i % 20 == 19:
                await asyncio.sleep(0.02)
        got = await reader.wait_for(200, 40)
        assert sorted(m.payload["i"] for m in got) == list(range(200))
        assert len({m.id for m in got}) == len(got)  # resent ones dropped by id
        assert _FatalAfterPolls.made >= 2  # the producer was rebuilt
        assert out.state is BridgeState.CONNECTED
    finally:
        await inn.stop()
        await out.stop()


def test_request_answered_by_another_process_over_kafka(
    tansu_server: TansuServer, peers: PeerFactory
) -> None:
    n = 5
    common = {"channels": ["rpc"], "linger_ms": 0.0}
    responder = peers(
        "responder",
        {**spec(tansu_server, "responder", 0, group="gr", **common), "channel": "rpc",
         "seconds": 60},
    )  # fmt: skip
    assert responder.wait_until(lambda p: bool(p.events("ready")), 30)
    requester = peers(
        "requester",
        {**spec(tansu_server, "requester", n, group="gq", **common), "channel": "rpc"},
    )
    requester.finish()
    pid = responder.events("ready")[0]["pid"]
    answers = [r["answer"] for r in requester.events("reply")]
    assert answers == [{"echo": {"i": i}, "pid": pid} for i in range(n)]
