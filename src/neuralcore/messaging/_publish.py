"""The publishing half of :class:`MessageBus`: fast path, features, overflow, persistence."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import reprlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from neuralcore.core import (
    BusClosedError,
    InputTypeError,
    InvalidInputError,
    MessagingError,
    QueueFullError,
    RateLimitedError,
    RequestTimeoutError,
)
from neuralcore.messaging._journal import storable_text
from neuralcore.messaging._message import Message, Tracker, _new

if TYPE_CHECKING:
    from neuralcore.messaging._admission import Gate
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._codec import Codec
    from neuralcore.messaging._config import BusConfig
    from neuralcore.messaging._journal import Journal
    from neuralcore.messaging._middleware import Middleware
    from neuralcore.messaging._rpc import Requests
    from neuralcore.messaging._seams import Taps
    from neuralcore.messaging._store import Commit
    from neuralcore.messaging._types import Outcome

__all__ = ("Publisher",)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
_get_ident = threading.get_ident
_perf = time.perf_counter


class Publisher:
    """Mixin holding the publish methods (split out to keep modules small)."""

    config: BusConfig
    bus_id: str
    running: bool
    _closed: bool
    _counter: itertools.count[int]
    _channels: dict[str, Channel]
    _middleware: Middleware
    _requests: Requests
    _gate: Gate
    _journal: Journal | None
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: int | None
    _prestart: threading.Lock
    _taps: Taps

    if TYPE_CHECKING:  # provided by MessageBus; declared for the type checker only

        @property
        def codec(self) -> Codec: ...

        def _channel(self, name: str) -> Channel: ...

        def _tracked_done(self, tracker: Tracker, msg: Message) -> None: ...

    # -- public API -----------------------------------------------------------------------

    def publish(
        self,
        channel: str,
        payload: Any,
        *,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        auth: str | None = None,
    ) -> Message | None:
        """Publish from any thread; returns once the message is queued (and durable).

        Parameters
        ----------
        channel : str
            An existing channel.
        payload : object
            Delivered as is in-process; must be encodable on persistent channels.
        priority : int or None
            Lower is more urgent; the channel default when ``None``.
        headers : mapping or None
            Copied into the message.
        idempotency_key : str or None
            Repeats within the channel's ``idempotency_window`` are dropped.
        auth : str or None
            API key, for channels with ``allow_publish``.

        Returns
        -------
        Message or None
            The queued envelope, or ``None`` if dropped (``drop_new``, duplicate key).

        Raises
        ------
        ChannelNotFoundError, BusClosedError, QueueFullError, RateLimitedError,
        AuthorizationError, SerializationError, PersistenceError

        Notes
        -----
        Called on the event loop thread, a full ``block`` channel cannot wait there and
        raises ``QueueFullError``; use :meth:`publish_async`. From another thread the call
        is handed to the loop and blocks up to ``BusConfig.block_timeout``.

        Examples
        --------
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> bus.publish("a", {"n": 1}, priority=0).priority
        0
        """
        try:
            ch = self._channels.get(channel)
        except TypeError:  # unhashable: _prepare names the bad type
            ch = None
        if (
            ch is not None
            and ch.fast  # False once the bus is stopped
            and idempotency_key is None
            and ch.queue.size < ch.max_size
            and _get_ident() == self._loop_thread
        ):
            if priority is None:
                priority = ch.default_priority
            elif type(priority) is not int or not _PMIN <= priority <= _PMAX:
                priority = _check_priority(priority)
            msg = _new(
                channel,
                payload,
                priority,
                None if headers is None else _headers(headers),
                self.bus_id,
                next(self._counter),
            )
            bucket = ch.queue._buckets.get(priority)
            if bucket:  # the common case: append behind messages of the same priority
                bucket.append(msg)
                ch.queue.size += 1
            else:
                ch.queue.push(msg)
            ch.stats.published += 1
            if ch.waiter is not None:
                ch.wake()
            return msg
        args = (channel, payload, priority, headers, idempotency_key, auth)
        if self._loop_thread is None:  # not started: publishers of any thread take turns
            with self._prestart:
                if self._loop_thread is None:
                    return self._publish_sync(*args)
        if self._loop_thread != _get_ident() and self.running:
            return self._publish_from_thread(*args)
        return self._publish_sync(*args)

    async def publish_async(
        self,
        channel: str,
        payload: Any,
        *,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        auth: str | None = None,
    ) -> Message | None:
        """Publish from the event loop; waits for room (``block``) and for durability.

        Same parameters, result and errors as :meth:`publish`.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> asyncio.run(bus.publish_async("a", "x")).payload
        'x'
        """
        # The fast path is inlined here and in publish() on purpose: one more call per
        # message costs ~10% of the in-process publish; keep the two copies in step.
        try:
            ch = self._channels.get(channel)
        except TypeError:  # unhashable: _prepare names the bad type
            ch = None
        if (
            ch is not None
            and ch.fast  # False once the bus is stopped
            and idempotency_key is None
            and ch.queue.size < ch.max_size
        ):
            if priority is None:
                priority = ch.default_priority
            elif type(priority) is not int or not _PMIN <= priority <= _PMAX:
                priority = _check_priority(priority)
            msg = _new(
                channel,
                payload,
                priority,
                None if headers is None else _headers(headers),
                self.bus_id,
                next(self._counter),
            )
            bucket = ch.queue._buckets.get(priority)
            if bucket:  # the common case: append behind messages of the same priority
                bucket.append(msg)
                ch.queue.size += 1
            else:
                ch.queue.push(msg)
            ch.stats.published += 1
            if ch.waiter is not None:
                ch.wake()
            return msg
        # With features on: the checks and hooks run here, and a coroutine is awaited
        # only when there is something to wait for (room on a full channel, a commit).
        t0 = _perf()
        ch, prepared = self._prepare(channel, payload, priority, headers, idempotency_key, auth)
        if prepared is None:
            return None
        if (
            ch.config.persistent or ch.queue.size >= ch.max_size
        ) and not await self._admit_and_persist(ch, prepared, idempotency_key):
            return None
        return self._accept_timed(ch, prepared, t0)

    def publish_batch(
        self,
        channel: str,
        payloads: Iterable[Any],
        *,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        auth: str | None = None,
    ) -> list[Message | None]:
        """Publish many payloads with one group commit on persistent channels.

        Examples
        --------
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> len(bus.publish_batch("a", range(3)))
        3
        """
        if self._loop_thread is None:
            with self._prestart:
                if self._loop_thread is None:
                    return self._batch_sync(channel, payloads, priority, headers, auth)
        if self._loop_thread != _get_ident() and self.running:
            coro = self.publish_batch_async(
                channel, payloads, priority=priority, headers=headers, auth=auth
            )
            return self._wait_threadsafe(coro, channel)
        return self._batch_sync(channel, payloads, priority, headers, auth)

    def _batch_sync(
        self,
        channel: str,
        payloads: Iterable[Any],
        priority: int | None,
        headers: Mapping[str, Any] | None,
        auth: str | None,
    ) -> list[Message | None]:
        prepared = self._prepare_many(channel, payloads, priority, headers, auth)
        ch = self._channels[channel]
        kept = self._fit(ch, prepared)
        if ch.config.persistent and kept:
            self._persist(ch, kept, []).wait(self._commit_timeout())
        accepted = [self._accept(ch, m) for m in kept]
        return accepted + [None] * (len(prepared) - len(kept))

    def _fit(self, ch: Channel, msgs: list[Message]) -> list[Message]:
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

    async def publish_batch_async(
        self,
        channel: str,
        payloads: Iterable[Any],
        *,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        auth: str | None = None,
    ) -> list[Message | None]:
        """Async :meth:`publish_batch`: waits for room and for one group commit.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> [m.payload for m in asyncio.run(bus.publish_batch_async("a", "xy")) if m]
        ['x', 'y']
        """
        prepared = self._prepare_many(channel, payloads, priority, headers, auth)
        ch = self._channels[channel]
        if ch.config.overflow != "block":
            kept = self._fit(ch, prepared)
            if ch.config.persistent and kept:
                await self._persist_async(ch, kept, [])
            accepted = [self._accept(ch, m) for m in kept]
            return accepted + [None] * (len(prepared) - len(kept))
        out: list[Message | None] = []
        while len(out) < len(prepared):  # as much as there is room for, one commit each
            await self._admit_async(ch)
            room = max(1, ch.max_size - ch.queue.size)
            chunk = prepared[len(out) : len(out) + room]
            if ch.config.persistent:
                await self._persist_async(ch, chunk, [])
            out += [self._accept(ch, m) for m in chunk]
        return out

    async def request(
        self,
        channel: str,
        payload: Any,
        *,
        timeout: float = 5.0,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        auth: str | None = None,
    ) -> Any:
        """Publish and wait for the reply payload (a handler's return value).

        Raises
        ------
        RequestTimeoutError
            No reply within ``timeout`` seconds.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging import MessageBus
        >>> async def main():
        ...     async with MessageBus() as bus:
        ...         bus.create_channel("double")
        ...         bus.subscribe("double", lambda m: m.payload * 2)
        ...         return await bus.request("double", 21)
        >>> asyncio.run(main())
        42
        """
        timeout = check_timeout(timeout)
        cid, pending = self._requests.open(channel)
        extra = None if headers is None else _headers(headers)
        hdrs = {**(extra or {}), "correlation_id": cid, "reply_to": self.bus_id}
        try:
            sent = await self.publish_async(
                channel, payload, priority=priority, headers=hdrs, auth=auth
            )
            if sent is not None:
                pending.msg_id = sent.id
            async with asyncio.timeout(timeout):
                return await pending.future
        except TimeoutError as err:
            raise RequestTimeoutError(
                f"no reply on channel {channel!r} within {timeout} s (correlation_id={cid})"
            ) from err
        finally:
            self._requests.close(cid)

    # -- internals ------------------------------------------------------------------------

    def _publish_from_thread(
        self,
        channel: str,
        payload: Any,
        priority: int | None,
        headers: Mapping[str, Any] | None,
        key: str | None,
        auth: str | None,
    ) -> Message | None:
        coro = self._publish_one(channel, payload, priority, headers, key, auth)
        return self._wait_threadsafe(coro, channel)

    def _wait_threadsafe(self, coro: Coroutine[Any, Any, _T], channel: str) -> _T:
        assert self._loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as err:  # loop closed
            coro.close()
            raise BusClosedError(f"bus {self.bus_id} has no running event loop") from err
        limit = self.config.block_timeout + self._commit_timeout() + 5.0
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError as err:
            future.cancel()
            raise MessagingError(
                f"publish to {channel!r} got no answer from the bus's event loop within "
                f"{limit:g} s (block_timeout + commit_timeout + 5): the loop is blocked"
            ) from err

    def _commit_timeout(self) -> float:
        return float(self.config.commit_timeout)

    def _publish_sync(
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
        ch, msg = self._prepare(channel, payload, priority, headers, key, auth, internal=internal)
        if msg is None:
            return None
        try:
            if not self._admit_sync(ch):
                return None
            if ch.config.persistent:
                self._persist(ch, [msg], [key] if key else []).wait(self._commit_timeout())
        except BaseException:
            if key is not None and ch.idem is not None:
                ch.idem.forget(key)
            raise
        accepted = self._accept(ch, msg)
        ch.pub_tick += 1
        if ch.config.persistent or not ch.pub_tick % self.config.metrics_sample_every:
            ch.stats.publish_latency.observe(_perf() - t0)
        return accepted

    async def _publish_one(
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
        ch, msg = self._prepare(channel, payload, priority, headers, key, auth, internal=internal)
        if msg is None:
            return None
        if (
            ch.config.persistent or ch.queue.size >= ch.max_size
        ) and not await self._admit_and_persist(ch, msg, key):
            return None
        return self._accept_timed(ch, msg, t0)

    async def _admit_and_persist(self, ch: Channel, msg: Message, key: str | None) -> bool:
        """Wait for room (``block``) and for the commit; ``False`` = the message dropped.
        A failure forgets the idempotency key, so that a retry is not a duplicate."""
        try:
            if ch.queue.size >= ch.max_size and not await self._admit_async(ch):
                return False
            if ch.config.persistent:
                await self._persist_async(ch, [msg], [key] if key else [])
        except BaseException:
            if key is not None and ch.idem is not None:
                ch.idem.forget(key)
            raise
        return True

    def _accept_timed(self, ch: Channel, msg: Message, t0: float) -> Message | None:
        accepted = self._accept(ch, msg)
        ch.pub_tick += 1
        if ch.config.persistent or not ch.pub_tick % self.config.metrics_sample_every:
            ch.stats.publish_latency.observe(_perf() - t0)
        return accepted

    def _prepare(
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
        """Checks and hooks shared by every publish path; ``None`` message = duplicate."""
        if type(channel) is not str:
            raise InputTypeError(f"channel must be a str, got {type(channel).__name__}")
        if self._closed and not internal:
            raise BusClosedError(f"bus {self.bus_id} is stopped; cannot publish to {channel!r}")
        ch = self._channels.get(channel) or self._channel(channel)  # the latter raises
        if key is not None and (type(key) is not str or not key.isascii()):
            _check_key(key)
        if internal:
            pass  # the bus's own dead letters and replies: authorized by their source
        elif ch.config.allow_publish is not None or self.config.api_keys:
            self._gate.authorize(ch, auth, "publish")
        if ch.limiter is not None and not internal and not ch.limiter.take():
            ch.stats.dropped += 1
            raise RateLimitedError(
                f"channel {channel!r} is limited to {ch.config.rate_limit}/s "
                f"(burst {ch.limiter.burst:g}); publish refused"
            )
        if priority is None:
            priority = ch.default_priority
        elif type(priority) is not int or not _PMIN <= priority <= _PMAX:
            priority = _check_priority(priority)
        msg = _new(
            channel,
            payload,
            priority,
            None if headers is None else _headers(headers),
            self.bus_id,
            next(self._counter),
        )
        if self._middleware.publish:
            msg = self._middleware.run_publish(ch.stats, msg)
        if key is not None:
            if ch.idem is None:
                raise InvalidInputError(
                    f"idempotency_key={key!r} given but channel {channel!r} "
                    "has no idempotency_window"
                )
            if ch.idem.claim(key, msg.id) is not None:
                ch.stats.duplicates += 1
                return ch, None
        return ch, msg

    def _prepare_many(
        self,
        channel: str,
        payloads: Iterable[Any],
        priority: int | None,
        headers: Mapping[str, Any] | None,
        auth: str | None,
    ) -> list[Message]:
        out = []
        for payload in payloads:
            _, msg = self._prepare(channel, payload, priority, headers, None, auth)
            assert msg is not None
            out.append(msg)
        return out

    def _admit_sync(self, ch: Channel) -> bool:
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
            if not self.running
            else "publish() is on the event loop thread"
        )
        reason = (
            "overflow='error'" if policy == "error" else f"overflow='block' cannot wait: {where}"
        )
        raise QueueFullError(
            f"channel {ch.name!r} is full ({ch.max_size} messages queued; {reason})"
        )

    async def _admit_async(self, ch: Channel) -> bool:
        """Overflow policy, waiting up to ``block_timeout`` for room on ``block`` channels."""
        if ch.queue.size < ch.max_size or ch.config.overflow != "block":
            return self._admit_sync(ch)
        loop = asyncio.get_running_loop()
        timeout = self.config.block_timeout
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

    def _persist(self, ch: Channel, msgs: list[Message], keys: list[str]) -> Commit:
        """Encode (``SerializationError`` before anything is written) and join a commit."""
        assert self._journal is not None
        idem = ch.idem
        stored_keys = (
            [(key, msgs[0].id, time.time() + idem.window) for key in keys]
            if idem is not None
            else []
        )
        return self._journal.persist(
            ch.name,
            msgs,
            self._tracked_done,
            keys=stored_keys,
            outbox=(lambda first: self._taps.outbox_rows(ch, msgs, first)) if ch.taps else None,
        )

    async def _persist_async(self, ch: Channel, msgs: list[Message], keys: list[str]) -> None:
        """Like :meth:`_persist`, awaited from the event loop."""
        assert self._journal is not None
        idem = ch.idem
        stored_keys = (
            [(key, msgs[0].id, time.time() + idem.window) for key in keys]
            if idem is not None
            else []
        )
        await self._journal.persist_async(
            ch.name,
            msgs,
            self._tracked_done,
            keys=stored_keys,
            outbox=(lambda first: self._taps.outbox_rows(ch, msgs, first)) if ch.taps else None,
        )

    def _accept(self, ch: Channel, msg: Message) -> Message | None:
        """Queue an admitted message (evicting for ``drop_oldest``), run taps, wake."""
        queue = ch.queue
        queue.push(msg)
        evicted = None
        if queue.size > ch.max_size and ch.config.overflow == "drop_oldest":
            evicted = queue.evict_least_urgent()
            ch.stats.dropped += 1
            ch.settle_all(evicted, "dropped")
        if evicted is msg:
            seq = msg._tracker.seq if msg._tracker is not None else None
            for tap in ch.taps:  # never reached the taps: nothing to forward
                if tap.durable and tap.name is not None and seq:
                    self._taps.forwarded(tap.name, [seq])
            return None
        ch.stats.published += 1
        for tap in ch.taps:
            if tap.include_remote or msg.origin == self.bus_id:
                try:
                    tap.callback(msg)
                    msg._tapped = True  # forwarded: not lost if nobody here takes it
                except Exception:
                    ch.stats.errors += 1
                    logger.exception("tap %r on channel %r failed", tap.selector, ch.name)
        ch.wake()
        return msg

    async def _inject(
        self, message: Message, on_settled: Callable[[Message, Outcome], None] | None
    ) -> bool:
        if self._closed:
            raise BusClosedError(
                f"bus {self.bus_id} is stopped; cannot inject into {message.channel!r}"
            )
        ch = self._channel(message.channel)
        message._tracker = Tracker(None, self._tracked_done, on_settled) if on_settled else None
        if not await self._admit_async(ch):
            if on_settled is not None:
                on_settled(message, "dropped")
            return False
        if ch.config.persistent:
            await self._persist_async(ch, [message], [])
        return self._accept(ch, message) is not None


_PMIN, _PMAX = -(2**63), 2**63 - 1  # priorities are stored as signed 64-bit integers


def _check_priority(priority: Any) -> int:
    if isinstance(priority, int) and not isinstance(priority, bool):
        if not _PMIN <= priority <= _PMAX:
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


def _headers(headers: Any) -> dict[str, Any] | None:
    """A copy of ``headers`` (``None`` when empty), which must be a mapping with str keys."""
    if type(headers) is dict or isinstance(headers, Mapping):
        out = dict(headers)
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
