"""The publish pipeline of :class:`MessageBus`: checks, hooks, overflow, persistence, taps.

The facade keeps the fast path (a plain publish on an open channel) inlined in
``publish``/``publish_async``; everything else goes through :class:`Pipeline`, which
sees the bus's lifecycle only through :class:`PublishHost`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import itertools
import logging
import reprlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from neuralcore.core import (
    BusClosedError,
    InputTypeError,
    InvalidInputError,
    MessagingError,
    QueueFullError,
    RateLimitedError,
    SerializationError,
)
from neuralcore.messaging._journal import storable_text
from neuralcore.messaging._message import Message, Tracker, _new

if TYPE_CHECKING:
    from neuralcore.messaging._admission import Gate
    from neuralcore.messaging._bridge import Tap
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._config import BusConfig
    from neuralcore.messaging._journal import Journal
    from neuralcore.messaging._middleware import Middleware
    from neuralcore.messaging._registry import Registry
    from neuralcore.messaging._store import Commit
    from neuralcore.messaging._taps import Taps
    from neuralcore.messaging._types import Outcome

__all__ = (
    "HANDLING",
    "PMAX",
    "PMIN",
    "MustWait",
    "Pipeline",
    "PublishHost",
    "check_priority",
    "check_timeout",
    "copy_headers",
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
_get_ident = threading.get_ident
_perf = time.perf_counter

HANDLING: contextvars.ContextVar[object] = contextvars.ContextVar(
    "neuralcore_handling", default=None
)
"""The :class:`Pipeline` whose handler runs in this context (set by the channel's
dispatcher and worker tasks; tasks a handler starts inherit it). While ``stop()`` drains,
a publish made here is a handler's follow-up and is still accepted; any other is refused."""


class PublishHost(Protocol):
    """What the :class:`Pipeline` needs from its bus: lifecycle and the durable record."""

    @property
    def running(self) -> bool:
        """The bus is started."""
        ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The bus's event loop once started."""
        ...

    @property
    def journal(self) -> Journal | None:
        """The durable record of persistent channels."""
        ...


class MustWait(Exception):
    """:meth:`Pipeline.publish_now` found the channel full after the publish hooks ran
    (a hook published there): the caller admits ``msg`` the slow way."""

    def __init__(self, msg: Message) -> None:
        super().__init__()
        self.msg = msg


class Pipeline:
    """Every publish that is not the facade's fast path: checks, authorization, rate
    limits, hooks, idempotency, overflow, persistence, acceptance and taps."""

    __slots__ = (
        "_bus_id", "_channels", "_config", "_counter", "_gate", "_host",
        "_middleware", "_registry", "_sample_every", "_taps", "closed", "draining",
    )  # fmt: skip

    def __init__(
        self,
        host: PublishHost,
        *,
        config: BusConfig,
        bus_id: str,
        counter: itertools.count[int],
        registry: Registry,
        middleware: Middleware,
        gate: Gate,
        taps: Taps,
    ) -> None:
        self._host = host
        self._config = config
        self._bus_id = bus_id
        self._counter = counter  # shared with the facade's fast path: one id sequence
        self._registry = registry
        self._channels = registry.channels
        self._middleware = middleware
        self._gate = gate
        self._taps = taps
        self._sample_every = config.metrics_sample_every
        self.closed = False  # set once by the bus's stop()/close(): outside publishes refused
        self.draining = False  # stop() drains: handlers' follow-ups are still accepted

    def refuse(self, channel: str) -> None:
        """The bus is closed: raise :class:`BusClosedError`, unless ``stop()`` is draining
        and this publish is a follow-up of one of this bus's handlers (see HANDLING)."""
        if self.draining and HANDLING.get() is self:
            return
        raise BusClosedError(f"bus {self._bus_id} is stopped; cannot publish to {channel!r}")

    def tracked_done(self, tracker: Tracker, msg: Message) -> None:
        """Done callback of a message's tracker: ack its row, then ``on_settled``."""
        journal = self._host.journal
        if tracker.seq is not None and journal is not None:
            journal.ack(tracker.seq)
        if tracker.on_settled is not None:
            try:
                tracker.on_settled(msg, tracker.outcome)
            except Exception:
                logger.exception("on_settled callback failed for message %s", msg.id)

    def batch_sync(
        self,
        channel: str,
        payloads: Iterable[Any],
        priority: int | None,
        headers: Mapping[str, Any] | None,
        auth: str | None,
    ) -> list[Message | None]:
        prepared = self.prepare_many(channel, payloads, priority, headers, auth)
        ch = self._channels[channel]
        if ch.forwarders and not ch.targets:  # only what the bridge does not take queues
            if ch.config.persistent and prepared:
                self.persist(ch, prepared, []).wait(self.commit_timeout())
            return self.accept_each(ch, prepared)
        kept = self.fit(ch, prepared)
        if ch.fast:  # nothing to persist; accept without the per-message call chain
            return self.accept_plain(ch, kept) + [None] * (len(prepared) - len(kept))
        if ch.config.persistent and kept:
            self.persist(ch, kept, []).wait(self.commit_timeout())
        accepted = [self.accept(ch, m) for m in kept]
        return accepted + [None] * (len(prepared) - len(kept))

    def fit(self, ch: Channel, msgs: list[Message]) -> list[Message]:
        """The leading part of a batch the overflow policy lets in without waiting."""
        room = ch.max_size - ch.queue.size
        if len(msgs) <= room or ch.config.overflow == "drop_oldest":
            return msgs
        if ch.config.overflow == "drop_new":
            ch.stats.dropped += len(msgs) - max(room, 0)
            return msgs[: max(room, 0)]
        reason = "overflow='error'" if ch.config.overflow == "error" else "overflow='block'"
        raise QueueFullError(
            f"channel {ch.name!r} has room for {max(room, 0)} of a batch of {len(msgs)} "
            f"({ch.max_size} max; {reason}); nothing was published"
        )

    def accept_each(self, ch: Channel, msgs: list[Message]) -> list[Message | None]:
        """A batch on a channel with an outbound bridge and no local subscriber, one
        message at a time as if each were published alone: what the bridge takes is not
        queued, so the batch needs only the room its other messages take. A message that
        finds the queue full (of messages the bridge did not take) meets the overflow
        policy as a single publish would (``error``, and ``block`` here, raise naming how
        much of the batch went out)."""
        out: list[Message | None] = list(msgs)
        give, queue, max_size = self.give_taps, ch.queue, ch.max_size
        forwarders, others, tracked = ch.forwarders, ch.others, ch.config.persistent
        bus_id = self._bus_id
        taken = 0  # counted as published at the end (also when an error cuts the batch)
        try:
            for i, msg in enumerate(msgs):
                sink = ch.sink  # the bridge's tap alone (None once a subscriber came)
                if sink is not None and msg.origin == bus_id:  # give_taps, inlined
                    try:
                        took = sink(msg) is True
                    except SerializationError as err:
                        raise self.cut_unsendable(ch, msgs, i, err) from None
                    except Exception:
                        took = self.tap_failed(ch, forwarders[0])
                    if took:
                        taken += 1
                        tracker = msg._tracker
                        if tracked and tracker is not None:
                            tracker.wire = None
                            ch.settle_all(msg, "acked")
                        continue
                    if queue.size >= max_size and not self.room_sync(ch, msgs, i):
                        out[i] = None  # refused: it needed local room; drop_new dropped it
                        continue
                    out[i] = self.enqueue(ch, msg, others)
                elif ch.targets:  # a subscriber came (a tap subscribed)
                    if queue.size >= max_size and not self.room_sync(ch, msgs, i):
                        out[i] = None
                        continue
                    out[i] = self.accept(ch, msg)
                elif self.give_or_cut(ch, msgs, i):  # self.offer(ch, msg), inlined
                    taken += 1
                    if others:
                        give(ch, msg, others)
                    tracker = msg._tracker
                    if tracked and tracker is not None:
                        tracker.wire = None
                        ch.settle_all(msg, "acked")
                else:  # the bridge refused it: it needs local room
                    if queue.size >= max_size and not self.room_sync(ch, msgs, i):
                        out[i] = None
                        continue
                    out[i] = self.enqueue(ch, msg, others)
        finally:
            ch.stats.published += taken
        return out

    def room_sync(self, ch: Channel, msgs: list[Message], i: int) -> bool:
        """``msgs[i]`` of a batch meets a full queue: whether the overflow policy makes room
        (``drop_new`` drops and counts it: False); ``error``/``block`` cut the batch."""
        try:
            admitted = self.admit_sync(ch)
        except QueueFullError as err:
            raise self.cut(ch, msgs, i, err) from None
        if not admitted:  # drop_new: counted by admit_sync
            self.discard(ch, msgs[i])
        return admitted

    def cut(self, ch: Channel, msgs: list[Message], i: int, err: QueueFullError) -> QueueFullError:
        """A batch stopped at ``msgs[i]`` (the queue is full of messages the bridge did
        not take): the rest is discarded (records too); the error says how much went out."""
        for msg in msgs[i:]:
            self.discard(ch, msg)
        return QueueFullError(
            f"{err} -- the first {i} of the batch of {len(msgs)} were published (what an "
            "outbound bridge takes needs no local room); the queue holds messages the "
            f"bridge did not take, and nothing from message {i} on was published"
        )

    def give_or_cut(self, ch: Channel, msgs: list[Message], i: int) -> bool:
        """``give_taps(forwarders)`` for ``msgs[i]`` of a batch offered before queueing;
        one an outbound bridge cannot encode stops the batch (:meth:`cut_unsendable`)."""
        try:
            return self.give_taps(ch, msgs[i], ch.forwarders, refuse=True)
        except SerializationError as err:
            raise self.cut_unsendable(ch, msgs, i, err) from None

    def cut_unsendable(
        self, ch: Channel, msgs: list[Message], i: int, err: SerializationError
    ) -> SerializationError:
        """A batch stopped at ``msgs[i]``, which an outbound bridge cannot encode (no
        local subscriber): the rest is discarded; the error says how much went out."""
        for msg in msgs[i:]:
            self.discard(ch, msg)
        if ch.idem is not None:
            ch.idem.unclaim(msgs[i]._id)
        return SerializationError(
            f"channel {ch.name!r}: message {i} of the batch of {len(msgs)} cannot be sent "
            f"over the outbound bridge: {err} -- the first {i} were published, nothing "
            f"from message {i} on was"
        )

    def discard(self, ch: Channel, msg: Message) -> None:
        """``msg`` was not published after all: settle its record as dropped and delete
        its durable taps' outbox rows (nothing forwards it later)."""
        tracker = msg._tracker
        if tracker is None:
            return
        tracker.wire = None
        ch.settle_all(msg, "dropped")
        seq = tracker.seq
        if seq:
            for tap in ch.taps:
                if tap.durable and tap.name is not None:
                    self._taps.forwarded(tap.name, [seq])

    async def batch_async(
        self,
        channel: str,
        payloads: Iterable[Any],
        priority: int | None,
        headers: Mapping[str, Any] | None,
        auth: str | None,
    ) -> list[Message | None]:
        """:meth:`MessageBus.publish_batch_async`."""
        prepared = self.prepare_many(channel, payloads, priority, headers, auth)
        ch = self._channels[channel]
        if ch.forwarders and not ch.targets:  # only what the bridge does not take queues
            if ch.config.persistent and prepared:
                await self.persist_async(ch, prepared, [])
            if ch.config.overflow != "block":
                return self.accept_each(ch, prepared)
            out: list[Message | None] = []
            for i, msg in enumerate(prepared):
                try:
                    if ch.queue.size < ch.max_size or ch.targets:
                        if ch.queue.size >= ch.max_size:  # as a single publish_async
                            try:
                                await self.admit_async(ch)
                            except QueueFullError as err:
                                raise self.cut(ch, prepared, i, err) from None
                        out.append(self.accept(ch, msg))
                    elif self.offer(ch, msg):  # full of what the bridge refused: offer it
                        out.append(msg)
                    else:  # refused too: wait for local room, as a single publish_async
                        try:
                            await self.admit_async(ch)
                        except QueueFullError as err:
                            raise self.cut(ch, prepared, i, err) from None
                        out.append(self.enqueue(ch, msg, ch.others))
                except SerializationError as err:  # an outbound bridge cannot encode it
                    raise self.cut_unsendable(ch, prepared, i, err) from None
            return out
        if ch.config.overflow != "block":
            kept = self.fit(ch, prepared)
            if ch.fast:
                return self.accept_plain(ch, kept) + [None] * (len(prepared) - len(kept))
            if ch.config.persistent and kept:
                await self.persist_async(ch, kept, [])
            accepted = [self.accept(ch, m) for m in kept]
            return accepted + [None] * (len(prepared) - len(kept))
        out = []
        while len(out) < len(prepared):  # as much as there is room for, one commit each
            await self.admit_async(ch)
            room = max(1, ch.max_size - ch.queue.size)
            chunk = prepared[len(out) : len(out) + room]
            if ch.fast:  # room for the whole chunk: nothing evicted
                out += self.accept_plain(ch, chunk)
                continue
            if ch.config.persistent:
                await self.persist_async(ch, chunk, [])
            out += [self.accept(ch, m) for m in chunk]
        return out

    def publish_from_thread(
        self,
        channel: str,
        payload: Any,
        priority: int | None,
        headers: Mapping[str, Any] | None,
        key: str | None,
        auth: str | None,
    ) -> Message | None:
        coro = self.publish_one(channel, payload, priority, headers, key, auth)
        return self.wait_threadsafe(coro, channel)

    def wait_threadsafe(self, coro: Coroutine[Any, Any, _T], channel: str) -> _T:
        loop = self._host.loop
        assert loop is not None
        if HANDLING.get() is self:  # a handler on a thread: its follow-up stays one on the loop
            coro = _as_follow_up(self, coro)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError as err:  # loop closed
            coro.close()
            raise BusClosedError(f"bus {self._bus_id} has no running event loop") from err
        limit = self._config.block_timeout + self.commit_timeout() + 5.0
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError as err:
            future.cancel()
            raise MessagingError(
                f"publish to {channel!r} got no answer from the bus's event loop within "
                f"{limit:g} s (block_timeout + commit_timeout + 5): the loop is blocked"
            ) from err

    def commit_timeout(self) -> float:
        return float(self._config.commit_timeout)

    def publish_sync(
        self,
        channel: str,
        payload: Any,
        priority: int | None,
        headers: Mapping[str, Any] | None,
        key: str | None,
        auth: str | None,
        *,
        internal: bool = False,
    ) -> Message | None:
        t0 = _perf()
        ch, msg = self.prepare(channel, payload, priority, headers, key, auth, internal=internal)
        if msg is None:
            return None
        forward_first = ch.queue.size >= ch.max_size and ch.forwarders and not ch.targets
        try:
            if not forward_first and not self.admit_sync(ch):
                return None
            if ch.config.persistent:
                self.persist(ch, [msg], [key] if key else []).wait(self.commit_timeout())
        except BaseException:
            if key is not None and ch.idem is not None:
                ch.idem.forget(key)
            raise
        if forward_first:  # the queue holds what the bridge refused: offer it this one
            return self.publish_full_sync(ch, msg, key)
        accepted = self.accept(ch, msg)
        ch.pub_tick += 1
        if not ch.pub_tick % self._sample_every:  # one in metrics_sample_every, as documented
            ch.stats.publish_latency.observe(_perf() - t0)
        return accepted

    async def publish_one(
        self,
        channel: str,
        payload: Any,
        priority: int | None,
        headers: Mapping[str, Any] | None,
        key: str | None,
        auth: str | None,
        *,
        internal: bool = False,
    ) -> Message | None:
        t0 = _perf()
        ch, msg = self.prepare(channel, payload, priority, headers, key, auth, internal=internal)
        if msg is None:
            return None
        if ch.queue.size >= ch.max_size:
            return await self.publish_full(ch, msg, key, t0)
        if ch.config.persistent and not await self.admit_and_persist(ch, msg, key):
            return None
        return self.accept_timed(ch, msg, t0)

    async def admit_and_persist(self, ch: Channel, msg: Message, key: str | None) -> bool:
        """Wait for room (``block``) and for the commit; ``False`` = the message dropped.
        A failure forgets the idempotency key, so that a retry is not a duplicate."""
        try:
            if ch.queue.size >= ch.max_size and not await self.admit_async(ch):
                return False
            if ch.config.persistent:
                await self.persist_async(ch, [msg], [key] if key else [])
        except BaseException:
            if key is not None and ch.idem is not None:
                ch.idem.forget(key)
            raise
        return True

    async def publish_full(
        self, ch: Channel, msg: Message, key: str | None, t0: float
    ) -> Message | None:
        """A prepared message that found ``ch`` full. On a channel with an outbound
        bridge and no local subscriber the queue holds only messages the bridge refused:
        the bridge is offered the new one first (once recorded, on persistent channels),
        so the channel forwards again as soon as the bridge has room; only a message it
        refuses meets the overflow policy."""
        if not (ch.forwarders and not ch.targets):
            if not await self.admit_and_persist(ch, msg, key):
                return None
            return self.accept_timed(ch, msg, t0)
        try:
            if ch.config.persistent:
                await self.persist_async(ch, [msg], [key] if key else [])
            else:  # let the bridge's send loop make room first (this path is rare)
                await asyncio.sleep(0)
            if self.offer(ch, msg):
                return msg
            admitted = await self.admit_async(ch)
        except BaseException:
            self.discard(ch, msg)
            self.forget(ch, key)
            raise
        if not admitted:  # drop_new: counted by admit_sync
            self.discard(ch, msg)
            return None
        return self.enqueue(ch, msg, ch.others)

    def publish_full_sync(self, ch: Channel, msg: Message, key: str | None) -> Message | None:
        """:meth:`publish_full` without waiting (the caller persisted ``msg`` already)."""
        if self.offer(ch, msg):
            return msg
        try:
            admitted = self.admit_sync(ch)
        except BaseException:
            self.discard(ch, msg)
            self.forget(ch, key)
            raise
        if not admitted:
            self.discard(ch, msg)
            return None
        return self.enqueue(ch, msg, ch.others)

    def accept_timed(self, ch: Channel, msg: Message, t0: float) -> Message | None:
        accepted = self.accept(ch, msg)
        ch.pub_tick += 1
        if not ch.pub_tick % self._sample_every:  # one in metrics_sample_every, as documented
            ch.stats.publish_latency.observe(_perf() - t0)
        return accepted

    def publish_now(
        self,
        ch: Channel,
        payload: Any,
        priority: int | None,
        headers: Mapping[str, Any] | None,
        key: str | None,
        auth: str | None,
    ) -> Message | None:
        """The checked path in one call: an in-memory channel ``ch`` with room (the
        caller looked it up and saw the room). The same checks, hooks and acceptance as
        :meth:`prepare` then :meth:`accept`, paid only for the features ``ch`` has; keep
        the two in step (``test_publish`` runs every feature through both)."""
        if self.closed:
            self.refuse(ch.name)
        if key is not None and (type(key) is not str or not key.isascii()):
            _check_key(key)
        keys = ch.publishers
        if keys is not None and (type(auth) is not str or auth not in keys):
            self._gate.authorize(ch, auth, "publish")  # raises
        stats = ch.stats
        limiter = ch.limiter
        if limiter is not None and not limiter.take():
            stats.dropped += 1
            raise RateLimitedError(
                f"channel {ch.name!r} is limited to {ch.config.rate_limit}/s "
                f"(burst {limiter.burst:g}); publish refused"
            )
        if priority is None:
            priority = ch.default_priority
        elif type(priority) is not int or not PMIN <= priority <= PMAX:
            priority = check_priority(priority)
        sampled = not (ch.pub_tick + 1) % self._sample_every
        t0 = _perf() if sampled else 0.0
        msg = _new(
            ch.name,
            payload,
            priority,
            None if headers is None else copy_headers(headers),
            self._bus_id,
            next(self._counter),
        )
        if self._middleware.publish:
            msg = self._middleware.run_publish(stats, msg)
        if key is not None:
            idem = ch.idem
            if idem is None:
                raise InvalidInputError(
                    f"idempotency_key={key!r} given but channel {ch.name!r} "
                    "has no idempotency_window"
                )
            if idem.claim(key, msg._id) is not None:
                stats.duplicates += 1
                return None
        queue = ch.queue
        if ch.max_size <= queue.size:  # a publish hook published meanwhile
            raise MustWait(msg)
        taps = ch.taps
        if taps and ch.forwarders and not ch.targets:
            if self.offer(ch, msg):  # an outbound bridge took it; no local subscriber
                ch.pub_tick += 1
                if sampled:
                    stats.publish_latency.observe(_perf() - t0)
                return msg
            taps = ch.others
        bucket = queue._buckets.get(msg.priority)  # room: nothing to evict (see accept)
        if bucket:  # the common case: behind messages of the same priority
            bucket.append(msg)
            queue.size += 1
        else:
            queue.push(msg)
        stats.published += 1
        if taps:  # after queueing: a tap that publishes here queues behind this one
            self.give_taps(ch, msg, taps)
        if ch.waiter is not None:
            ch.wake()
        ch.pub_tick += 1
        if sampled:
            stats.publish_latency.observe(_perf() - t0)
        return msg

    def prepare(
        self,
        channel: str,
        payload: Any,
        priority: int | None,
        headers: Mapping[str, Any] | None,
        key: str | None,
        auth: str | None,
        *,
        internal: bool = False,
    ) -> tuple[Channel, Message | None]:
        """Checks and hooks shared by every publish path; ``None`` message = duplicate.

        The costs are paid only for the features a channel has: authorization is one set
        lookup (the :class:`~._admission.Gate` decided per channel at its creation), and
        the message id stays a number (formatted on first read).
        """
        if type(channel) is not str:
            raise InputTypeError(f"channel must be a str, got {type(channel).__name__}")
        if self.closed and not internal:
            self.refuse(channel)
        ch = self._channels.get(channel) or self._registry.channel(channel)  # the latter raises
        if key is not None and (type(key) is not str or not key.isascii()):
            _check_key(key)
        if not internal:  # the bus's own dead letters and replies: authorized by their source
            keys = ch.publishers
            if keys is not None and (type(auth) is not str or auth not in keys):
                self._gate.authorize(ch, auth, "publish")  # raises
            limiter = ch.limiter
            if limiter is not None and not limiter.take():
                ch.stats.dropped += 1
                raise RateLimitedError(
                    f"channel {channel!r} is limited to {ch.config.rate_limit}/s "
                    f"(burst {limiter.burst:g}); publish refused"
                )
        if priority is None:
            priority = ch.default_priority
        elif type(priority) is not int or not PMIN <= priority <= PMAX:
            priority = check_priority(priority)
        msg = _new(
            channel,
            payload,
            priority,
            None if headers is None else copy_headers(headers),
            self._bus_id,
            next(self._counter),
        )
        if self._middleware.publish:
            msg = self._middleware.run_publish(ch.stats, msg)
        if key is not None:
            idem = ch.idem
            if idem is None:
                raise InvalidInputError(
                    f"idempotency_key={key!r} given but channel {channel!r} "
                    "has no idempotency_window"
                )
            if idem.claim(key, msg._id) is not None:
                ch.stats.duplicates += 1
                return ch, None
        return ch, msg

    def prepare_many(
        self,
        channel: str,
        payloads: Iterable[Any],
        priority: int | None,
        headers: Mapping[str, Any] | None,
        auth: str | None,
    ) -> list[Message]:
        try:
            payloads = iter(payloads)
        except TypeError:
            raise InputTypeError(
                f"payloads must be an iterable of payloads, got {type(payloads).__name__}"
            ) from None
        ch = self._channels.get(channel) if type(channel) is str else None
        if ch is not None and ch.fast and not self.closed:
            # A channel without per-message features (open, in-memory, no auth, limit,
            # idempotency or hook: what Channel.refresh decides): the checks once, then
            # one envelope per payload, each with its own copy of the headers.
            if priority is None:
                priority = ch.default_priority
            elif type(priority) is not int or not PMIN <= priority <= PMAX:
                priority = check_priority(priority)
            first = None if headers is None else copy_headers(headers)
            bus_id, counter, new = self._bus_id, self._counter, _new
            if first is None:
                return [new(channel, p, priority, None, bus_id, next(counter)) for p in payloads]
            return [
                new(channel, p, priority, first.copy(), bus_id, next(counter)) for p in payloads
            ]
        out = []
        for payload in payloads:
            _, msg = self.prepare(channel, payload, priority, headers, None, auth)
            assert msg is not None
            out.append(msg)
        return out

    def admit_sync(self, ch: Channel) -> bool:
        """Overflow policy without waiting: ``False`` = drop the new message."""
        if ch.queue.size < ch.max_size:
            return True
        policy = ch.config.overflow
        if policy == "drop_oldest":
            return True
        if policy == "drop_new":
            ch.stats.dropped += 1
            return False
        where = (
            "the bus is not started"
            if not self._host.running
            else "publish() is on the event loop thread"
        )
        reason = (
            "overflow='error'" if policy == "error" else f"overflow='block' cannot wait: {where}"
        )
        raise QueueFullError(
            f"channel {ch.name!r} is full ({ch.max_size} messages queued; {reason})"
        )

    async def admit_async(self, ch: Channel) -> bool:
        """Overflow policy, waiting up to ``block_timeout`` for room on ``block`` channels."""
        if ch.queue.size < ch.max_size or ch.config.overflow != "block":
            return self.admit_sync(ch)
        loop = asyncio.get_running_loop()
        timeout = self._config.block_timeout
        try:
            async with asyncio.timeout(timeout):
                while ch.queue.size >= ch.max_size:
                    fut = loop.create_future()
                    ch.space.append(fut)
                    await fut
        except TimeoutError as err:
            raise QueueFullError(
                f"channel {ch.name!r} still full after waiting {timeout} s (overflow='block')"
            ) from err
        return True

    def persist(self, ch: Channel, msgs: list[Message], keys: list[str]) -> Commit:
        """Encode (``SerializationError`` before anything is written) and join a commit."""
        journal = self._host.journal
        assert journal is not None
        stored, outbox = self._rows(ch, msgs, keys)
        return journal.persist(ch.name, msgs, self.tracked_done, keys=stored, outbox=outbox)

    async def persist_async(self, ch: Channel, msgs: list[Message], keys: list[str]) -> None:
        """Like :meth:`persist`, awaited from the event loop."""
        await self.persist_soon(ch, msgs, keys)

    def persist_soon(self, ch: Channel, msgs: list[Message], keys: list[str]) -> Awaitable[None]:
        """Encode and join a commit now (``SerializationError`` before anything is
        written); await the result for durability."""
        journal = self._host.journal
        assert journal is not None
        stored, outbox = self._rows(ch, msgs, keys)
        return journal.persist_soon(ch.name, msgs, self.tracked_done, keys=stored, outbox=outbox)

    def forget(self, ch: Channel, key: str | None) -> None:
        """A publish failed after its idempotency check: a retry is not a duplicate."""
        if key is not None and ch.idem is not None:
            ch.idem.forget(key)

    def _rows(
        self, ch: Channel, msgs: list[Message], keys: list[str]
    ) -> tuple[list[tuple[str, str, float]], Callable[[int], list[tuple[int, str]]] | None]:
        """The idempotency keys to store with ``msgs`` and their outbox rows, if tapped."""
        idem = ch.idem
        expires = time.time() + idem.window if idem is not None else 0.0
        stored = [(key, msgs[0].id, expires) for key in keys] if idem is not None else []
        outbox = (lambda first: self._taps.outbox_rows(ch, msgs, first)) if ch.taps else None
        return stored, outbox

    def accept(self, ch: Channel, msg: Message) -> Message | None:
        """Queue an admitted message (evicting for ``drop_oldest``), run taps, wake.

        On a channel with an outbound bridge and no local subscriber the bridge's taps
        are offered the message first: one they took is not queued (nobody here would
        take it) and is settled as handled at once if the bus tracks it (a persistent
        row then waits only in the durable tap's outbox).
        Every other tap sees a message only once it is accepted, after it is queued (a
        tap that publishes here queues behind it); one that evicts itself
        (``drop_oldest``) reaches no tap and its outbox rows are deleted.
        """
        taps = ch.taps
        if taps and ch.forwarders and not ch.targets:
            if self.offer(ch, msg):
                return msg
            taps = ch.others
        return self.enqueue(ch, msg, taps)

    def enqueue(self, ch: Channel, msg: Message, taps: list[Tap]) -> Message | None:
        """:meth:`accept` once the bridge's taps had their offer: queue ``msg`` (evicting
        for ``drop_oldest``), give it to ``taps``, wake the dispatcher."""
        queue = ch.queue
        bucket = queue._buckets.get(msg.priority)
        if bucket:  # the common case: behind messages of the same priority
            bucket.append(msg)
            queue.size += 1
        else:
            queue.push(msg)
        if queue.size > ch.max_size and ch.config.overflow == "drop_oldest":
            evicted = queue.evict_least_urgent()
            ch.stats.dropped += 1
            if evicted is msg:  # never accepted: no tap sees it, nothing forwards it
                self.discard(ch, msg)
                return None
            ch.settle_all(evicted, "dropped")
        ch.stats.published += 1
        if taps:
            self.give_taps(ch, msg, taps)
        tracker = msg._tracker
        if tracker is not None:
            tracker.wire = None  # the taps had their chance to reuse the stored bytes
        if ch.waiter is not None:
            ch.wake()
        return msg

    def offer(self, ch: Channel, msg: Message) -> bool:
        """Offer a new message of a channel without a local subscriber to its outbound
        bridges' taps before it is queued. True: one took it: it is accepted with no
        local copy (counted as published, settled as handled if tracked, given to the
        other taps). False: the caller queues it or drops it by the overflow policy."""
        if not self.give_taps(ch, msg, ch.forwarders, refuse=True):
            return False
        ch.stats.published += 1
        if ch.others:
            self.give_taps(ch, msg, ch.others)
        tracker = msg._tracker
        if tracker is not None:
            tracker.wire = None  # the taps had their chance to reuse the stored bytes
            ch.settle_all(msg, "acked")
        return True

    def accept_plain(self, ch: Channel, msgs: list[Message]) -> list[Message | None]:
        """:meth:`accept` for a batch on a channel without per-message features that has
        room for all of it (``fit`` decided, so nothing is evicted; ``drop_oldest`` goes
        through :meth:`accept`), and without an outbound bridge's tap in forward-only use
        (the caller sends those through :meth:`accept_each`). Taps run after queueing,
        as in :meth:`accept`."""
        if ch.config.overflow == "drop_oldest" or (ch.forwarders and not ch.targets):
            return [self.accept(ch, m) for m in msgs]
        queue, buckets, taps = ch.queue, ch.queue._buckets, ch.taps
        for msg in msgs:
            bucket = buckets.get(msg.priority)
            if bucket:
                bucket.append(msg)
                queue.size += 1
            else:
                queue.push(msg)
            if taps:
                self.give_taps(ch, msg, taps)
        ch.stats.published += len(msgs)
        if msgs and ch.waiter is not None:
            ch.wake()
        return list(msgs)

    def give_taps(
        self, ch: Channel, msg: Message, taps: list[Tap], *, refuse: bool = False
    ) -> bool:
        """Give an accepted message to ``taps`` (some of ``ch.taps``; a failing tap is
        counted). Returns True when an outbound bridge's tap took it for sending and no
        other outbound bridge's tap refused it (full buffer, failed): a message one
        bridge refused stays queued locally even if another bridge took it.

        A message an outbound bridge cannot encode (its tap raised ``SerializationError``)
        is refused at the publish call with that error when ``refuse`` (the message is
        offered before it is queued: no local subscriber, it would only cross the
        bridge); otherwise (it is queued for a local subscriber already) it is counted as
        a channel error and logged, and stays delivered locally only.

        ``msg._tapped`` (stop() then logs it as forwarded, not dropped) is set only for a
        tap that really took it: an outbound bridge's tap that returned True, or another
        tap that returned without raising."""
        sent = refused = False
        for tap in taps:
            if tap.include_remote or msg.origin == self._bus_id:
                try:
                    took = tap.callback(msg)
                except SerializationError as err:
                    if refuse and tap.forwards:  # the codec's error names the bad value
                        if ch.idem is not None:  # a corrected retry is no duplicate
                            ch.idem.unclaim(msg._id)
                        raise
                    ch.stats.errors += 1
                    logger.error("tap %r on channel %r cannot send message %s: %s",
                                 tap.selector, ch.name, msg.id, err)  # fmt: skip
                    refused = refused or tap.forwards
                    continue
                except Exception:
                    ch.stats.errors += 1
                    logger.exception("tap %r on channel %r failed", tap.selector, ch.name)
                    refused = refused or tap.forwards
                    continue
                if not tap.forwards:
                    msg._tapped = True  # seen by a tap: not lost if nobody here takes it
                elif took is True:
                    msg._tapped = sent = True  # forwarded
                else:
                    refused = True
        return sent and not refused

    def tap_failed(self, ch: Channel, tap: Tap) -> bool:
        """An outbound bridge's tap raised on a message (the publish fast path called its
        callback directly): counted and logged as :meth:`give_taps` does; False (refused:
        the message is queued locally)."""
        ch.stats.errors += 1
        logger.exception("tap %r on channel %r failed", tap.selector, ch.name)
        return False

    async def inject(
        self, message: Message, on_settled: Callable[[Message, Outcome], None] | None
    ) -> bool:
        if self.closed:
            raise BusClosedError(
                f"bus {self._bus_id} is stopped; cannot inject into {message.channel!r}"
            )
        ch = self._registry.channel(message.channel)
        message._tracker = Tracker(None, self.tracked_done, on_settled) if on_settled else None
        if not await self.admit_async(ch):
            if on_settled is not None:
                on_settled(message, "dropped")
            return False
        if ch.config.persistent:
            await self.persist_async(ch, [message], [])
        return self.accept(ch, message) is not None


PMIN, PMAX = -(2**63), 2**63 - 1  # priorities are stored as signed 64-bit integers


def check_priority(priority: Any) -> int:
    if isinstance(priority, int) and not isinstance(priority, bool):
        if not PMIN <= priority <= PMAX:
            raise InvalidInputError(
                f"priority {_short(priority)} is outside the signed 64-bit range [-2**63, 2**63)"
            )
        return int(priority)
    raise InputTypeError(f"priority must be an int (see Priority), got {_short(priority)}")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40


def _short(value: Any) -> str:
    """A bounded repr for error messages (never a RecursionError or a huge string)."""
    return _REPR.repr(value)


def check_timeout(timeout: Any) -> float:
    """A request timeout: a finite number of seconds in ``(0, 1e6)``."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InputTypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not 0 < timeout < 1e6:  # also refuses NaN
        raise InvalidInputError(f"timeout must be > 0 and < 1e6 seconds, got {timeout!r}")
    return float(timeout)


def check_wait(timeout: Any) -> float:
    """A drain or stop deadline: a finite number of seconds in ``[0, 1e6)`` (NaN would
    make every deadline test False: a wait for good)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InputTypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not 0 <= timeout < 1e6:  # also refuses NaN
        raise InvalidInputError(f"timeout must be >= 0 and < 1e6 seconds, got {timeout!r}")
    return float(timeout)


def copy_headers(headers: Any) -> dict[str, Any] | None:
    """A copy of ``headers`` (``None`` when empty), which must be a mapping with str keys."""
    if type(headers) is dict or isinstance(headers, Mapping):
        out = headers.copy() if type(headers) is dict else dict(headers)
        for key in out:
            if type(key) is not str:
                raise InputTypeError(f"header names must be str, got {type(key).__name__}")
        return out or None
    raise InputTypeError(
        f"headers must be a mapping of str to values, got {type(headers).__name__}"
    )


def _check_key(key: Any) -> None:
    if type(key) is not str:
        raise InputTypeError(f"idempotency_key must be a str, got {type(key).__name__}")
    storable_text("idempotency_key", key)


async def _as_follow_up(pipeline: Pipeline, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` (in its own task on the loop) as a follow-up of ``pipeline``'s handler."""
    HANDLING.set(pipeline)
    return await coro
