"""Kafka bridge: idempotent producer, consumer group, offsets committed after local acks.

librdkafka calls block, so the producer is polled and the consumer is read on one daemon
thread each; results come back to the event loop with ``call_soon_threadsafe``.

Wire format: a record's value is one encoded envelope (``bus.codec``), or a *pack* of
several envelopes of one channel and key, in publish order::

    b"NCB\x01" | count: u32 big-endian | count x length: u32 big-endian | envelopes

A pack is one record: one delivery report, one offset. Its envelopes are checked,
deduplicated and dead-lettered one by one; its offset is committed once every envelope
in it was settled (so a crash redelivers the whole pack; receivers drop the ids they
already delivered). ``KafkaBridgeConfig.pack=1`` sends one envelope per record.
"""

from __future__ import annotations

import array
import asyncio
import concurrent.futures
import contextlib
import logging
import operator
import queue
import re
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from neuralcore.core import BridgeConnectionError, require
from neuralcore.messaging._message import Message
from neuralcore.messaging._native import pack_items as _pack_items
from neuralcore.messaging.bridges._buffer import Outgoing
from neuralcore.messaging.bridges._config import Direction, KafkaBridgeConfig, channel_names
from neuralcore.messaging.bridges._runner import BridgeRunner
from neuralcore.messaging.bridges._transport import REPLY_PREFIX, FatalBridgeError, Link, Loop

__all__ = ("PACK_MAGIC", "KafkaBridge", "KafkaTransport", "pack", "unpack")

logger = logging.getLogger(__name__)

_FATAL_CODES = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL")
_DOWN_CODES = ("_ALL_BROKERS_DOWN",)
_CONSUME = 512  # most records (packs) per consume call, whatever the send batch size
_REFRESH_S = 1.0  # how often a work-queue member re-checks topics and local subscribers
_TOPIC_BAD = re.compile(r"[^a-zA-Z0-9._-]")
PACK_MAGIC = b"NCB\x01"
_U32 = struct.Struct(">I")
_LITTLE = sys.byteorder == "little"  # pack lengths are big-endian
if array.array("I").itemsize != 4:  # pragma: no cover - every platform Python supports
    raise ImportError("neuralcore's Kafka pack framing needs a 4-byte C unsigned int")


_CHANNEL = operator.itemgetter(0)  # of an Outgoing: with the key, what one pack shares
_KEY = operator.itemgetter(2)
_DATA = operator.itemgetter(1)


def pack(envelopes: list[bytes]) -> bytes:
    """Frame several encoded envelopes as one record value (see the module docstring).

    Examples
    --------
    >>> unpack(pack([b"ab", b"c"]))
    [b'ab', b'c']
    """
    lengths = array.array("I", map(len, envelopes))  # C unsigned int: 4 bytes, checked below
    if _LITTLE:
        lengths.byteswap()
    return b"".join((PACK_MAGIC, _U32.pack(len(envelopes)), lengths.tobytes(), *envelopes))


def unpack(value: bytes) -> list[bytes]:
    """The envelopes of a :func:`pack` value; ``ValueError`` when the framing is wrong."""
    if len(value) < 8:
        raise ValueError("truncated pack header")
    (n,) = _U32.unpack_from(value, 4)
    start = 8 + 4 * n
    if n == 0 or start > len(value):
        raise ValueError(f"bad pack: {n} envelopes in {len(value)} bytes")
    lengths = struct.unpack_from(f">{n}I", value, 8)
    if start + sum(lengths) != len(value):
        raise ValueError("pack lengths do not add up to the record size")
    view, out = memoryview(value), []
    for length in lengths:
        out.append(bytes(view[start : start + length]))
        start += length
    return out


class _Batch:
    """Delivery reports of one sent batch, resolved on the loop when all are in.

    A failed record fails the whole batch (it is sent again; receivers drop the duplicates
    by id), which keeps the per-record callback to a counter.
    """

    __slots__ = ("failed", "future", "items", "loop", "remaining", "timed_out")

    def __init__(
        self, items: list[Outgoing], records: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.items = items
        self.loop = loop
        self.remaining = records
        self.failed = False
        self.timed_out = False
        self.future: asyncio.Future[None] = loop.create_future()

    def report(self, err: Any, _record: Any) -> None:
        """Delivery callback (producer poll thread)."""
        if err is not None:
            self.failed = True
            self.timed_out = self.timed_out or err.fatal() or err.name() == "_MSG_TIMED_OUT"
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(_resolve, self.future)

    def abandon(self) -> None:
        """The producer was destroyed: count the batch as failed."""
        if not self.future.done():
            self.failed = True
            self.future.set_result(None)

    def failures(self) -> list[Outgoing]:
        """The records to send again."""
        return list(self.items) if self.failed else []


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Partition:
    """Offsets of one partition handed to the bus; the commit point is the first unsettled."""

    __slots__ = ("done", "order", "parts", "position")

    def __init__(self) -> None:
        self.order: deque[int] = deque()
        self.done: set[int] = set()
        self.parts: dict[int, int] = {}  # offset of a pack -> envelopes not settled yet
        self.position = -1

    def settle(self, offset: int) -> bool:
        """Mark ``offset`` settled (a pack: once all its envelopes are); True when the
        commit position moved."""
        left = self.parts.get(offset)
        if left is not None:
            if left > 1:
                self.parts[offset] = left - 1
                return False
            del self.parts[offset]
        self.done.add(offset)
        moved = False
        while self.order and self.order[0] in self.done:
            first = self.order.popleft()
            self.done.discard(first)
            self.position, moved = first + 1, True
        return moved


class _Reader:
    """One consumer group this bus reads through: its consumer, thread and offsets.

    ``private`` is the bus's own fan-out group (``fanout.<consumer>``: own replies and
    every fan-out channel); each work-queue group (``group`` / ``groups``) is a reader
    of its own, so a channel's records go to one member of its group only.
    """

    __slots__ = (
        "commits", "consumer", "dead", "error", "group", "lag", "partitions", "private",
        "resubscribe", "subscribed_to",
    )  # fmt: skip

    def __init__(self, group: str, private: bool) -> None:
        self.group = group
        self.private = private
        self.consumer: Any = None
        self.error: asyncio.Future[None] | None = None
        self.dead = False
        self.lag = 0  # records on the broker past this consumer's positions
        self.partitions: dict[tuple[str, int], _Partition] = {}
        self.commits: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self.subscribed_to: list[str] = []
        self.resubscribe: list[str] | None = None  # handed to the consumer thread


class KafkaBridge(BridgeRunner):
    """Carry bus channels over Kafka with confluent-kafka (librdkafka).

    Each channel is the topic ``topic_prefix + channel`` (created by the bridge with
    ``partitions`` partitions). The producer is idempotent with ``acks=all``, batches with
    ``linger_ms``/``batch_size``/``batch_bytes`` and compresses. Records are keyed by
    channel, so a channel lives on one partition and one producer's messages arrive in
    publish order (``key_header`` names a header to key by instead). In fan-out mode (no
    ``group``) the consumer uses a group private to this bus, starting, where it has no
    committed offset, at the time the bridge started; with ``group`` it joins that shared
    group (members split the partitions). An offset is committed only after every earlier
    record of that partition was settled by local handlers or skipped as this bus's echo.
    ``groups`` gives channels their own work-queue groups: the bridge then runs one
    consumer per group (plus the private one for fan-out channels and replies).

    Parameters
    ----------
    config : KafkaBridgeConfig or str
        The settings, or just the bootstrap servers.
    channels : str or iterable of str, optional
        Overrides ``config.channels`` (one name or pattern, or several).
    direction : {"out", "in", "both"}, optional
        Overrides ``config.direction``.

    Raises
    ------
    MissingDependencyError
        confluent-kafka is not installed (``pip install "neuralcore-runtime[kafka]"``).

    Examples
    --------
    >>> bridge = KafkaBridge("127.0.0.1:9092", channels=("jobs.*",), direction="out")
    >>> bridge.topic("jobs.embed"), bridge.state.value
    ('nc.jobs.embed', 'stopped')
    """

    def __init__(
        self,
        config: KafkaBridgeConfig | str,
        *,
        channels: str | Iterable[str] | None = None,
        direction: Direction | None = None,
    ) -> None:
        cfg = KafkaBridgeConfig(bootstrap=config) if isinstance(config, str) else config
        overrides: dict[str, Any] = {}
        if channels is not None:
            overrides["channels"] = channel_names(channels)
        if direction is not None:
            overrides["direction"] = direction
        if overrides:
            cfg = KafkaBridgeConfig.from_dict({**cfg.to_dict(), **overrides})
        self._kafka = KafkaTransport(cfg)
        super().__init__(cfg, self._kafka)
        self.cfg = cfg

    def topic(self, channel: str) -> str:
        """The Kafka topic carrying ``channel``."""
        return self._kafka.topic(channel)


class KafkaTransport:
    """The Kafka :class:`~neuralcore.messaging.bridges._transport.Transport` (see
    :class:`KafkaBridge`): an idempotent producer and a consumer, one thread each."""

    kind = "kafka"
    max_in_flight = 8

    def __init__(self, cfg: KafkaBridgeConfig) -> None:
        self._ck: Any = require("confluent_kafka", extra="kafka", package="confluent-kafka")
        self._admin_mod: Any = require("confluent_kafka.admin", extra="kafka")
        self.cfg = cfg
        self._link: Link | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Any = None
        self._readers: dict[str, _Reader] = {}
        self._admin: Any = None
        self._topics: set[str] = set()
        self._batches: set[_Batch] = set()
        self._threads: list[threading.Thread] = []
        self._running = threading.Event()
        self._dlq = cfg.topic_prefix + "_dlq"
        self._since_ms = 0
        self._produce_lock = asyncio.Lock()
        self._topic_names: dict[str, str] = {}
        self._keys: dict[str, bytes] = {}
        self._rebuild = False
        self._listed: set[str] = set()  # topics seen in the last metadata listing

    @property
    def link(self) -> Link:
        """The runner driving this transport (set by :meth:`bind`)."""
        link = self._link
        if link is None:
            raise RuntimeError("kafka transport used before bind()")
        return link

    def bind(self, link: Link) -> None:
        """A new start: fan-out groups start at this moment."""
        self._link = link
        self._loop = asyncio.get_running_loop()
        self._since_ms = int(time.time() * 1000)

    def loops(self) -> list[Loop]:
        """The consumer thread's watcher (and, in a work queue, the subscription's)."""
        if not self.cfg.receives:
            return []
        if self.cfg.fan_out:
            return [self._watch_threads]
        return [self._watch_threads, self._watch_subscription]

    def _groups(self) -> list[tuple[str, bool]]:
        """``(group, private)`` of every reader: the private one first, then each
        work-queue group named by ``group`` / ``groups``."""
        link, cfg = self.link, self.cfg
        out = [(f"fanout.{link.consumer}", True)]  # never shared, even with `group`
        shared = ([cfg.group] if cfg.group is not None else []) + list(cfg.groups.values())
        for name in dict.fromkeys(shared):
            out.append((name, False))
        return out

    @property
    def address(self) -> str:
        """The bootstrap servers."""
        return self.cfg.bootstrap

    def source_of(self, channel: str) -> str:
        """The topic of ``channel``."""
        return self.topic(channel)

    def topic(self, channel: str) -> str:
        """The Kafka topic carrying ``channel``."""
        name: str | None = self._topic_names.get(channel)
        if name is None:
            name = self._topic_names[channel] = self.cfg.topic_prefix + _TOPIC_BAD.sub("_", channel)
        return name

    # -- configuration --------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        cfg = self.cfg
        conf: dict[str, Any] = {
            "bootstrap.servers": cfg.bootstrap,
            "security.protocol": cfg.security_protocol,
            "client.id": f"neuralcore-{self.link.consumer}",
            "logger": logging.getLogger(__name__ + ".librdkafka"),
            "log.connection.close": False,
            "error_cb": self._on_error,
            "reconnect.backoff.ms": max(1, int(cfg.reconnect_initial_s * 1000)),
            "reconnect.backoff.max.ms": max(1, int(cfg.reconnect_max_s * 1000)),
        }
        optional = {
            "sasl.mechanism": cfg.sasl_mechanism,
            "sasl.username": cfg.sasl_username,
            "sasl.password": cfg.sasl_password,
            "ssl.ca.location": cfg.ssl_ca_location,
            "ssl.certificate.location": cfg.ssl_certificate_location,
            "ssl.key.location": cfg.ssl_key_location,
            "ssl.key.password": cfg.ssl_key_password,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        return conf

    def _producer_conf(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            **self._common(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": cfg.linger_ms,
            "batch.num.messages": cfg.batch_size,
            "batch.size": cfg.batch_bytes,
            "compression.type": cfg.compression,
            "message.timeout.ms": cfg.message_timeout_ms,
            "queue.buffering.max.messages": max(100_000, cfg.buffer_size),
        }

    def _consumer_conf(self, group: str) -> dict[str, Any]:
        cfg = self.cfg
        return {
            **self._common(),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # a new work-queue group takes the backlog
            "session.timeout.ms": cfg.session_timeout_ms,
            "heartbeat.interval.ms": max(100, cfg.session_timeout_ms // 4),
            "fetch.wait.max.ms": cfg.fetch_wait_max_ms,
            "topic.metadata.refresh.interval.ms": 1000,
            "enable.partition.eof": False,
        }

    # -- connection -----------------------------------------------------------------------

    def _on_error(self, err: Any) -> None:
        """librdkafka error callback (its own thread)."""
        name = err.name()
        loop = self._loop
        if loop is None or not (name in _DOWN_CODES or err.fatal() or name in _FATAL_CODES):
            logger.debug("kafka: %s", name)
            return
        fatal = name in _FATAL_CODES
        if err.fatal():  # e.g. OUT_OF_ORDER_SEQUENCE_NUMBER after a broker restart
            self._rebuild = True
        exc: BridgeConnectionError = (FatalBridgeError if fatal else BridgeConnectionError)(
            f"kafka: {name}"
        )
        loop.call_soon_threadsafe(self._lost_if_running, exc)

    def _lost_if_running(self, err: BridgeConnectionError) -> None:
        if self._running.is_set():
            self.link.lost(err)

    async def connect(self) -> None:
        """Create the clients once; after a loss, rebuild only what broke."""
        ck, cfg = self._ck, self.cfg
        loop = asyncio.get_running_loop()
        if self._admin is None:
            self._admin = self._admin_mod.AdminClient(self._common())
        admin = self._admin
        try:
            meta = await loop.run_in_executor(None, lambda: admin.list_topics(timeout=2.0))
        except ck.KafkaException as err:
            raise BridgeConnectionError(f"kafka unreachable: {err.args[0].name()}") from err
        self._listed = set(meta.topics)
        if self._running.is_set():
            lost_state = not self._topics <= set(meta.topics)
            if self._rebuild or lost_state or (cfg.sends and self._producer is None):
                # lost topics = the broker restarted empty; its idempotent-producer state is
                # gone too, so the producer is rebuilt (the consumer rejoins by itself)
                logger.warning("kafka broker state lost or producer wedged: new producer")
                self._topics.clear()
                await self._new_producer()
                if cfg.receives:
                    await self._ensure_topics(self._inbound_topics())
            for reader in self._readers.values():
                if reader.dead:
                    self._new_consumer(reader)
            return  # librdkafka reconnected its own clients
        self._topics.clear()
        self._running.set()
        if cfg.sends:
            await self._new_producer()
        if cfg.receives:
            await self._ensure_topics(self._inbound_topics())
            self._readers = {g: _Reader(g, private) for g, private in self._groups()}
            for reader in self._readers.values():
                self._new_consumer(reader)

    def _inbound_topics(self) -> list[str]:
        """Exact topics read (created first): named channels, own replies, dead letters."""
        exact = [self.topic(c) for c in self.cfg.channels if not _is_pattern(c)]
        return [*exact, self.topic(self.link.own_reply), self._dlq]

    def _new_consumer(self, reader: _Reader) -> None:
        """Start ``reader``'s consumer and thread (again, after the previous one died)."""
        loop = asyncio.get_running_loop()
        reader.error = loop.create_future()
        reader.dead = False
        reader.consumer = self._ck.Consumer(self._consumer_conf(reader.group))
        reader.partitions.clear()
        reader.resubscribe = None
        reader.subscribed_to = self._subscription(reader)
        self._subscribe(reader, reader.consumer, reader.subscribed_to)
        self._start_thread(lambda: self._consume(reader), f"consumer-{reader.group}")

    def _subscribe(self, reader: _Reader, consumer: Any, topics: list[str]) -> None:
        if not topics:  # nothing of this group has a local subscriber (yet)
            consumer.unsubscribe()
            return

        def on_assign(consumer: Any, partitions: list[Any]) -> None:
            self._on_assign(reader, consumer, partitions)

        def on_revoke(consumer: Any, partitions: list[Any]) -> None:
            self._on_revoke(reader, consumer, partitions)

        consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)

    def _subscription(self, reader: _Reader) -> list[str]:
        """The topics ``reader`` subscribes to. A bus with fan-out only: own replies plus
        the selection as given, wildcards as regexes. Otherwise each channel goes to the
        reader of its group (``BridgeConfig.group_for``; the private reader takes own
        replies and the fan-out channels), listed from the existing topics, and a
        work-queue reader takes only channels with a local subscriber, so a member never
        takes partitions of channels it does not handle (re-checked every second)."""
        cfg, link = self.cfg, self.link
        port = link.port
        topics = [self.topic(link.own_reply)] if reader.private else []
        if cfg.fan_out:
            for channel in cfg.channels:
                wild = _is_pattern(channel)
                topics.append(
                    "^" + _regex(cfg.topic_prefix + channel) if wild else self.topic(channel)
                )
            return topics
        names = {c for c in cfg.channels if not _is_pattern(c)}
        prefix = cfg.topic_prefix
        names |= {t[len(prefix) :] for t in self._listed if t.startswith(prefix)}
        for channel in sorted(names):
            if not cfg.matches(channel) or channel.startswith(REPLY_PREFIX):
                continue
            group = cfg.group_for(channel)
            mine = group is None if reader.private else group == reader.group
            wanted = reader.private or port is None or port.subscribed(channel)
            if mine and wanted:
                topics.append(self.topic(channel))
        return topics

    async def _watch_subscription(self) -> None:
        """Work queue: follow new topics and local subscribers (see :meth:`_subscription`)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_REFRESH_S)
            admin = self._admin
            if admin is None:
                continue
            meta = await loop.run_in_executor(None, admin.list_topics, None, 2.0)
            self._listed = set(meta.topics)
            for reader in self._readers.values():
                wanted = self._subscription(reader)
                if wanted != reader.subscribed_to:
                    reader.subscribed_to = wanted
                    reader.resubscribe = wanted

    def _on_assign(self, reader: _Reader, consumer: Any, partitions: list[Any]) -> None:
        """Rebalance (consumer thread): for a fan-out bus with a generated name, a partition
        without a committed offset starts at the bridge's start time, so nothing published
        after it is missed and older history is not replayed. A named consumer is durable:
        it starts at the earliest retained record it never committed."""
        if not reader.private or self.cfg.consumer or not partitions:
            return  # shared or named groups: auto.offset.reset ("earliest") decides
        try:
            committed = consumer.committed(partitions, timeout=5.0)
            fresh = [p for p in committed if p.offset < 0]
            if fresh:
                tp = self._ck.TopicPartition
                asked = [tp(p.topic, p.partition, self._since_ms) for p in fresh]
                found = {(p.topic, p.partition): p.offset
                         for p in consumer.offsets_for_times(asked, timeout=5.0)}  # fmt: skip
                start = []
                for p in committed:
                    if p.offset < 0 and found.get((p.topic, p.partition), -1) >= 0:
                        p.offset = found[(p.topic, p.partition)]
                        start.append(p)
                if start:  # recorded, so a bus that comes back resumes from here
                    consumer.commit(offsets=start, asynchronous=False)
            consumer.assign(committed)
        except self._ck.KafkaException as err:  # fall back to auto.offset.reset
            logger.warning("kafka: start offsets by time failed: %s", err.args[0].name())

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"neuralcore-kafka-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    async def _new_producer(self) -> None:
        """Replace the producer; records it still held are failed back to the buffer."""
        self._rebuild = False
        old, self._producer = self._producer, None
        if old is not None:
            await self._drop_producer(old)
        self._producer = self._ck.Producer(self._producer_conf())
        self._start_thread(self._poll_producer, "producer")

    async def _drop_producer(self, producer: Any) -> None:
        for batch in list(self._batches):
            batch.abandon()
        self._batches.clear()
        try:  # a producer in a fatal state may refuse even this
            producer.purge(in_queue=True, in_flight=True)
            await asyncio.get_running_loop().run_in_executor(None, producer.flush, 0.5)
        except self._ck.KafkaException as err:
            logger.debug("kafka: dropping a broken producer: %s", err.args[0].name())

    async def close(self) -> None:
        """At stop (or failure) end the threads and drop the clients; otherwise keep them
        (librdkafka reconnects them; :meth:`connect` decides what to rebuild)."""
        if not (self.link.stopping or self.link.failed):
            return  # keep the clients: librdkafka reconnects them; _connect decides
        self._running.clear()
        threads, self._threads = self._threads, []
        loop = asyncio.get_running_loop()
        for thread in threads:
            await loop.run_in_executor(None, thread.join, 10.0)
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._drop_producer(producer)
        for reader in self._readers.values():
            reader.consumer = None
        self._admin = None

    async def ping(self) -> None:
        """Nothing to do: librdkafka reports a lost broker through ``error_cb``."""

    def transient(self, err: BaseException) -> bool:
        """Connection-level errors (never credentials)."""
        if isinstance(err, FatalBridgeError):
            return False
        return isinstance(
            err, BridgeConnectionError | self._ck.KafkaException | ConnectionError | TimeoutError
        )

    def scrub(self, text: str) -> str:
        """Hide the SASL and key passwords."""
        for secret in (self.cfg.sasl_password, self.cfg.ssl_key_password):
            if secret:
                text = text.replace(secret, "***")
        return text

    def persistent(self, channel: str) -> bool:
        """Every channel is a topic."""
        return True

    @property
    def channel_keyed(self) -> bool:
        """True without ``key_header``: the key is the channel name."""
        return not self.cfg.key_header

    def key(self, msg: Message) -> bytes | None:
        """The channel name (or the ``key_header`` header's value)."""
        header = self.cfg.key_header
        value = msg._headers.get(header) if header and msg._headers else None
        if value is None:  # one channel, one partition: publish order kept
            key = self._keys.get(msg.channel)
            if key is None:
                key = self._keys[msg.channel] = msg.channel.encode()
            return key
        return value if isinstance(value, bytes) else str(value).encode()

    async def _ensure_topics(self, topics: list[str]) -> None:
        missing = [t for t in topics if t not in self._topics]
        if not missing:
            return
        new = self._admin_mod.NewTopic
        cfg = self.cfg
        futures = self._admin.create_topics(
            [new(t, cfg.partitions, cfg.replication) for t in missing], operation_timeout=5.0
        )
        loop = asyncio.get_running_loop()
        for name, fut in futures.items():
            try:
                await loop.run_in_executor(None, fut.result, 10.0)
            except self._ck.KafkaException as err:
                if err.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
            self._topics.add(name)

    # -- producer -------------------------------------------------------------------------

    def _poll_producer(self) -> None:
        producer = self._producer
        try:
            while self._running.is_set() and self._producer is producer:
                producer.poll(0.05)
        except Exception as err:  # fatal producer: rebuilt by the reconnect
            self._rebuild = True
            loop = self._loop
            if loop is not None:
                exc = BridgeConnectionError(f"kafka producer failed: {type(err).__name__}")
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._lost_if_running, exc)

    def _records(self, items: list[Outgoing]) -> list[tuple[str, bytes, bytes | None]]:
        """``(channel, value, key)`` per record: consecutive envelopes of one channel and
        key packed up to ``pack`` envelopes / ``batch_bytes`` (order kept per key)."""
        limit, max_bytes = self.cfg.pack, self.cfg.pack_bytes
        if limit <= 1 or len(items) == 1:
            return [(i[0], i[1], i[2]) for i in items]
        if _pack_items is not None:  # one channel and key, framed in C (the same bytes)
            values = _pack_items(items, PACK_MAGIC, limit, max_bytes)
            if values is not None:
                channel, key = items[0][0], items[0][2]
                return [(channel, value, key) for value in values]
        runs: dict[tuple[str, bytes | None], list[bytes]] = {}
        if len(set(map(_CHANNEL, items))) == 1 and len(set(map(_KEY, items))) == 1:
            # one channel and key: no Python loop over items
            channel, _, key, _, _ = items[0]
            datas = list(map(_DATA, items))
            if len(datas) <= limit and sum(map(len, datas)) + 4 * len(datas) <= max_bytes:
                return [(channel, pack(datas), key)]
            runs[(channel, key)] = datas
        else:
            for channel, data, key, _, _ in items:
                run = runs.get((channel, key))
                if run is None:
                    runs[(channel, key)] = [data]
                else:
                    run.append(data)
        out: list[tuple[str, bytes, bytes | None]] = []
        for (channel, key), datas in runs.items():
            if len(datas) == 1:
                out.append((channel, datas[0], key))
                continue
            chunk: list[bytes] = []
            size = 0
            for data in datas:
                if chunk and (len(chunk) >= limit or size + len(data) > max_bytes):
                    out.append((channel, pack(chunk) if len(chunk) > 1 else chunk[0], key))
                    chunk, size = [], 0
                chunk.append(data)
                size += len(data) + 4
            out.append((channel, pack(chunk) if len(chunk) > 1 else chunk[0], key))
        return out

    async def send(self, items: list[Outgoing]) -> list[Outgoing]:
        """Produce a batch (packed, see the module docstring); wait for its delivery
        reports (one per record)."""
        topic = self.topic
        records = self._records(items)
        batch = _Batch(items, len(records), asyncio.get_running_loop())
        started = time.perf_counter()
        # Batches run concurrently (max_in_flight) but are handed to librdkafka one after
        # the other, in the order they were taken (asyncio.Lock wakes waiters FIFO): with
        # records keyed by channel this keeps one producer's publish order per channel.
        async with self._produce_lock:
            topics = {c: topic(c) for c in {r[0] for r in records}}
            await self._ensure_topics(sorted(topics.values()))
            producer = self._producer
            self._batches.add(batch)
            report, produce = batch.report, producer.produce
            for channel, data, key in records:
                while True:
                    try:  # positional: topic, value, key, partition (any), on_delivery
                        produce(topics[channel], data, key, -1, report)
                        break
                    except BufferError:
                        await asyncio.sleep(0.001)  # librdkafka queue full: let it drain
        try:
            await batch.future
        finally:
            self._batches.discard(batch)
        self.link.counters.rtt(started)
        failed = batch.failures()
        if batch.timed_out:
            # the idempotent producer can wedge (e.g. UNKNOWN_PRODUCER_ID after a broker
            # restart): rebuild it through a reconnect and resend the failed records
            self._rebuild = True  # the caller puts the whole batch back
            raise BridgeConnectionError("kafka producer timed out or went fatal; rebuilding")
        return failed

    # -- consumer -------------------------------------------------------------------------

    def _consume(self, reader: _Reader) -> None:
        consumer, loop, err_fut = reader.consumer, self._loop, reader.error
        if loop is None or err_fut is None:
            return
        next_lag = 0.0
        try:
            while self._running.is_set():
                self._commit_pending(reader, consumer)
                if time.monotonic() >= next_lag:  # a consumer is only used by its thread
                    next_lag = time.monotonic() + 1.0
                    reader.lag = _lag(consumer)
                    self.link.server_lag = sum(r.lag for r in self._readers.values())
                topics, reader.resubscribe = reader.resubscribe, None
                if topics is not None:
                    self._subscribe(reader, consumer, topics)
                if not reader.subscribed_to:
                    time.sleep(0.05)  # unsubscribed: consume() would only wait
                    continue
                records = consumer.consume(min(self.cfg.batch_size, _CONSUME), 0.05)
                if records:  # handled on the loop; waiting for it is the backpressure
                    handled = asyncio.run_coroutine_threadsafe(
                        self._on_records(reader, records), loop
                    )
                    while self._running.is_set():
                        try:
                            handled.result(0.1)
                            break
                        except concurrent.futures.TimeoutError:
                            continue
            self._commit_pending(reader, consumer)
        except Exception as err:  # handed to the loop, which reconnects
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(_fail, err_fut, err)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()

    def _commit_pending(self, reader: _Reader, consumer: Any) -> None:
        offsets: dict[tuple[str, int], int] = {}
        while True:
            try:
                for tp in reader.commits.get_nowait():
                    offsets[(tp.topic, tp.partition)] = tp.offset
            except queue.Empty:
                break
        if offsets:
            tps = [self._ck.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            consumer.commit(offsets=tps, asynchronous=True)

    def _on_revoke(self, reader: _Reader, consumer: Any, partitions: list[Any]) -> None:
        """Rebalance (consumer thread): records of lost partitions will be redelivered."""
        self._commit_pending(reader, consumer)
        loop = self._loop
        if loop is not None:
            keys = [(p.topic, p.partition) for p in partitions]
            loop.call_soon_threadsafe(self._drop_partitions, reader, keys)

    @staticmethod
    def _drop_partitions(reader: _Reader, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            reader.partitions.pop(key, None)

    async def _watch_threads(self) -> None:
        """Raise the first consumer thread's error (the reconnect starts a new one)."""
        waits = {r.error: r for r in self._readers.values() if r.error is not None}
        if not waits:  # not receiving: nothing to watch until the next connect
            await asyncio.get_running_loop().create_future()
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_EXCEPTION)
        for fut in done:
            if fut.exception() is not None:
                waits[fut].dead = True
        for fut in done:
            fut.result()

    async def _on_records(self, reader: _Reader, records: list[Any]) -> None:
        link, group = self.link, reader.group
        for rec in records:
            err = rec.error()
            if err is not None:
                logger.debug("kafka consumer: %s", err.name())
                continue
            topic, part, offset = rec.topic(), rec.partition(), rec.offset()
            key = (topic, part)
            tracker = reader.partitions.get(key)
            if tracker is None:
                tracker = reader.partitions[key] = _Partition()
            tracker.order.append(offset)
            token = (group, topic, part, offset)
            if topic == self._dlq:
                link.settle(token)
                continue
            value: bytes = rec.value() or b""
            if value[:4] != PACK_MAGIC:
                envelopes = [value]
            else:
                try:
                    envelopes = unpack(value)
                except (ValueError, struct.error) as bad:
                    self._dead(value, link.rejected(f"bad pack: {bad}"), topic)
                    link.settle(token)
                    continue
                tracker.parts[offset] = len(envelopes)
            for raw in envelopes:
                reason = await link.handle(raw, token, topic)
                if reason is not None:
                    self._dead(raw, reason, topic)
                    link.settle(token)

    def _dead(self, raw: bytes, reason: str, source: str) -> None:
        producer = self._producer
        if producer is None:  # receive-only bridge: log and count is all we can do
            logger.warning("kafka bridge dropped a bad record from %s: %s", source, reason)
            return
        headers = {"reason": reason.encode(), "source": source.encode()}
        producer.produce(self._dlq, raw, headers=headers)

    async def dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        """Produce to ``topic_prefix + "_dlq"`` with reason and source headers."""
        self._dead(raw, reason, source)

    async def ack(self, tokens: list[Any]) -> None:
        """Move each partition's commit point past its settled offsets."""
        moved: dict[str, dict[tuple[str, int], int]] = {}
        readers = self._readers
        for group, topic, part, offset in tokens:
            reader = readers.get(group)
            tracker = reader.partitions.get((topic, part)) if reader is not None else None
            if tracker is not None and tracker.settle(offset):
                moved.setdefault(group, {})[(topic, part)] = tracker.position
        tp = self._ck.TopicPartition
        for group, positions in moved.items():
            readers[group].commits.put([tp(t, p, o) for (t, p), o in positions.items()])


def _lag(consumer: Any) -> int:
    """Records on the broker past this member's positions (cached watermarks, no request)."""
    total = 0
    try:
        for tp in consumer.position(consumer.assignment()):
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                total += max(0, high - tp.offset)
    except Exception:  # a metric must never break the consumer
        return 0
    return total


def _fail(fut: asyncio.Future[None], err: BaseException) -> None:
    """Consumer thread died: the loop watching it raises, and the reconnect rebuilds."""
    if not fut.done():
        fut.set_exception(err)


def _is_pattern(channel: str) -> bool:
    return any(ch in channel for ch in "*?[")


def _regex(topic_glob: str) -> str:
    """Shell wildcard -> the regex librdkafka matches topic names with."""
    out = []
    for ch in topic_glob:
        out.append({"*": ".*", "?": ".", ".": "\\."}.get(ch, ch))
    return "".join(out) + "$"
