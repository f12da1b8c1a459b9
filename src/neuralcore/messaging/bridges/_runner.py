"""The one bridge runner: lifecycle, reconnects, buffering, dedup, acks, supervision.

A :class:`~neuralcore.messaging.bridges._transport.Transport` (Redis, Kafka, in-memory)
supplies connect, send, the receive loops, ack, dead-letter and ping; the runner composes
the rest around it under one state machine:

* outbound: local publishes on selected channels whose origin is this bus are encoded
  into a bounded :class:`OutboundBuffer` and sent in batches (everything waiting when the
  send loop wakes goes in one batch: one round trip per loop turn); a failed batch goes
  back to the front of the buffer and is sent again after the reconnect. On the bus's
  persistent channels the runner taps *durably* (:class:`DurablePort`): each message
  stays in the bus's SQLite outbox until the server confirmed it, so a crash of the
  process loses nothing (the next run sends what is left, first).
* replies: each bridge carries ``_reply.<bus id>`` channels (out: replies this bus's
  handlers give to requests from other buses; in: replies to this bus's requests), so
  ``await bus.request(...)`` works across processes.
* inbound: each record is decoded and checked: a channel outside the selection, or one
  that does not match the stream/topic the record came from, is dead-lettered with a
  reason (and counted). This bus's own messages (echo) are acknowledged without
  delivery; everything else is injected into the bus and acknowledged to the server only
  once the local handlers settled it (ids already delivered are dropped, not twice).
* every background task is supervised: one that dies of an error a reconnect cannot fix
  turns the state to ``failed`` with the error in :meth:`BridgeRunner.health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import operator
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from neuralcore.core import (
    BridgeConnectionError,
    BusClosedError,
    InputTypeError,
    InvalidInputError,
    QueueFullError,
    SerializationError,
)
from neuralcore.messaging._bridge import BridgeDirection
from neuralcore.messaging._message import Message
from neuralcore.messaging._native import bridge_sink
from neuralcore.messaging._types import Outcome
from neuralcore.messaging.bridges._buffer import OutboundBuffer, Outgoing, SpillFile
from neuralcore.messaging.bridges._config import BridgeConfig, Direction
from neuralcore.messaging.bridges._port import BusPort, DurablePort
from neuralcore.messaging.bridges._state import (
    Backoff,
    BridgeHealth,
    BridgeMetrics,
    BridgeState,
    Counters,
)
from neuralcore.messaging.bridges._transport import (
    REPLY_PREFIX,
    FatalBridgeError,
    Loop,
    Transport,
)

__all__ = ("REPLY_PREFIX", "BridgeRunner", "FatalBridgeError")

logger = logging.getLogger(__name__)

_DIRECTIONS: dict[Direction, BridgeDirection] = {"out": "outbound", "in": "inbound", "both": "both"}


Route = tuple[int, bool, bytes | None, bool]
"""How a channel's messages leave: ``(how, persistent, key, key_per_message)``."""


class BridgeRunner:
    """A bridge: one :class:`Transport` driven by the runner (see the module docstring).

    :class:`RedisBridge`, :class:`KafkaBridge` and :class:`MemoryBridge` are this class
    with their transport built from their config; :attr:`transport` is that object.

    Examples
    --------
    >>> from neuralcore.messaging.bridges import RedisBridge
    >>> bridge = RedisBridge("redis://127.0.0.1:6379/0", direction="out")
    >>> bridge.health().state.value, bridge.metrics().buffered
    ('stopped', 0)
    """

    def __init__(self, config: BridgeConfig, transport: Transport) -> None:
        self.config = config
        self.transport = transport
        self.counters = Counters()
        self.server_lag = 0
        self._state = BridgeState.STOPPED
        self._since = time.time()
        self._last_error = ""
        self._backoff = Backoff(
            config.reconnect_initial_s, config.reconnect_max_s, jitter=config.reconnect_jitter
        )
        self._port: BusPort | None = None
        self._durable: DurablePort | None = None
        self._buffer = OutboundBuffer(config.buffer_size, None)
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._unwatch: Callable[[], None] | None = None
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._acks: list[Any] = []
        self._ack_ready = asyncio.Event()
        self._in_flight_out = 0
        self._flushers: list[tuple[int, asyncio.Future[None]]] = []
        self._warned_full = 0.0  # monotonic time before which a full buffer is not logged
        self._in_flight_in = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stopping = False
        self._routes: dict[str, Route] = {}
        # channel -> (key, persistent) of the routes _enqueue's fast path takes (sent, not
        # recorded, keyed by channel), and the buffer's memory queue it appends to while
        # it has room (``_limit`` 0 with a spill file: OutboundBuffer.put decides then)
        self._plain: dict[str, tuple[bytes | None, bool]] = {}
        self._mem = self._buffer.mem
        self._limit = 0
        self._own_reply = ""
        self._consumer = config.consumer_name()
        self._local = ""  # the bus id while started (what _on_local forwards)
        self._key = transport.key
        self._encode: Callable[[Message], bytes] = _no_codec

    # -- public surface -------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"redis"``, ``"kafka"`` or ``"memory"``."""
        return self.transport.kind

    @property
    def channels(self) -> tuple[str, ...]:
        """The channel selection (names and wildcards)."""
        return self.config.channels

    @property
    def direction(self) -> BridgeDirection:
        """``"outbound"``, ``"inbound"`` or ``"both"`` (the bus's Bridge protocol)."""
        return _DIRECTIONS[self.config.direction]

    @property
    def address(self) -> str:
        """Where the bridge connects, without credentials (for errors and logs)."""
        return self.transport.address

    @property
    def outbox_name(self) -> str:
        """Name of this bridge's durable tap in the bus file (``BridgeConfig.outbox``, or
        ``kind>channels``): keep it stable across restarts to resume forwarding."""
        return self.config.outbox or f"{self.kind}>{','.join(self.config.channels)}"

    def selected(self, channel: str) -> bool:
        """True when the bridge carries ``channel``: the configured selection, plus other
        buses' ``_reply.<bus id>`` channels outbound and this bus's own inbound.

        Examples
        --------
        >>> from neuralcore.messaging.bridges import RedisBridge
        >>> bridge = RedisBridge("redis://127.0.0.1:6379/0", channels=("jobs.*",))
        >>> bridge.selected("jobs.a"), bridge.selected("_reply.3f2a"), bridge.selected("x")
        (True, True, False)
        >>> bridge.outbox_name
        'redis>jobs.*'
        """
        if channel.startswith(REPLY_PREFIX):
            return True
        return self.config.matches(channel)

    @property
    def name(self) -> str:
        """``kind:channels`` (no address, no credentials), for logs."""
        return f"{self.kind}:{','.join(self.config.channels)}"

    @property
    def state(self) -> BridgeState:
        """The connection state."""
        return self._state

    @property
    def group(self) -> str:
        """The server-side group this bus reads through by default (``fanout.<consumer>``
        unless ``BridgeConfig.group`` names a work queue; ``groups`` can name one per
        channel, see :meth:`group_of`); final once started."""
        return self.config.group_name(self.origin)

    def group_of(self, channel: str) -> str:
        """The server-side group ``channel`` is read through (``BridgeConfig.groups``,
        then ``group``, then this bus's private fan-out group)."""
        if channel == self._own_reply:
            return self.config.group_name(self.origin)
        return self.config.group_for(channel) or self.config.group_name(self.origin)

    def fan_out(self, channel: str) -> bool:
        """True when ``channel`` is read through this bus's private (fan-out) group."""
        return channel == self._own_reply or self.config.group_for(channel) is None

    @property
    def origin(self) -> str:
        """The local bus id this bridge stamps and filters on (``""`` before start)."""
        return self._port.origin if self._port is not None else ""

    def metrics(self) -> BridgeMetrics:
        """A snapshot of the counters (:class:`BridgeMetrics`)."""
        lag = self._in_flight_in + self.server_lag
        return self.counters.snapshot(buffered=self.buffered, lag=lag)

    @property
    def buffered(self) -> int:
        """Outbound messages not yet acknowledged by the server."""
        return len(self._buffer) + self._in_flight_out

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message accepted so far was confirmed by the server.

        Returns False when ``timeout`` seconds passed first (or the bridge is stopped or
        failed with messages left); what is still buffered keeps being sent.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging.bridges import RedisBridge
        >>> asyncio.run(RedisBridge("redis://127.0.0.1:6379/0").flush())  # nothing buffered
        True
        """
        timeout = _timeout(timeout)
        waiting = self.buffered
        if not waiting:
            return True
        if self._state in (BridgeState.STOPPED, BridgeState.FAILED):
            return False
        target = self.counters.sent + waiting
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushers.append((target, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            return False
        return self.counters.sent >= target or not self.buffered

    def _wake_flushers(self, *, all_: bool = False) -> None:
        sent = self.counters.sent
        keep = []
        for target, fut in self._flushers:
            if all_ or sent >= target or not self.buffered:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._flushers = keep

    def health(self) -> BridgeHealth:
        """Whether the bridge works (:class:`BridgeHealth`)."""
        ok = self._state in (BridgeState.CONNECTED, BridgeState.STOPPED)
        return BridgeHealth(self._state, ok, self._since, self._last_error, self.buffered)

    # -- what a transport sees (Link) -----------------------------------------------------

    @property
    def port(self) -> BusPort | None:
        """The bus port while started."""
        return self._port

    @property
    def own_reply(self) -> str:
        """This bus's ``_reply.<bus id>`` channel (``""`` before start)."""
        return self._own_reply

    @property
    def consumer(self) -> str:
        """This bus's consumer name on the server."""
        return self._consumer

    @property
    def stopping(self) -> bool:
        """True while :meth:`stop` tears down."""
        return self._stopping

    @property
    def failed(self) -> bool:
        """True in state ``failed``."""
        return self._state is BridgeState.FAILED

    def records(self, channel: str) -> bool:
        """True when the bus keeps ``channel``'s messages in its durable outbox."""
        durable = self._durable
        return durable is not None and durable.records(channel)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, bus: Any) -> None:
        """Connect and start carrying messages for ``bus``.

        Called by ``MessageBus.add_bridge`` / ``MessageBus.start``. A server that cannot be
        reached yet is retried in the background (state ``reconnecting``, outbound messages
        buffered); an error retrying cannot fix raises :class:`BridgeConnectionError`.
        """
        from neuralcore.messaging.bridges._bus import port_for

        await self.start_port(port_for(bus))

    async def start_port(self, port: BusPort) -> None:
        """:meth:`start` against a :class:`BusPort` directly (used by tests and adapters)."""
        if self._state is not BridgeState.STOPPED:
            raise BridgeConnectionError(f"{self.kind} bridge already started")
        self._port, self._stopping = port, False
        self._encode = port.encode
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._own_reply = REPLY_PREFIX + port.origin
        self._local = port.origin
        self._consumer = self.config.consumer_name(port.origin)
        self._routes.clear()
        self._plain.clear()
        cfg = self.config
        durable = port if hasattr(port, "watch_durable") else None
        self._durable = durable  # type: ignore[assignment]  # checked structurally
        spill = SpillFile(cfg.spill_path) if cfg.spill_path and cfg.sends else None
        refill = self._refill if durable is not None else None
        self._buffer = OutboundBuffer(cfg.buffer_size, spill, refill)
        self._mem, self._limit = self._buffer.mem, (cfg.buffer_size if spill is None else 0)
        self._set_state(BridgeState.CONNECTING)
        self.counters.unsent = 0
        self.transport.bind(self)
        try:
            await self._first_connect()
        except BaseException:
            if spill is not None:
                spill.close()
            raise
        self._spawn(self._supervise(self._watchdog))
        if cfg.sends:
            selectors = (*cfg.channels, REPLY_PREFIX + "*")
            if self._durable is not None:
                name = self.outbox_name
                sink = self._sink(self._enqueue)
                self._unwatch = self._durable.watch_durable(selectors, sink, name)
            else:
                self._unwatch = port.watch(selectors, self._sink(self._on_local))
            self._spawn(self._send_loop())  # never raises: failures requeue and reconnect
        for loop in self.transport.loops():
            self._spawn(self._supervise(loop))
        if cfg.receives:
            self._spawn(self._supervise(self._ack_loop))

    async def _first_connect(self) -> None:
        """Connect, retrying a refused or lost connection for ``startup_timeout_s``.

        Raises :class:`BridgeConnectionError` (state ``failed``) when the server is still
        unreachable then, or at once for an error retrying cannot fix. With
        ``startup_timeout_s=0`` a failed first attempt hands over to the background
        reconnect instead (state ``reconnecting``).
        """
        transport = self.transport
        wait = self.config.startup_timeout_s
        deadline = time.monotonic() + wait
        while True:
            try:
                await transport.connect()
            except Exception as err:
                await self._safe_close()
                if not wait and transport.transient(err):
                    self.lost(err)
                    return
                if not transport.transient(err) or time.monotonic() >= deadline:
                    self._set_state(BridgeState.FAILED, err)
                    if isinstance(err, BridgeConnectionError) and not transport.transient(err):
                        raise
                    raise BridgeConnectionError(
                        f"{self.kind} bridge could not connect to {self.address} within "
                        f"startup_timeout_s={wait:g}: {self._last_error}"
                    ) from None
                self._last_error = transport.scrub(f"{type(err).__name__}: {err}")
                pause = self._backoff.next()
                await asyncio.sleep(max(0.0, min(pause, deadline - time.monotonic())))
                continue
            self._backoff.reset()
            self._set_state(BridgeState.CONNECTED)
            self._connected.set()
            return

    async def stop(self, *, timeout: float | None = None) -> None:
        """Hand what was accepted to the server, acknowledge, disconnect.

        Waits up to ``timeout`` seconds (default ``drain_timeout_s``; ``inf`` waits for
        good, NaN or a negative number is refused before anything stops) for the outbound
        buffer to empty, also across a reconnect. What is still unsent then is counted in
        ``metrics().unsent`` and logged; messages of the bus's persistent channels stay in
        its outbox (and those in a spill file in the file) for the next run.
        """
        if timeout is None:
            drain = self.config.drain_timeout_s
        else:  # NaN would end the wait at once (every deadline test False): refused
            checked = _timeout(timeout)
            drain = math.inf if checked is None else checked
        if self._state is BridgeState.STOPPED:
            return
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        deadline = time.monotonic() + drain
        while self.buffered and time.monotonic() < deadline and self._sending():
            await asyncio.sleep(0.005)
        await self._flush_acks()
        self._stopping = True
        tasks = [*self._tasks, *self._side_tasks]
        if self._reconnect_task is not None:
            tasks.append(self._reconnect_task)
        for task in tasks:
            task.cancel()
        if tasks:  # a client library may swallow a cancel: the loops also check stopping
            await asyncio.wait(tasks, timeout=2.0)
        self._tasks, self._reconnect_task = [], None
        await self._safe_close()
        unsent = self.buffered  # cancelled sends were put back first
        self.counters.unsent = unsent
        kept = self._buffer.persist_rest()
        if unsent:
            logger.warning(
                "%s bridge stopped with %d accepted messages not sent within %g s "
                "(%d kept in the spill file; those of persistent channels stay in the bus "
                "outbox for the next run)", self.kind, unsent, drain, kept,
            )  # fmt: skip
        if self._buffer.spill is not None:
            self._buffer.spill.close()
        self._connected.clear()
        self._set_state(BridgeState.STOPPED)

    # -- outbound -------------------------------------------------------------------------

    def _on_local(self, msg: Message) -> bool:
        """Bus tap: queue a local publish for the server (remote ones are not echoed)."""
        if msg.origin == self._local and self._port is not None:
            return self._enqueue(msg)
        return False

    def _sink(self, other: Callable[[Message], bool]) -> Callable[[Message], bool]:
        """The tap callback: :meth:`_enqueue`'s common case (a channel sent, not recorded
        and keyed by channel; this bus's own message; room in memory, no spill file),
        compiled when the glue is built (``_native.bridge_sink``; it runs inside every
        bridged publish), ``other`` for everything else."""
        return bridge_sink(
            self._encode, self._plain, self._local, self._mem, self._limit,
            self._buffer.ready.set, other,
        )  # fmt: skip

    def _enqueue(self, msg: Message) -> bool:
        """Encode and buffer one message (the durable tap calls this directly: it already
        skips remote messages, and replays keep the origin of the run that published).

        Returns True when the message was taken for sending (buffered, spilled or left in
        the bus outbox to be read back); the bus then keeps no local copy of it on a
        channel without a local subscriber. False: not carried, or refused by a full
        buffer. A message of a channel the bus does not record that cannot be encoded
        raises ``SerializationError``: the bus refuses that publish with it when the
        message would only cross the bridge (no local subscriber), and otherwise counts
        it as a channel error and logs it (it is delivered locally only).

        Runs inside every bridged publish: the common case (a carried channel the bus
        does not record) is one route lookup, the encode and one buffer append.
        """
        channel = msg.channel
        plain = self._plain.get(channel)
        if plain is not None:  # the common case: sent, not recorded, keyed by channel
            data = self._encode(msg)  # SerializationError: raised to the bus (see _sink)
            mem = self._mem
            if len(mem) < self._limit:  # OutboundBuffer.put, inlined (no spill file)
                mem.append((channel, data, plain[0], plain[1], 0))
                if len(mem) == 1:
                    self._buffer.ready.set()
                return True
            return self._put(msg, (channel, data, plain[0], plain[1], 0))
        route = self._routes.get(channel)
        if route is None:  # selection, persistence and key decided once per channel
            if self._port is None:
                return False
            route = self._route(msg)
        how, persistent, key, per_message = route
        if how == _PLAIN:
            data = self._encode(msg)  # SerializationError: raised to the bus (see _sink)
            if per_message:
                key = self._key(msg)
            return self._put(msg, (channel, data, key, persistent, 0))
        if self._port is None:
            return False
        return self._enqueue_recorded(msg, route)

    def _put(self, msg: Message, item: Outgoing) -> bool:
        """Buffer one encoded message that is not recorded in the bus outbox."""
        try:
            where = self._buffer.put(item)
        except QueueFullError as err:
            self._refused(msg, err)
            return False
        if where == "memory":
            return True
        self._count(where)
        return where != "dropped"

    def _route(self, msg: Message) -> Route:
        """``(how, persistent, key, key_per_message)`` for ``msg``'s channel, cached:
        ``how`` is _PLAIN (send; not in the bus outbox), _RECORDED (send; in the outbox) or
        _SKIP; ``key`` the record key when the channel alone decides it."""
        channel = msg.channel
        send = self.selected(channel) and channel != self._own_reply
        recorded = self.records(channel)
        how = (_RECORDED if recorded else _PLAIN) if send else _SKIP
        by_channel = self.transport.channel_keyed
        key = self._key(msg) if by_channel else None
        persistent = self.transport.persistent(channel)
        route = self._routes[channel] = (how, persistent, key, not by_channel)
        if how == _PLAIN and by_channel:
            self._plain[channel] = (key, persistent)
        return route

    def _enqueue_recorded(self, msg: Message, route: Route) -> bool:
        """A message of a channel the bus records (durable tap) or does not send."""
        how, persistent, key, per_message = route
        durable = self._durable
        seq = durable.seq(msg) if durable is not None else 0
        if how == _SKIP:
            if seq:
                self._done([seq])
            return False
        try:  # the bytes the bus's journal stored, when it just recorded the message
            data = durable.wire(msg) if durable is not None else self._encode(msg)
        except SerializationError as err:
            self._unsendable(msg, err, seq)
            return False
        if seq and not persistent:  # fire-and-forget on the server side: nothing to confirm
            self._done([seq])
            seq = 0
        if per_message:
            key = self._key(msg)
        try:
            where = self._buffer.put((msg.channel, data, key, persistent, seq))
        except QueueFullError as err:
            self._refused(msg, err)
            return False
        self._count(where)
        return where != "dropped"

    def _refused(self, msg: Message, err: QueueFullError) -> None:
        """The buffer is full and there is no spill file: count it, warn (once a second)."""
        self.counters.dropped += 1
        now = time.monotonic()
        if now >= self._warned_full:
            self._warned_full = now + 1.0
            logger.warning("%s bridge refused message %s on %r (%d refused so far): %s",
                           self.kind, msg.id, msg.channel, self.counters.dropped, err)  # fmt: skip

    def _unsendable(self, msg: Message, err: SerializationError, seq: int) -> None:
        self.counters.dropped += 1
        self._done([seq] if seq else [])  # never sendable: do not replay it forever
        logger.error("%s bridge cannot send message %s: %s", self.kind, msg.id, err)

    def _count(self, where: str) -> None:
        if where in ("spilled", "deferred"):
            self.counters.spilled += 1
        elif where == "dropped":  # a plain channel's message met a full buffer
            self.counters.dropped += 1
            now = time.monotonic()
            if now >= self._warned_full:
                self._warned_full = now + 1.0
                logger.warning(
                    "%s bridge buffer full (%d messages): dropped a plain-channel message"
                    " (%d dropped so far)",
                    self.kind,
                    self._buffer.limit,
                    self.counters.dropped,
                )

    def _refill(self, after: int, limit: int) -> list[Outgoing]:
        """Read deferred messages back from the bus outbox (the buffer has room again)."""
        durable = self._durable
        if durable is None:
            return []
        out, key = [], self.transport.key
        for msg in durable.outbox(self.outbox_name, after, limit):
            data = durable.wire(msg)  # the stored bytes
            out.append((msg.channel, data, key(msg), True, durable.seq(msg)))
        return out

    def _done(self, seqs: list[int]) -> None:
        """The server has these outbox messages: delete their records."""
        if seqs and self._durable is not None:
            self._durable.forwarded(self.outbox_name, seqs)

    def _sending(self) -> bool:
        """True while buffered messages can still reach the server (not failed)."""
        return self.config.sends and self._state is not BridgeState.FAILED

    async def _send_loop(self) -> None:
        in_flight = self.transport.max_in_flight
        slots = asyncio.Semaphore(in_flight)
        linger = self.config.linger_ms / 1000.0
        batch_size = self.config.batch_size
        buffer, connected = self._buffer, self._connected
        while not self._stopping:
            if not buffer.ready.is_set():
                await buffer.ready.wait()
            if not connected.is_set():
                await connected.wait()
            if linger and len(buffer) < batch_size:
                await asyncio.sleep(linger)
            if in_flight == 1:  # one batch at a time, on this task
                items = buffer.take(batch_size)
                if items:
                    self._in_flight_out += len(items)
                    await self._send_batch(items, None)
                continue
            await slots.acquire()
            items = buffer.take(batch_size)
            if not items:
                slots.release()
                continue
            self._in_flight_out += len(items)
            self._spawn(self._send_batch(items, slots), track=False)

    async def _send_batch(self, items: list[Outgoing], slots: asyncio.Semaphore | None) -> None:
        transport = self.transport
        try:
            failed = await transport.send(items)
        except asyncio.CancelledError:
            self._requeue(items)
            raise
        except Exception as err:
            if not transport.transient(err):
                logger.exception("%s bridge send failed", self.kind)
            self._requeue(items)
            self.lost(err)
        else:
            if failed:
                bad = {id(i) for i in failed}
                self.counters.sent += len(items) - len(failed)
                self._done([i[4] for i in items if i[4] and id(i) not in bad])
                self._requeue(failed)
            else:
                self.counters.sent += len(items)
                if self._durable is not None:
                    seqs = list(filter(None, map(_SEQ, items)))  # no Python loop per item
                    if seqs:
                        self._done(seqs)
            self._buffer.sent(len(items) - len(failed), in_flight=self._in_flight_out - len(items))
        finally:
            self._in_flight_out -= len(items)
            if slots is not None:
                slots.release()
            if self._flushers:
                self._wake_flushers()

    def _requeue(self, items: list[Outgoing]) -> None:
        self.counters.retried += len(items)
        self._buffer.requeue(items)

    # -- inbound --------------------------------------------------------------------------

    async def _supervise(self, loop: Loop) -> None:
        """Run ``loop`` while connected; a transient error reconnects and runs it again,
        any other error ends the task (its done callback marks the bridge failed)."""
        while not self._stopping:
            await self._connected.wait()
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._stopping:  # stop() closed the connections under the loop: done
                    return
                if not self.transport.transient(err):
                    raise
                self.lost(err)
                await asyncio.sleep(0.01)

    def rejected(self, reason: str) -> str:
        """Count and log one dead-lettered record."""
        self.counters.dead_lettered += 1
        logger.warning("%s bridge: dead-lettering a record: %s", self.kind, reason)
        return reason

    async def handle(self, raw: bytes, token: Any, source: str) -> str | None:
        """Deliver one record read from ``source`` (stream key, Pub/Sub channel or topic)
        locally; return a reason when it must be dead-lettered instead. ``token`` is
        ``None`` for records nothing acknowledges (Pub/Sub)."""
        port = self._port
        if port is None:
            return None  # stopping: left unacknowledged, so it is redelivered
        try:
            msg = _checked(port.decode(raw))
        except Exception as err:  # anything undecodable is dead-lettered, never fatal
            return self.rejected(f"undecodable: {err}")
        channel = msg.channel
        own = channel == self._own_reply
        if not own and not self.config.matches(channel):
            return self.rejected(f"channel {channel!r:.80} is outside the bridge's selection")
        if self.transport.source_of(channel) != source:
            return self.rejected(f"channel {channel!r:.80} does not belong on {source!r:.80}")
        private = token is None or self.fan_out(channel)  # own group, or Pub/Sub
        if msg.origin == port.origin or (private and not own and not port.subscribed(channel)):
            self.counters.skipped += 1  # own echo, or no local subscriber (private group)
            self.settle(token)
            return None
        mid = msg.id
        if mid in self._seen:
            self.counters.duplicates += 1
            self.settle(token)
            return None
        self._remember(mid)
        self.counters.received += 1
        self._in_flight_in += 1
        try:
            accepted = await port.inject(msg, functools.partial(self._settled_cb, token))
        except BusClosedError:  # the bus is stopping: left unacknowledged (redelivered)
            self._seen.discard(mid)
            self._in_flight_in -= 1
            self.counters.received -= 1
            return None
        except (LookupError, ValueError, TypeError) as err:  # refused by the local bus
            self._seen.discard(mid)
            self._in_flight_in -= 1
            self.counters.dead_lettered += 1
            return f"local bus refused it: {type(err).__name__}: {err}"
        if not accepted:
            self.counters.dropped += 1
        return None

    def _remember(self, mid: str) -> None:
        self._seen.add(mid)
        self._seen_order.append(mid)
        if len(self._seen_order) > self.config.dedup_window:
            self._seen.discard(self._seen_order.popleft())

    def _settled_cb(self, token: Any, _msg: Message, _outcome: Outcome) -> None:
        self._settled(token)

    def _settled(self, token: Any) -> None:
        if threading.get_ident() != self._loop_thread and self._loop is not None:
            self._loop.call_soon_threadsafe(self._settled, token)
            return
        self._in_flight_in -= 1
        self.counters.acked += 1
        self.settle(token)

    def settle(self, token: Any) -> None:
        """Acknowledge ``token`` with the next ack batch (``None``: nothing to ack)."""
        if token is None:
            return
        self._acks.append(token)
        self._ack_ready.set()

    async def _ack_loop(self) -> None:
        while not self._stopping:
            await self._ack_ready.wait()
            await self._connected.wait()
            await self._ack_batch()

    async def _ack_batch(self) -> None:
        tokens, self._acks = self._acks, []
        self._ack_ready.clear()
        if not tokens:
            return
        try:
            await self.transport.ack(tokens)
        except BaseException:
            self._acks[:0] = tokens  # keep them for after the reconnect
            self._ack_ready.set()
            raise

    async def _flush_acks(self) -> None:
        """Acknowledge what is settled (at stop); a failure is logged, never raised."""
        if not self._acks or not self._connected.is_set():
            return
        try:
            await self._ack_batch()
        except Exception as err:
            logger.warning("%s bridge could not acknowledge at stop: %s", self.kind,
                           self.transport.scrub(f"{type(err).__name__}: {err}"))  # fmt: skip

    async def _watchdog(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.health_interval_s)
            if self._connected.is_set():
                await self.transport.ping()

    # -- connection state -----------------------------------------------------------------

    def _set_state(self, state: BridgeState, err: BaseException | None = None) -> None:
        if err is not None:
            self._last_error = self.transport.scrub(f"{type(err).__name__}: {err}")
        if state is not self._state:
            logger.info("%s bridge %s -> %s", self.kind, self._state.value, state.value)
            self._state, self._since = state, time.time()
            if self._flushers and state in (BridgeState.STOPPED, BridgeState.FAILED):
                self._wake_flushers(all_=True)  # nothing more will be sent

    def lost(self, err: BaseException) -> None:
        """The connection failed: buffer, and reconnect in the background."""
        if self._stopping or self._state is BridgeState.FAILED:
            return
        self._connected.clear()
        self._set_state(BridgeState.RECONNECTING, err)
        if self._reconnect_task is None or self._reconnect_task.done():
            logger.warning("%s bridge lost its connection: %s", self.kind, self._last_error)
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        transport = self.transport
        limit = self.config.max_reconnect_attempts
        while not self._stopping:
            await asyncio.sleep(self._backoff.next())
            await self._safe_close()
            try:
                await transport.connect()
            except Exception as err:
                fatal = isinstance(err, FatalBridgeError) or not transport.transient(err)
                if fatal or (limit and self._backoff.attempts >= limit):
                    self._set_state(BridgeState.FAILED, err)
                    logger.error("%s bridge failed: %s", self.kind, self._last_error)
                    return
                self._last_error = transport.scrub(f"{type(err).__name__}: {err}")
                continue
            self._backoff.reset()
            self.counters.reconnects += 1
            self._set_state(BridgeState.CONNECTED)
            self._connected.set()
            return

    async def _safe_close(self) -> None:
        with contextlib.suppress(Exception):
            await self.transport.close()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a supervised side task (cancelled at stop, failure fails the
        bridge)."""
        self._spawn(coro, track=False)

    def _spawn(self, coro: Coroutine[Any, Any, None], *, track: bool = True) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(self._task_done)
        if track:
            self._tasks.append(task)
        else:
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Supervision: a background task that ended with an error fails the bridge, so
        :meth:`health` shows it instead of reporting ``connected``."""
        if task.cancelled() or self._stopping:
            return
        err = task.exception()
        if err is None:
            return
        logger.error("%s bridge: a background task died", self.kind, exc_info=err)
        self._connected.clear()
        self._set_state(BridgeState.FAILED, err)


_SEQ = operator.itemgetter(4)  # of an Outgoing: its outbox seq (0: not recorded)
_PLAIN = 0  # route: send, not recorded in the bus outbox (the common case)
_RECORDED = 1  # route: send, recorded (acknowledged by seq once sent)
_SKIP = 2  # route: not carried (recorded ones are marked forwarded at once)


def _no_codec(msg: Message) -> bytes:
    raise BridgeConnectionError(f"bridge not started; cannot encode message on {msg.channel!r}")


def _checked(msg: Message) -> Message:
    """Reject decoded envelopes whose fields have the wrong types (foreign producers)."""
    ok = (
        type(msg.channel) is str
        and type(msg.priority) is int
        and type(msg.attempt) is int
        and type(msg.origin) is str
        and isinstance(msg.timestamp, int | float)
        and isinstance(msg._headers, dict | None)
        and (type(msg._id) is str or type(msg._id) is int)  # int: a bus-numbered id
    )
    if not ok:
        raise SerializationError(f"not a neuralcore message: bad field types in {msg!r:.120}")
    return msg


def _timeout(value: object) -> float | None:
    """A wait's ``timeout``: None or inf waits for good; NaN, negative or a non-number is
    refused, naming the value."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputTypeError(f"timeout must be a number of seconds or None, got {value!r}")
    if math.isnan(value) or value < 0:
        raise InvalidInputError(f"timeout must be >= 0 seconds, got {value!r}")
    return None if math.isinf(value) else float(value)
