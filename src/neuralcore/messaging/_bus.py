"""The MessageBus: channels, subscriptions, lifecycle, metrics and bridge seams."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from neuralcore.core import (
    AuthorizationError,
    BusClosedError,
    ChannelNotFoundError,
    ConfigError,
    InputTypeError,
    InvalidInputError,
    PersistenceError,
    SerializationError,
)
from neuralcore.messaging._bridge import Bridge, Tap
from neuralcore.messaging._channel import Channel
from neuralcore.messaging._codec import Codec
from neuralcore.messaging._config import BusConfig, ChannelConfig
from neuralcore.messaging._message import Message, Tracker
from neuralcore.messaging._metrics import ChannelMetrics, prometheus_text
from neuralcore.messaging._publish import Publisher
from neuralcore.messaging._routing import Selector
from neuralcore.messaging._seams import BridgeSeams
from neuralcore.messaging._subscription import Subscription
from neuralcore.messaging._types import Filter, Handler

if TYPE_CHECKING:
    from neuralcore.messaging._store import SQLiteStore

__all__ = ("DeadLetter", "MessageBus")

logger = logging.getLogger(__name__)
_DEAD_KEPT = 10_000

DispatchBefore = Callable[[Message, Subscription], None]
DispatchAfter = Callable[[Message, Subscription, BaseException | None], None]


class DeadLetter(NamedTuple):
    """A message given up on after ``max_attempts`` failed deliveries.

    Attributes
    ----------
    message : Message
        The message as last attempted.
    error : str
        ``"ExceptionType: text"`` of the last failure.
    subscriber : str
        Name of the subscription that failed.
    timestamp : float
        When it was dead-lettered (``time.time()``).
    """

    message: Message
    error: str
    subscriber: str
    timestamp: float


class MessageBus(Publisher, BridgeSeams):
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
        self._channels: dict[str, Channel] = {}
        self._patterns: list[Subscription] = []
        self._pattern_taps: list[Tap] = []
        self._durable_taps: dict[str, Tap] = {}
        self._replay_due: dict[Tap, int] = {}
        self._subs: list[Subscription] = []
        self._publish_hooks: list[Callable[[Message], Message]] = []
        self._dispatch_hooks: list[tuple[DispatchBefore | None, DispatchAfter | None]] = []
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._bridges: list[Bridge] = []
        self._dead: deque[DeadLetter] = deque(maxlen=_DEAD_KEPT)
        self._codec: Codec | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._prestart = threading.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self.running = False
        self._closed = False
        self._stopping = False
        path = persistence_path or config.persistence_path
        self._store = _open_store(path, config) if path else None
        for channel in config.channels:
            self.create_channel(channel)

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
        if cfg.persistent and self._store is None:
            raise ConfigError("persistent", True, f"channel {cfg.name!r} needs persistence_path")
        ch = self._channels[cfg.name] = Channel(self, cfg)
        if cfg.dead_letter and cfg.dead_letter not in self._channels:
            self.create_channel(cfg.dead_letter, persistent=cfg.persistent)
        if cfg.persistent:
            try:
                self._restore(ch)
            except BaseException:
                del self._channels[cfg.name]
                raise
        for sub in self._patterns:
            if sub.selection.matches(cfg.name):
                ch.attach(sub)
        for tap in self._pattern_taps:
            if tap.matches(cfg.name):
                ch.taps.append(tap)
                ch.refresh()
        if self.running:
            self._start_channel(ch)
        return cfg

    def channels(self) -> dict[str, ChannelConfig]:
        """Configuration of every channel, by name."""
        return {name: ch.config for name, ch in self._channels.items()}

    def _channel(self, name: str) -> Channel:
        ch = self._channels.get(name)
        if ch is None:
            known = ", ".join(sorted(self._channels)[:10]) or "none"
            raise ChannelNotFoundError(
                f"no channel {name!r} (known: {known}); create it with bus.create_channel({name!r})"
            )
        return ch

    def _restore(self, ch: Channel) -> None:
        """Replay a persistent channel's unacknowledged messages, keys and dead letters."""
        assert self._store is not None
        for seq, data in self._store.unacked(ch.name):
            msg = self._decode_stored(ch, seq, data)
            msg.attempt += 1  # it may have been delivered before the restart
            msg._tracker = Tracker(seq, self._tracked_done)
            ch.queue.push(msg)
        if ch.idem is not None:
            for key, msg_id, expiry in self._store.keys(ch.name):
                ch.idem.restore(key, msg_id, expiry)
        for subscriber, error, ts, data in self._store.dead_letters(ch.name):
            self._dead.append(DeadLetter(self._decode_stored(ch, 0, data), error, subscriber, ts))
        if ch.queue.size:
            logger.info("channel %r: replaying %d unacknowledged messages", ch.name, ch.queue.size)

    def _decode_stored(self, ch: Channel | str, seq: int, data: bytes) -> Message:
        """Decode a stored message with the codec that wrote it (the file may predate a
        ``codec`` setting change: JSON envelopes start with ``[``)."""
        from neuralcore.messaging._codec import JsonCodec

        codec = self.codec
        if data[:1] == b"[" and codec.name != "json":
            codec = JsonCodec(max_size=self.config.max_message_size)
        try:
            return codec.decode(data)
        except SerializationError as err:
            raise PersistenceError(
                f"stored message {seq} of {_where(ch)} in {self._store_path()} "
                f"cannot be decoded: {err}"
            ) from err

    def _store_path(self) -> str:
        return str(self._store.path) if self._store is not None else "-"

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
            Messages handled at once by this subscriber.
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

        Examples
        --------
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("rag.query")
        >>> bus.subscribe("rag.*", lambda m: None, group="workers").group
        'workers'
        """
        if not callable(handler):
            raise InputTypeError(f"handler must be callable, got {type(handler).__name__}")
        if type(concurrency) is not int or concurrency < 1:
            raise InvalidInputError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if self._closed:
            raise BusClosedError(f"bus {self.bus_id} is stopped")
        selection = Selector(channel)
        pattern = selection.is_pattern
        matched = (
            [c for n, c in self._channels.items() if selection.matches(n)]
            if pattern
            else [self._channel(channel)]
        )
        for ch in matched:
            self._authorize(ch, auth, "subscribe")
        label = (
            name
            or f"{getattr(handler, '__qualname__', type(handler).__name__)}#{len(self._subs) + 1}"
        )
        sub = Subscription(
            self, channel, handler, group=group, concurrency=concurrency, filter=filter, name=label
        )
        self._subs.append(sub)
        if pattern:
            self._patterns.append(sub)
        for ch in matched:
            ch.attach(sub)
        return sub

    def _subscribed(self, channel: str) -> bool:
        """True when an active local subscription (direct or pattern) selects ``channel``."""
        return any(sub.active and sub.selection.matches(channel) for sub in self._subs)

    def _unsubscribe(self, sub: Subscription) -> None:
        sub.active = False
        for target in list(sub.targets):
            for ch in self._channels.values():
                if target in ch.targets:
                    ch.detach(sub, target)
        sub.targets.clear()
        self._subs = [s for s in self._subs if s is not sub]
        self._patterns = [s for s in self._patterns if s is not sub]

    def _authorize(self, ch: Channel, auth: str | None, action: str) -> None:
        if (action, auth) in ch.granted:
            return
        allowed = ch.config.allow_publish if action == "publish" else ch.config.allow_subscribe
        if allowed is None:
            return
        roles = self.config.api_keys.get(auth) if auth is not None else None
        if roles is not None and ("*" in allowed or not set(allowed).isdisjoint(roles)):
            ch.granted.add((action, auth))
            return
        ch.stats.denied += 1
        who = (
            "no API key"
            if auth is None
            else ("an unknown API key" if roles is None else f"roles {list(roles)}")
        )
        raise AuthorizationError(
            f"{action} on channel {ch.name!r} denied for {who}; allowed roles: {list(allowed)}"
        )

    # -- hooks ----------------------------------------------------------------------------

    def add_publish_hook(self, hook: Callable[[Message], Message]) -> None:
        """Run ``hook(message) -> message`` on every publish (validate or transform).

        A hook that raises rejects the publish with its exception (counted in ``errors``).

        Examples
        --------
        >>> bus = MessageBus()
        >>> bus.add_publish_hook(lambda m: m)
        """
        self._publish_hooks.append(hook)
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
        self._dispatch_hooks.append((before, after))

    def _run_hooked(
        self, sub: Subscription, msg: Message, handler: Callable[[Message], Any]
    ) -> Any:
        hooks = self._dispatch_hooks
        for before, _ in hooks:
            if before is not None:
                before(msg, sub)
        error: BaseException | None = None
        try:
            return handler(msg)
        except Exception as err:
            error = err
            raise
        finally:
            for _, after in hooks:
                if after is not None:
                    after(msg, sub, error)

    async def _run_hooked_async(
        self, sub: Subscription, msg: Message, timeout: float | None
    ) -> Any:
        hooks = self._dispatch_hooks
        for before, _ in hooks:
            if before is not None:
                before(msg, sub)
        error: BaseException | None = None
        try:
            coro = sub.handler(msg)
            return await (coro if timeout is None else asyncio.wait_for(coro, timeout))
        except Exception as err:
            error = err
            raise
        finally:
            for _, after in hooks:
                if after is not None:
                    after(msg, sub, error)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching (and the bridges) on the running event loop.

        Raises
        ------
        BusClosedError
            The bus was stopped; buses are not restartable.
        """
        if self._closed:
            raise BusClosedError(f"bus {self.bus_id} was stopped; create a new MessageBus")
        if self.running:
            return
        with self._prestart:  # publishers on other threads now go through the loop
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self.running = True
        for ch in self._channels.values():
            self._start_channel(ch)
        for tap in list(self._replay_due):
            self._replay(tap)
        for bridge in self._bridges:
            await bridge.start(self)

    def _start_channel(self, ch: Channel) -> None:
        ch.task = asyncio.get_running_loop().create_task(ch.run(), name=f"bus:{ch.name}")
        for target in ch.targets:
            for sub in target.members:
                ch.start_workers(target, sub)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every channel with subscribers is idle; ``False`` on timeout.

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(MessageBus().drain())
        True
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.drain_timeout if timeout is None else timeout)
        while not all(ch.idle() for ch in self._channels.values()):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    async def stop(self, timeout: float | None = None) -> None:
        """Stop bridges, drain up to ``timeout`` (handlers may still publish follow-ups),
        then refuse publishes and shut down.

        Messages still queued or in flight at the deadline stay unacknowledged in the file
        on persistent channels (replayed on the next start) and are counted as dropped on
        in-memory channels.
        """
        if self._closed or self._stopping:
            return
        self._stopping = True
        for bridge in reversed(self._bridges):
            await self._stop_bridge(bridge)
        if self.running and not await self.drain(timeout):
            # Handlers may still publish follow-ups while draining; the deadline bounds it.
            logger.warning("bus %s: drain deadline passed with messages pending", self.bus_id)
        self._closed = True
        for ch in self._channels.values():
            ch.refresh()  # no more fast-path publishes
        if self.running:
            await self._cancel_tasks()
        self.running = False
        for fut in self._replies.values():
            fut.cancel()
        if self._store is not None:
            self._store.close()

    async def _cancel_tasks(self) -> None:
        tasks: list[asyncio.Task[Any]] = list(self._background)
        for ch in self._channels.values():
            for handle in ch.timers:
                handle.cancel()
            ch.timers.clear()
            for fut in ch.space:
                if not fut.done():
                    fut.set_exception(BusClosedError(f"bus {self.bus_id} stopped"))
            if ch.task is not None:
                tasks.append(ch.task)
            for target in ch.targets:
                tasks += [w for ws in target.workers.values() for w in ws]
            left = ch.queue.size + sum(len(t.inbox) for t in ch.targets)
            left += len(ch.batch) - ch.cur if ch.batch else 0
            if left and not ch.config.persistent:
                ch.stats.dropped += left
                logger.warning("channel %r: %d undelivered messages dropped at stop", ch.name, left)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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

    def _tracked_done(self, tracker: Tracker, msg: Message) -> None:
        if tracker.seq is not None and self._store is not None:
            self._store.ack([tracker.seq])
        if tracker.on_settled is not None:
            try:
                tracker.on_settled(msg, tracker.outcome)
            except Exception:
                logger.exception("on_settled callback failed for message %s", msg.id)

    def _dead_letter(
        self, ch: Channel, sub: Subscription, msg: Message, err: BaseException
    ) -> None:
        text = f"{type(err).__name__}: {err}"
        now = time.time()
        self._dead.append(DeadLetter(msg, text, sub.name, now))
        if ch.config.persistent and self._store is not None:
            self._store.dead_letter((ch.name, msg.id, now, sub.name, text, self.codec.encode(msg)))
        dlq = ch.config.dead_letter
        if dlq is None:
            ch.settle(msg, "dead_lettered")
            return
        headers = {
            **(msg._headers or {}),
            "dead_letter_error": text,
            "dead_letter_channel": ch.name,
            "dead_letter_subscriber": sub.name,
            "dead_letter_attempts": msg.attempt,
            "original_id": msg.id,
        }
        task = asyncio.get_running_loop().create_task(self._forward_dead(ch, msg, dlq, headers))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _forward_dead(
        self, ch: Channel, msg: Message, dlq: str, headers: dict[str, Any]
    ) -> None:
        """Publish to the dead-letter channel, and settle the original only once it is there."""
        try:
            await self._publish_one(
                dlq, msg.payload, msg.priority, headers, None, None, internal=True
            )
        except Exception:
            logger.exception("could not forward message %s to dead-letter channel %r", msg.id, dlq)
        ch.settle(msg, "dead_lettered")

    def dead_letters(self, channel: str | None = None) -> list[DeadLetter]:
        """Dead letters of this run and, for persistent channels, earlier runs (oldest first).

        Examples
        --------
        >>> MessageBus().dead_letters()
        []
        """
        return [d for d in self._dead if channel is None or d.message.channel == channel]

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
            self.publish(self._reply_channel(str(to)), payload, headers={"correlation_id": cid})
        elif self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._resolve_reply, str(cid), payload)
        else:
            self._resolve_reply(str(cid), payload)

    def _resolve_reply(self, cid: str, payload: Any) -> None:
        fut = self._replies.pop(cid, None)
        if fut is not None and not fut.done():
            fut.set_result(payload)

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
        """
        return prometheus_text(self.metrics())


def _where(ch: Channel | str) -> str:
    return f"the {ch} table" if isinstance(ch, str) else f"channel {ch.name!r}"


def _open_store(path: str, config: BusConfig) -> SQLiteStore:
    from neuralcore.messaging._store import SQLiteStore  # sqlite3 only when persistence is used

    return SQLiteStore(
        path,
        durability=config.durability,
        retention_seconds=config.retention_seconds,
        retention_count=config.retention_count,
        on_corrupt=config.on_corrupt,
    )
