"""The MessageBus facade: the public API, the lifecycle and the inlined publish fast path.

It composes the parts, each the one owner of its state, which talk through small protocols
(:mod:`neuralcore.messaging._host`): the registry (channels, patterns, taps), the gate
(admission), middleware, the publish :class:`~._publish.Pipeline` (and its ``closed``
flag), :class:`~._taps.Taps` (taps and their durable outbox), request/reply, dead
letters, the journal, the :class:`~._supervisor.Supervisor` (every background task) and
the :class:`~._host.BusState` (running, loop) the parts read. Channels and subscriptions
see a :class:`~._host.BusHost` wired from those parts, never the facade. Bridges see only
the port (:mod:`neuralcore.messaging._port`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from neuralcore.core import (
    BusClosedError,
    ConfigError,
    InputTypeError,
    InvalidInputError,
    PersistenceError,
    RequestTimeoutError,
    SerializationError,
)
from neuralcore.messaging._admission import Gate
from neuralcore.messaging._bridge import Bridge, Tap
from neuralcore.messaging._channel import Channel
from neuralcore.messaging._codec import Codec
from neuralcore.messaging._config import BusConfig, ChannelConfig
from neuralcore.messaging._deadletters import DeadLetter, DeadLetters
from neuralcore.messaging._host import BusHost, BusState
from neuralcore.messaging._message import Message
from neuralcore.messaging._metrics import ChannelMetrics, prometheus_text
from neuralcore.messaging._middleware import DispatchAfter, DispatchBefore, Middleware
from neuralcore.messaging._native import message_maker
from neuralcore.messaging._publish import (
    MustWait,
    Pipeline,
    check_priority,
    check_timeout,
    check_wait,
    copy_headers,
)
from neuralcore.messaging._registry import Registry, check_name
from neuralcore.messaging._routing import Selector
from neuralcore.messaging._rpc import Requests
from neuralcore.messaging._subscription import Subscription
from neuralcore.messaging._supervisor import Supervisor
from neuralcore.messaging._taps import Taps
from neuralcore.messaging._types import Filter, Handler, Outcome

if TYPE_CHECKING:
    from neuralcore.messaging._journal import Journal
    from neuralcore.messaging.bridges._port import BusPort

__all__ = ("BusHealth", "DeadLetter", "MessageBus")

logger = logging.getLogger(__name__)
_get_ident = threading.get_ident
_perf = time.perf_counter
_sleep = asyncio.sleep
# ``publish_async`` lets the loop run once every ``_BURST`` messages it queued for a
# subscribed channel without waiting. A burst is then handled while it is young: the
# messages are freed before CPython's cyclic GC (700 net allocations a generation-0 pass)
# has to walk them, and queues stay short. Without it a loop of awaited publishes only
# yields when the channel is full, with up to ``max_size`` messages alive.
_BURST = 384  # the Notes of publish_async name it
MAX_CONCURRENCY = 10_000  # subscribe(concurrency=): each unit is a task or a thread slot


class BusHealth(NamedTuple):
    """What :meth:`MessageBus.health` reports.

    Attributes
    ----------
    ok : bool
        Nothing failed in the background and the writer (if any) runs.
    running : bool
        The bus is started and not stopped.
    writer : str
        The SQLite writer thread: ``"running"``, ``"stopped"``, ``"dead"`` or ``"none"``.
    store_failures : int
        Transactions that failed (each failed only the calls that joined it).
    failed_tasks : tuple of str
        Background tasks that failed, ``"task name: Error: text"``, most recent last.
    unforwarded : tuple of str
        Persistent channels' messages waiting in the outbox of a durable tap (an outbound
        bridge) that is not open on this bus, ``"channel 'c': 5 messages in the outbox of
        'redis>c'"``. Such a message was taken by that bridge on a channel without a local
        subscriber: only that bridge, added again with the same outbox name, sends it; it
        is never delivered locally. Does not make ``ok`` False.
    """

    ok: bool
    running: bool
    writer: str
    store_failures: int
    failed_tasks: tuple[str, ...]
    unforwarded: tuple[str, ...] = ()


class MessageBus:
    """In-process priority message bus with optional durable SQLite persistence.

    Parameters
    ----------
    config : BusConfig, mapping or None
        Bus settings and channels (a mapping is read with ``BusConfig.from_dict``).
    persistence_path : str or None
        SQLite file for persistent channels; overrides ``config.persistence_path``.

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     got = []
    ...     async with MessageBus() as bus:
    ...         bus.create_channel("greet")
    ...         bus.subscribe("greet", lambda m: got.append(m.payload))
    ...         await bus.publish_async("greet", "hello")
    ...         await bus.drain()
    ...     return got
    >>> asyncio.run(main())
    ['hello']
    """

    def __init__(
        self,
        config: BusConfig | Mapping[str, Any] | None = None,
        *,
        persistence_path: str | None = None,
    ) -> None:
        if config is None:
            config = BusConfig()
        elif not isinstance(config, BusConfig):
            config = BusConfig.from_dict(config)
        self.config = config
        self.bus_id = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        # publish()'s new message (headers copied, numbered, stamped); compiled when the
        # glue is built (_native.message_maker)
        self._make = message_maker(self._counter, self.bus_id, copy_headers, check_priority)
        self._burst = _BURST  # publish_async's countdown to its next yield
        self._sample_every = config.metrics_sample_every
        self._registry = Registry()
        self._channels = self._registry.channels  # read-only view for the fast path
        self._state = BusState(None)  # running, loop, journal: what the parts may read
        self._supervisor = Supervisor(self.bus_id)  # owns every background task
        self._middleware = Middleware()
        self._requests = Requests()
        self._gate = Gate(config.api_keys)
        self._bridges: list[Bridge] = []
        self._taps = Taps(self._state, self._registry, self._gate, self.bus_id)
        self._pub = Pipeline(
            self._state,
            config=config,
            bus_id=self.bus_id,
            counter=self._counter,
            registry=self._registry,
            middleware=self._middleware,
            gate=self._gate,
            taps=self._taps,
        )
        self._dead = DeadLetters(self._state, self._pub, self._supervisor)
        # What channels and subscriptions see: the parts that own each answer, not the bus.
        self._host = BusHost(
            config=config,
            middleware=self._middleware,
            state=self._state,
            pipeline=self._pub,
            supervisor=self._supervisor,
            answer=self._answer,
            dead_letter=self._dead.give_up,
            unsubscribe=self._registry.unsubscribe,
        )
        self._codec: Codec | None = None
        self._loop_thread: int | None = None  # the facade's own routing of publishes
        self._prestart = threading.Lock()
        self._stopping = False
        self._journal: Journal | None = None
        path = persistence_path or config.persistence_path
        try:
            if path:
                from neuralcore.messaging._journal import Journal

                self._journal = self._state.journal = Journal(path, config, lambda: self.codec)
                self._journal.bind(self)
            for channel in config.channels:
                self.create_channel(channel)
        except BaseException:
            self.close()  # a failed constructor keeps no file, lock or thread
            raise

    @property
    def running(self) -> bool:
        """The bus is started and not stopped."""
        return self._state.running

    # -- channels -------------------------------------------------------------------------

    def create_channel(self, channel: str | ChannelConfig, **settings: Any) -> ChannelConfig:
        """Create a channel from a name and settings, or from a :class:`ChannelConfig`.

        Parameters
        ----------
        channel : str or ChannelConfig
            Name, or a full configuration (then no ``settings``).
        **settings
            :class:`ChannelConfig` fields (``max_size=100, overflow="error"``...).

        Returns
        -------
        ChannelConfig
            The validated configuration.

        Raises
        ------
        ConfigError
            A bad setting, a duplicate name, or ``persistent=True`` without a file.

        Examples
        --------
        >>> MessageBus().create_channel("jobs", max_size=10).max_size
        10
        """
        cfg = (
            channel
            if isinstance(channel, ChannelConfig)
            else ChannelConfig(name=channel, **settings)
        )
        if isinstance(channel, ChannelConfig) and settings:
            raise ConfigError(
                "settings", sorted(settings), "give a ChannelConfig or settings, not both"
            )
        if cfg.name in self._channels:
            raise ConfigError("name", cfg.name, "channel already exists")
        if self._pub.closed:
            raise BusClosedError(f"bus {self.bus_id} is stopped")
        if cfg.persistent and self._journal is None:
            raise ConfigError("persistent", True, f"channel {cfg.name!r} needs persistence_path")
        ch = Channel(self._host, cfg)
        self._gate.bind(ch)
        ch.refresh()
        self._channels[cfg.name] = ch
        if cfg.dead_letter and cfg.dead_letter not in self._channels:
            # The dead letters of a protected channel are as protected as the channel.
            self.create_channel(
                cfg.dead_letter,
                persistent=cfg.persistent,
                allow_publish=cfg.allow_publish,
                allow_subscribe=cfg.allow_subscribe,
            )
        if cfg.persistent:
            try:
                self._restore(ch)
            except BaseException:
                del self._channels[cfg.name]
                raise
        for sub in self._registry.patterns:
            if sub.selection.matches(cfg.name) and self._gate.pattern_may(
                ch, sub._auth, f"subscription {sub.name}"
            ):
                ch.attach(sub)
        for tap in self._registry.pattern_taps:
            if tap.matches(cfg.name) and (
                tap._trusted or self._gate.pattern_may(ch, tap._auth, f"tap {tap.selector!r}")
            ):
                ch.taps.append(tap)
                ch.refresh()
        if self.running:
            self._start_channel(ch)
        return cfg

    def channels(self) -> dict[str, ChannelConfig]:
        """Configuration of every channel, by name."""
        return {name: ch.config for name, ch in self._channels.items()}

    def _channel(self, name: str) -> Channel:
        return self._registry.channel(name)

    def _restore(self, ch: Channel) -> None:
        """Replay a persistent channel's unacknowledged messages, keys and dead letters.

        Messages whose recorded delivery attempts are used up (the process died during
        each of them) are dead-lettered now, with that error.
        """
        assert self._journal is not None
        got = self._journal.restore(ch.name, ch.config.max_attempts, self._pub.tracked_done)
        for msg in got.messages:
            ch.queue.push(msg)
        if ch.idem is not None:
            for key, msg_id, expiry in got.keys:
                ch.idem.restore(key, msg_id, expiry)
        for msg, error, subscriber, ts in got.dead:
            self._dead.add(msg, error, subscriber, ts)
        for msg, error in got.exhausted:
            self._dead.give_up_restored(ch, msg, error)
        if ch.queue.size:
            logger.info("channel %r: replaying %d unacknowledged messages", ch.name, ch.queue.size)

    # -- publish -----------------------------------------------------------------------

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
            Delivered as is in-process; must be encodable on persistent channels, and on
            a channel an outbound bridge carries while it has no local subscriber (the
            message would only cross the bridge): otherwise ``SerializationError``
            naming the bad value, and nothing is published. With a local subscriber an
            unencodable payload is delivered locally only (logged, counted in
            ``errors``).
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
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> bus.publish("a", {"n": 1}, priority=0).priority
        0
        """
        try:
            ch = self._channels.get(channel)
        except TypeError:  # unhashable: _prepare names the bad type
            ch = None
        msg: Message | None = None
        if (
            ch is not None
            and ch.fast  # False once the bus is stopped
            and idempotency_key is None
            and ch.queue.size < ch.max_size
        ):
            direct = ch.direct
            if direct is not None:  # the bridge's compiled tap alone: made and taken in
                # one call (None: it is not sure to take it, or not the loop thread; then
                # nothing was made)
                msg = direct(self._make, channel, payload, priority, headers, ch.default_priority)
                if msg is not None:
                    ch.stats.published += 1
                    return msg
            # None off the loop thread (and before start): the general path below
            msg = self._make(channel, payload, priority, headers, ch.default_priority)
        if msg is not None and ch is not None:
            priority = msg.priority
            taps = ch.taps
            if taps and ch.sink is not None:
                # An outbound bridge's tap alone and no local subscriber: what the bridge
                # takes is not queued here (Pipeline.offer and give_taps, inlined).
                try:
                    took = ch.sink(msg)
                except SerializationError:  # cannot cross the bridge: refused here
                    raise
                except Exception:
                    took = self._pub.tap_failed(ch, ch.forwarders[0])
                if took is True:
                    ch.stats.published += 1
                    return msg
                taps = ch.others  # refused: queued here (and kept at stop)
            elif taps and ch.forwarders and not ch.targets:
                # An outbound bridge and no local subscriber: what the bridge takes is
                # not queued here (nobody would take it; Pipeline.offer, inlined).
                taps = ch.others
                if self._pub.give_taps(ch, msg, ch.forwarders, refuse=True):
                    ch.stats.published += 1
                    if taps:
                        self._pub.give_taps(ch, msg, taps)
                    return msg
            bucket = ch.queue._buckets.get(priority)
            if bucket:  # the common case: append behind messages of the same priority
                bucket.append(msg)
                ch.queue.size += 1
            else:
                ch.queue.push(msg)
            ch.stats.published += 1
            if taps:  # after queueing: a tap that publishes here queues behind this one
                self._pub.give_taps(ch, msg, taps)
            if ch.waiter is not None:
                ch.wake()
            return msg
        args = (channel, payload, priority, headers, idempotency_key, auth)
        if self._loop_thread is None:  # not started: publishers of any thread take turns
            with self._prestart:
                if self._loop_thread is None:
                    return self._pub.publish_sync(*args)
        if self._loop_thread != _get_ident() and self.running:
            return self._pub.publish_from_thread(*args)
        return self._pub.publish_sync(*args)

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

        Notes
        -----
        A loop of awaited publishes to subscribed channels lets the event loop run once
        every 384 messages, even when they all find room: the dispatchers then handle a
        burst while it is young and small, instead of once ``max_size`` messages queued.

        Examples
        --------
        >>> import asyncio
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> asyncio.run(bus.publish_async("a", "x")).payload
        'x'
        """
        # The fast path is inlined here and in publish() on purpose: one more call per
        # message costs ~10% of the in-process publish; keep the two copies in step (both
        # make the message with self._make: test_fast_path_sets_every_slot checks it).
        try:
            ch = self._channels.get(channel)
        except TypeError:  # unhashable: _prepare names the bad type
            ch = None
        msg: Message | None = None
        took = False
        if (
            ch is not None
            and ch.fast  # False once the bus is stopped
            and idempotency_key is None
            and ch.queue.size < ch.max_size
        ):
            direct = ch.direct
            if direct is not None:  # as in publish(): made and taken in one call
                msg = direct(self._make, channel, payload, priority, headers, ch.default_priority)
                took = msg is not None
            if msg is None:  # None off the loop thread (and before start): general path
                msg = self._make(channel, payload, priority, headers, ch.default_priority)
        if msg is not None and ch is not None:
            priority = msg.priority
            taps = ch.taps
            if not took and taps and ch.forwarders and not ch.targets:
                # An outbound bridge and no local subscriber: what the bridge takes is
                # not queued here (nobody would take it; Pipeline.offer, inlined; with
                # the bridge's tap alone, give_taps too).
                sink = ch.sink
                if sink is not None:
                    try:
                        took = sink(msg) is True
                    except SerializationError:  # cannot cross the bridge: refused here
                        raise
                    except Exception:
                        took = self._pub.tap_failed(ch, ch.forwarders[0])
                    taps = ch.others
                else:
                    taps = ch.others
                    took = self._pub.give_taps(ch, msg, ch.forwarders, refuse=True)
                    if took and taps:
                        self._pub.give_taps(ch, msg, taps)
            if took:
                ch.stats.published += 1
                self._burst -= 1  # the bridge's send loop runs now and then too
                if not self._burst:
                    self._burst = _BURST
                    await _sleep(0)
                return msg
            bucket = ch.queue._buckets.get(priority)
            if bucket:  # the common case: append behind messages of the same priority
                bucket.append(msg)
                ch.queue.size += 1
            else:
                ch.queue.push(msg)
            ch.stats.published += 1
            if taps:  # after queueing: a tap that publishes here queues behind this one
                self._pub.give_taps(ch, msg, taps)
            if ch.waiter is not None:
                ch.wake()
            elif ch.targets or ch.forwarders:  # a burst: let the consumers (and the
                # bridge's send loop) run now and then (``_BURST``)
                self._burst -= 1
                if not self._burst:
                    self._burst = _BURST
                    await _sleep(0)
            return msg
        # With features on: an in-memory channel with room is one call (the checks and
        # hooks its features need); otherwise a coroutine is awaited only when there is
        # something to wait for (room on a full channel, a commit).
        pipe = self._pub
        if ch is not None and ch.in_memory and ch.queue.size < ch.max_size:
            try:
                now = pipe.publish_now(ch, payload, priority, headers, idempotency_key, auth)
            except MustWait as full:  # a publish hook filled the channel: admit it below
                t0, msg = _perf(), full.msg
            else:
                if ch.targets or ch.forwarders:
                    self._burst -= 1
                    if not self._burst:
                        self._burst = _BURST
                        await _sleep(0)
                return now
        else:
            t0 = _perf()
            ch, prepared = pipe.prepare(channel, payload, priority, headers, idempotency_key, auth)
            if prepared is None:
                return None
            msg = prepared
        if ch.queue.size >= ch.max_size:
            return await pipe.publish_full(ch, msg, idempotency_key, t0)
        if ch.config.persistent:  # join the commit and await it directly
            try:
                await pipe.persist_soon(
                    ch, [msg], [] if idempotency_key is None else [idempotency_key]
                )
            except BaseException:
                pipe.forget(ch, idempotency_key)
                raise
        accepted = pipe.accept(ch, msg)
        ch.pub_tick += 1
        if not ch.pub_tick % self._sample_every:  # one in metrics_sample_every
            ch.stats.publish_latency.observe(_perf() - t0)
        return accepted

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
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> len(bus.publish_batch("a", range(3)))
        3
        """
        if self._loop_thread is None:
            with self._prestart:
                if self._loop_thread is None:
                    return self._pub.batch_sync(channel, payloads, priority, headers, auth)
        if self._loop_thread != _get_ident() and self.running:
            coro = self.publish_batch_async(
                channel, payloads, priority=priority, headers=headers, auth=auth
            )
            return self._pub.wait_threadsafe(coro, channel)
        return self._pub.batch_sync(channel, payloads, priority, headers, auth)

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
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> [m.payload for m in asyncio.run(bus.publish_batch_async("a", "xy")) if m]
        ['x', 'y']
        """
        return await self._pub.batch_async(channel, payloads, priority, headers, auth)

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
        extra = None if headers is None else copy_headers(headers)
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

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
        filter: Filter | None = None,
        auth: str | None = None,
        name: str | None = None,
    ) -> Subscription:
        """Call ``handler(message)`` for messages on ``channel`` (a name or ``"rag.*"``).

        Parameters
        ----------
        channel : str
            Channel name, or a pattern with ``*`` (``fnmatch`` rules) that also matches
            channels created later.
        handler : callable
            Sync or async; returning acks, raising retries then dead-letters. A non-None
            return value answers a :meth:`request`. Sync handlers run on the event loop
            thread (with ``concurrency > 1``: in the default thread pool).
        group : str or None
            Competing consumers: members of a group share the messages; ``None`` = every
            message (broadcast).
        concurrency : int
            Messages handled at once by this subscriber, 1 to 10,000 (each unit is a
            task, or a thread-pool slot for a sync handler).
        filter : callable or None
            ``filter(message) -> bool``; rejected messages are acknowledged unhandled. In a
            group the filter is the group's (set by its first member).
        auth : str or None
            API key, for channels with ``allow_subscribe``.
        name : str or None
            Shown in logs, metrics and dead letters; defaults to the handler's name.

        Returns
        -------
        Subscription

        Raises
        ------
        ChannelNotFoundError, AuthorizationError, InputTypeError, InvalidInputError
        ConfigError
            ``concurrency`` outside 1 to 10,000.

        Examples
        --------
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("rag.query")
        >>> bus.subscribe("rag.*", lambda m: None, group="workers").group
        'workers'
        """
        if type(channel) is not str:
            raise InputTypeError(
                f"channel must be a str (a name or a pattern), got {type(channel).__name__}"
            )
        check_name(channel)
        if not callable(handler):
            raise InputTypeError(f"handler must be callable, got {type(handler).__name__}")
        if type(concurrency) is not int:
            raise InputTypeError(f"concurrency must be an int, got {type(concurrency).__name__}")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ConfigError(
                "concurrency", concurrency, f"must be between 1 and {MAX_CONCURRENCY:,}"
            )
        if self._pub.closed:
            raise BusClosedError(f"bus {self.bus_id} is stopped")
        selection = Selector(channel)
        pattern = selection.is_pattern
        matched = (
            [c for n, c in self._channels.items() if selection.matches(n)]
            if pattern
            else [self._channel(channel)]
        )
        if pattern:  # a pattern reaches only the channels this key may read
            self._gate.known(auth)
            matched = [ch for ch in matched if self._gate.pattern_may(ch, auth, repr(channel))]
        else:
            self._gate.authorize(matched[0], auth, "subscribe")
        label = (
            name
            or f"{getattr(handler, '__qualname__', type(handler).__name__)}"
            f"#{len(self._registry.subs) + 1}"
        )
        sub = Subscription(
            self._host,
            channel,
            handler,
            group=group,
            concurrency=concurrency,
            filter=filter,
            name=label,
        )
        sub._auth = auth  # checked again on each protected channel the pattern meets
        self._registry.add_subscription(sub)
        for ch in matched:
            ch.attach(sub)
        return sub

    def _subscribed(self, channel: str) -> bool:
        """True when an active local subscription (direct or pattern) selects ``channel``."""
        return self._registry.subscribed(channel)

    # -- hooks ----------------------------------------------------------------------------

    def add_publish_hook(self, hook: Callable[[Message], Message]) -> None:
        """Run ``hook(message) -> message`` on every publish (validate or transform).

        A hook that raises rejects the publish with its exception (counted in ``errors``).

        Examples
        --------
        >>> bus = MessageBus()
        >>> bus.add_publish_hook(lambda m: m)
        """
        self._middleware.add_publish(hook)
        for ch in self._channels.values():
            ch.refresh()

    def add_dispatch_hook(
        self, *, before: DispatchBefore | None = None, after: DispatchAfter | None = None
    ) -> None:
        """Middleware around handler calls: ``before(msg, sub)``, ``after(msg, sub, error)``.

        ``before`` raising fails the delivery (retried like a handler error).

        Examples
        --------
        >>> MessageBus().add_dispatch_hook(before=lambda m, s: None)
        """
        self._middleware.add_dispatch(before, after)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching (and the bridges) on the running event loop.

        Raises
        ------
        BusClosedError
            The bus was stopped; buses are not restartable.
        """
        if self._pub.closed:
            raise BusClosedError(f"bus {self.bus_id} was stopped; create a new MessageBus")
        if self.running:
            return
        with self._prestart:  # publishers on other threads now go through the loop
            self._state.loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._make.bind()  # publish's fast path serves this thread from now on
            self._state.running = True
        for ch in self._channels.values():
            self._start_channel(ch)
        self._taps.replay_due()
        for bridge in self._bridges:
            await bridge.start(self)
        for line in self._unforwarded():
            logger.warning(
                "%s, which no bridge on this bus opens: they were taken by an outbound "
                "bridge (no local subscriber) and only that bridge, added again with the "
                "same outbox name, sends them; they are never delivered locally",
                line,
            )

    def _start_channel(self, ch: Channel) -> None:
        ch.task = self._supervisor.spawn(ch.run(), f"bus:{ch.name}", lasting=True)
        for target in ch.targets:
            for sub in target.members:
                ch.start_workers(target, sub)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every channel with subscribers is idle; ``False`` on timeout.

        ``timeout`` is a finite number of seconds in ``[0, 1e6)``, or ``None`` for
        ``BusConfig.drain_timeout`` (NaN, infinity or a non-number raise
        ``InvalidInputError`` / ``InputTypeError``).

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(MessageBus().drain())
        True
        """
        wait = self.config.drain_timeout if timeout is None else check_wait(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # Background work (dead letters on their way to a dead-letter channel) counts.
        while self._supervisor.busy or not all(ch.idle() for ch in self._channels.values()):
            if loop.time() >= deadline or self._dispatcher_died():
                return False
            await asyncio.sleep(0.001)
        return True

    def _dispatcher_died(self) -> bool:
        """A channel's dispatcher ended while the bus runs (see health()): waiting for
        its queue to empty would wait for nothing."""
        return self.running and any(
            ch.task is not None and ch.task.done() for ch in self._channels.values()
        )

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new publishes, drain up to ``timeout``, then stop the bridges (each
        hands what it accepted to its server within its own drain timeout) and shut down.

        From the moment ``stop()`` begins, a publish raises :class:`BusClosedError`,
        except a follow-up published by one of this bus's handlers while it drains: that
        one is accepted, delivered and handed to the outbound bridges like any other.
        Bridges stop only after the drain, so nothing accepted misses them; what they
        receive meanwhile is left unacknowledged on the server (redelivered).

        Messages still queued or in flight at the deadline stay unacknowledged in the file
        on persistent channels (replayed on the next start) and are counted as dropped on
        in-memory channels. ``timeout`` is checked as :meth:`drain` checks it.
        """
        if timeout is not None:
            check_wait(timeout)
        if self._pub.closed or self._stopping:
            return
        self._stopping = True
        self._pub.draining = True  # handlers' follow-ups still pass while draining
        self._pub.closed = True  # the pipeline owns it: publishes check it
        for ch in self._channels.values():
            ch.refresh()  # no more fast-path publishes
        try:
            if self.running and not await self.drain(timeout):
                # Handlers may still publish follow-ups while draining; the deadline bounds it.
                logger.warning("bus %s: drain deadline passed with messages pending", self.bus_id)
        finally:
            self._pub.draining = False
        for bridge in reversed(self._bridges):
            await self._stop_bridge(bridge)
        if self.running:
            await self._cancel_tasks()
        self._state.running = False
        self._release()

    def close(self) -> None:
        """Release the bus's resources now: the SQLite file, its lock and the writer thread.

        Unlike :meth:`stop` it does not drain: on persistent channels what is not yet
        acknowledged stays in the file and is replayed by the next bus. Safe to call more
        than once, after :meth:`stop`, and from ``with MessageBus(...) as bus:``. A bus
        that is garbage collected, or still open at interpreter exit, is closed the same
        way.

        Examples
        --------
        >>> with MessageBus() as bus:
        ...     _ = bus.create_channel("a")
        >>> bus.health().running
        False
        """
        self._stopping = True
        self._pub.closed = True  # the pipeline owns it: publishes check it
        for ch in self._channels.values():
            ch.refresh()
        if self.running:
            self._state.running = False
            self._supervisor.cancel_soon(self._state.loop)
        self._release()

    def _release(self) -> None:
        self._requests.cancel_all()
        if self._journal is not None:
            self._journal.close()

    def __enter__(self) -> MessageBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _cancel_tasks(self) -> None:
        for ch in self._channels.values():
            for handle in ch.timers:
                handle.cancel()
            ch.timers.clear()
            for fut in ch.space:
                if not fut.done():
                    fut.set_exception(BusClosedError(f"bus {self.bus_id} stopped"))
            if not ch.config.persistent:
                _count_left_at_stop(ch)
        await self._supervisor.stop()

    async def __aenter__(self) -> MessageBus:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- acknowledgement, dead letters, replies -------------------------------------------

    def health(self) -> BusHealth:
        """Whether the bus runs and what failed in the background.

        Examples
        --------
        >>> MessageBus().health().ok
        True
        """
        journal = self._journal
        writer = journal.store.writer_state() if journal is not None else "none"
        failed = self._supervisor.failures()  # a stopped dispatcher is one of them
        ok = not failed and writer in ("running", "none", "stopped")
        store_failures = journal.store.failures if journal is not None else 0
        waiting = self._unforwarded() if writer == "running" else ()
        return BusHealth(ok, self.running, writer, store_failures, failed, waiting)

    def _unforwarded(self) -> tuple[str, ...]:
        """Outbox rows of durable taps that are not open here (see BusHealth)."""
        journal = self._journal
        if journal is None:
            return ()
        try:
            counts = journal.outbox_counts()
        except PersistenceError:  # health() never raises; the failure shows elsewhere
            return ()
        open_taps = self._registry.durable_taps
        return tuple(
            f"channel {channel!r}: {count} messages in the outbox of {tap!r}"
            for tap, channel, count in counts
            if tap not in open_taps
        )

    def dead_letters(
        self, channel: str | None = None, *, auth: str | None = None
    ) -> list[DeadLetter]:
        """Dead letters of this run and, for persistent channels, earlier runs (oldest first).

        Dead letters of a channel with ``allow_subscribe`` (or of any channel once
        ``api_keys`` is set) are shown only to an API key that may subscribe there:
        naming such a ``channel`` without one raises ``AuthorizationError``; without a
        ``channel``, they are left out.

        Examples
        --------
        >>> MessageBus().dead_letters()
        []
        """
        if channel is not None:
            ch = self._channels.get(channel)
            if ch is not None:
                self._gate.authorize(ch, auth, "subscribe")
            return self._dead.of(channel)
        out = []
        for d in self._dead.all():
            ch = self._channels.get(d.message.channel)
            if ch is None or self._gate.may(ch, auth, "subscribe"):
                out.append(d)
        return out

    def reply(self, request: Message, payload: Any) -> None:
        """Answer a :meth:`request` (a handler can also just return the answer).

        Raises
        ------
        InvalidInputError
            ``request`` carries no ``correlation_id``/``reply_to`` headers.

        Examples
        --------
        >>> import asyncio
        >>> async def main():
        ...     async with MessageBus() as bus:
        ...         bus.create_channel("upper")
        ...         bus.subscribe("upper", lambda m: bus.reply(m, m.payload.upper()))
        ...         return await bus.request("upper", "hi")
        >>> asyncio.run(main())
        'HI'
        """
        headers = request._headers or {}
        cid, to = headers.get("correlation_id"), headers.get("reply_to")
        if cid is None or to is None:
            raise InvalidInputError(f"message {request.id} is not a request (no reply_to header)")
        if to != self.bus_id:  # another bus: a bridge carries "_reply.<bus id>" home
            self._pub.publish_sync(
                self._reply_channel(str(to)),
                payload,
                None,
                {"correlation_id": cid},
                None,
                None,
                internal=True,
            )
        elif self._state.loop is not None and threading.get_ident() != self._loop_thread:
            self._state.loop.call_soon_threadsafe(
                self._requests.answer_local, request, str(cid), payload
            )
        else:
            self._requests.answer_local(request, str(cid), payload)

    def _answer(self, request: Message, payload: Any) -> None:
        """A handler's return value answers a request; never raises into the dispatcher."""
        try:
            self.reply(request, payload)
        except Exception:
            logger.exception("reply to request %s failed", request.id)

    # -- bridges ---------------------------------------------------------------------------

    @property
    def codec(self) -> Codec:
        """The boundary codec (MessagePack or JSON), chosen once per bus."""
        if self._codec is None:
            from neuralcore.messaging._select import make_codec

            self._codec = make_codec(self.config.codec, max_size=self.config.max_message_size)
        return self._codec

    async def add_bridge(self, bridge: Bridge) -> None:
        """Attach a bridge; it starts with the bus (now, if the bus is running).

        Raises
        ------
        InputTypeError
            ``bridge`` lacks the :class:`Bridge` members.
        InvalidInputError
            It is already attached.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging import MessageBus
        >>> class Null:
        ...     name, channels, direction = "null", ("*",), "outbound"
        ...     async def start(self, bus): print("start")
        ...     async def stop(self): print("stop")
        >>> async def main():
        ...     bus = MessageBus()
        ...     await bus.add_bridge(Null())
        ...     async with bus:
        ...         pass
        >>> asyncio.run(main())
        start
        stop
        """
        if not isinstance(bridge, Bridge):
            raise InputTypeError(f"{type(bridge).__name__} does not implement the Bridge protocol")
        if bridge in self._bridges:
            raise InvalidInputError(f"bridge {bridge.name!r} is already attached")
        self._bridges.append(bridge)
        if self.running and not self._pub.closed:
            await bridge.start(self)

    async def remove_bridge(self, bridge: Bridge) -> None:
        """Detach a bridge, stopping it if the bus is running."""
        if bridge not in self._bridges:
            raise InvalidInputError(f"bridge {getattr(bridge, 'name', bridge)!r} is not attached")
        self._bridges.remove(bridge)
        if self.running:
            await self._stop_bridge(bridge)

    async def _stop_bridge(self, bridge: Bridge) -> None:
        try:
            await bridge.stop()
        except Exception:
            logger.exception("bridge %r failed to stop", bridge.name)

    def bridges(self) -> list[Bridge]:
        """Attached bridges."""
        return list(self._bridges)

    def tap(
        self,
        channel: str | tuple[str, ...],
        callback: Callable[[Message], None],
        *,
        include_remote: bool = False,
        durable: bool = False,
        name: str | None = None,
        auth: str | None = None,
    ) -> Tap:
        """Observe messages accepted on ``channel`` (name or pattern), for outbound bridges.

        ``callback(message)`` runs on the event loop thread after the message is accepted
        (and durable on persistent channels), in publish order. Messages whose ``origin``
        is another bus (injected by a bridge) are skipped unless ``include_remote``.

        Parameters
        ----------
        channel : str or tuple of str
            A channel name, a pattern with ``*``, or several (a channel matched by more
            than one is seen once).
        callback : callable
            ``callback(message)``; must not block.
        include_remote : bool
            Also see messages injected from other buses.
        durable : bool
            Record messages of persistent channels in the bus's file, in the publish's
            own group commit, until :meth:`Tap.ack`; the ones never acknowledged are given
            to ``callback`` again (oldest first, before new ones) when a tap of the same
            ``name`` is made in a later run: at once if the bus is running, else at
            :meth:`start`. Replayed messages keep their original ``origin``.
        name : str or None
            Required with ``durable``; unique among the bus's durable taps.
        auth : str or None
            API key: a tap reads messages, so it needs the right to subscribe on every
            protected channel it selects (also on those created later).

        Returns
        -------
        Tap

        Raises
        ------
        ChannelNotFoundError
            A plain name that is not a channel.
        AuthorizationError
            ``auth`` may not subscribe on a selected channel.
        InvalidInputError
            ``durable`` without a ``name``, or a durable tap of that name already open.

        Examples
        --------
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("out")
        >>> seen = []
        >>> tap = bus.tap("out", seen.append)
        >>> _ = bus.publish("out", 1)
        >>> [m.payload for m in seen]
        [1]
        """
        return self._taps.open(
            channel,
            callback,
            include_remote=include_remote,
            durable=durable,
            name=name,
            auth=auth,
            trusted=False,
        )

    async def inject(
        self,
        message: Message,
        *,
        on_settled: Callable[[Message, Outcome], None] | None = None,
        create: bool = False,
    ) -> bool:
        """Deliver a message that arrived from elsewhere (a bridge), keeping its envelope.

        Id, priority, headers, timestamp and origin are kept; publish hooks, authorization,
        rate limits and idempotency are not applied (the bridge is trusted). The channel's
        overflow policy and persistence are. ``on_settled(message, outcome)`` fires on the
        loop once every local target acked or dead-lettered it (or it was dropped/expired):
        the moment to XACK or commit the offset. Replies to this bus's requests
        (channel ``_reply.<bus_id>``) resolve the waiting :meth:`request` directly.

        Parameters
        ----------
        message : Message
            The decoded envelope.
        on_settled : callable or None
            ``on_settled(message, outcome)``, called once on the loop.
        create : bool
            Create a missing channel from ``BusConfig.default_channel`` (plain defaults
            when that is ``None``) instead of raising ``ChannelNotFoundError``.

        Returns
        -------
        bool
            ``False`` when the overflow policy dropped the message.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging import Message, MessageBus
        >>> async def main():
        ...     async with MessageBus() as bus:
        ...         bus.create_channel("in")
        ...         bus.subscribe("in", lambda m: None)
        ...         settled = asyncio.get_running_loop().create_future()
        ...         remote = Message("in", {"x": 1}, id="peer-7", origin="peer")
        ...         await bus.inject(remote, on_settled=lambda m, o: settled.set_result(o))
        ...         return await settled
        >>> asyncio.run(main())
        'acked'
        """
        if message.channel == f"_reply.{self.bus_id}":
            self._requests.resolve(str(message.correlation_id), message.payload)
            if on_settled is not None:
                on_settled(message, "acked")
            return True
        if create and message.channel not in self._channels:
            self.create_default_channel(message.channel)
        return await self._pub.inject(message, on_settled)

    def create_default_channel(self, name: str) -> ChannelConfig:
        """Create channel ``name`` from the ``BusConfig.default_channel`` template.

        Plain :class:`ChannelConfig` defaults are used when the template is ``None``.

        Examples
        --------
        >>> from neuralcore.messaging import BusConfig, ChannelConfig, MessageBus
        >>> template = ChannelConfig(name="template", max_size=64, overflow="drop_oldest")
        >>> bus = MessageBus(BusConfig(default_channel=template))
        >>> cfg = bus.create_default_channel("remote.jobs")
        >>> cfg.name, cfg.max_size, cfg.overflow
        ('remote.jobs', 64, 'drop_oldest')
        """
        template = self.config.default_channel
        cfg = (
            ChannelConfig(name=name)
            if template is None
            else dataclasses.replace(template, name=name)
        )
        return self.create_channel(cfg)

    def _reply_channel(self, to: str) -> str:
        """The local channel a reply to bus ``to`` is published on (a bridge carries it)."""
        name = f"_reply.{to}"
        if name not in self._channels:  # replies are small and short-lived: never block
            self.create_channel(ChannelConfig(name=name, max_size=1024, overflow="drop_oldest"))
        return name

    def bridge_port(self) -> BusPort:
        """A fresh narrow port over this bus, the only view of it a bridge is given.

        A bridge's ``start(bus)`` asks for it and never touches the bus itself.
        """
        from neuralcore.messaging._port import MessageBusPort

        async def inject(msg: Message, on_settled: Callable[[Message, Outcome], None]) -> bool:
            return await self.inject(msg, on_settled=on_settled, create=True)

        return MessageBusPort(
            origin=self.bus_id,
            taps=self._taps,
            registry=self._registry,
            codec=self.codec,
            inject=inject,
            create=self.create_default_channel,
        )

    # -- metrics --------------------------------------------------------------------------

    def metrics(self) -> dict[str, ChannelMetrics]:
        """Counters, queue depth and latency histograms per channel.

        Examples
        --------
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> bus.metrics()["a"].published
        0
        """
        return {name: ch.stats.snapshot(ch.queue.size) for name, ch in self._channels.items()}

    def metrics_text(self) -> str:
        """The metrics in Prometheus text exposition format (version 0.0.4).

        Examples
        --------
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("a")
        >>> bus.metrics_text().splitlines()[2]
        'neuralcore_bus_published_total{channel="a"} 0'
        >>> bus.metrics_text().splitlines()[-1]  # background tasks that failed
        'neuralcore_bus_failed_tasks_total 0'
        """
        return prometheus_text(self.metrics(), failed_tasks=self._supervisor.failed)


def _count_left_at_stop(ch: Channel) -> None:
    """Account for what an in-memory channel still holds when the bus stops.

    Messages handed to subscribers, or queued for subscribers the channel has, are lost:
    counted as dropped, with a warning. On a channel without subscribers nothing local
    was expected: a message a tap (an outbound bridge) took was forwarded, not lost, and
    is only logged as not delivered locally; one that nobody took is dropped.
    """
    in_flight = sum(len(t.inbox) for t in ch.targets)
    in_flight += len(ch.batch) - ch.cur if ch.batch else 0
    if ch.targets:
        lost, forwarded = in_flight + ch.queue.size, 0
    else:
        forwarded = sum(1 for m in ch.queue.peek_all() if getattr(m, "_tapped", False))
        lost = in_flight + ch.queue.size - forwarded
    if forwarded:
        logger.info(
            "channel %r: %d forwarded messages not delivered locally (no subscriber)",
            ch.name,
            forwarded,
        )
    if lost:
        ch.stats.dropped += lost
        logger.warning(
            "channel %r: %d undelivered messages dropped at stop%s",
            ch.name,
            lost,
            "" if ch.targets else " (no subscriber, and no tap forwarded them)",
        )
