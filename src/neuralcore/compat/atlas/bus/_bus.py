"""A bus with the public interface of ATLAS's NeuralCognitiveBus, built on MessageBus.

Each compat channel is a neuralcore channel (priority queue, batched dispatcher, Redis and
Kafka bridges, metrics) with one subscription that fans messages out to the ATLAS-style
subscribers (:mod:`neuralcore.compat.atlas.bus._dispatch`). ATLAS's AgentBus reads two
private attributes of the bus it wraps, ``_queues`` (membership) and ``_channel_cfg``
(configs it edits in place); both are provided.

The per-message path does no more than ATLAS's semantics need: the envelope is built once
(its id is a per-bus prefix plus a counter, in UUID form; no ``uuid4`` per message) and
travels as the MessageBus payload, so dispatch neither copies headers nor rebuilds it; one
subscriber is awaited directly, several are fanned out as ATLAS does.

ATLAS's queue rules are kept here, where the settings live (``apply_config`` changes them
on live channels): ``max_queue_size`` counts queued messages; ``drop_new`` rejects when
full; ``drop_old`` drops the least urgent, newest queued message and accepts the new one.
A dropped message stays in the MessageBus queue as a tombstone and is skipped on dispatch.
``persistent`` channels append to ATLAS's own persistence file (:mod:`._log`); as in
ATLAS, nothing queued is redelivered after a restart, and ``replay_on_register`` replays
from that file.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import logging
import sys
import time
import types
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuralcore.compat.atlas.bus._bridges import kafka_bridges, redis_bridges
from neuralcore.compat.atlas.bus._config import BusConfigMixin
from neuralcore.compat.atlas.bus._dispatch import ChannelStats, Dispatcher, dead_letter_payload
from neuralcore.compat.atlas.bus._log import AtlasLog, decode, encode
from neuralcore.compat.atlas.bus._types import (
    ChannelConfig,
    Message,
    Plugin,
    SecurityConfig,
    SubscriberConfig,
    TokenBucket,
)
from neuralcore.core._errors import ChannelNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from neuralcore.messaging import ChannelConfig as NcChannelConfig
    from neuralcore.messaging import Message as NcMessage
    from neuralcore.messaging import MessageBus, Subscription

__all__ = ("NeuralcoreCognitiveBus", "UnknownChannelError")

_log = logging.getLogger(__name__)
_perf, _now = time.perf_counter, time.time


@types.coroutine
def _yield() -> Generator[None, None, None]:
    """One pass of the event loop (``asyncio.sleep(0)`` without its call overhead)."""
    yield


_fast_new = object.__new__
_set_dict = object.__setattr__  # builds a frozen envelope without a __setattr__ per field
_UNBOUNDED = 1_000_000_000  # the MessageBus queue bound (its most); ATLAS's bound is applied here


class UnknownChannelError(ChannelNotFoundError, ValueError):
    """A channel that was never created, where ATLAS raises ``ValueError``."""


def _envelope_class() -> type[Message]:
    """Our :class:`Message`, also a subclass of ATLAS's when ATLAS's bus module is loaded
    (so ``isinstance(msg, core.messaging.NCB.Message)`` holds in ATLAS's code)."""
    ncb = sys.modules.get("core.messaging.NCB")
    theirs = getattr(ncb, "Message", None)
    if not isinstance(theirs, type) or issubclass(Message, theirs):
        return Message
    cached = _SUBCLASSES.get(theirs)
    if cached is None:
        cached = _SUBCLASSES[theirs] = type(
            "Message", (Message, theirs), {"__module__": Message.__module__, "__slots__": ()}
        )
    return cached


_SUBCLASSES: dict[type, type[Message]] = {}


class NeuralcoreCognitiveBus(BusConfigMixin):
    """Drop-in for ATLAS's NeuralCognitiveBus (same constructor, methods and results).

    Priorities: lower numbers are more urgent; equal priorities keep publish order.

    Parameters
    ----------
    default_max_queue_size
        Queue bound of channels created without a config.
    persistence_path
        SQLite file for ``persistent`` channels (``None``: nothing is persisted).
    enable_prometheus, prometheus_port
        Accepted; metrics are exposed by :meth:`metrics_text` instead of an HTTP server.
    logger
        Logger for bus events (default: this module's).
    loop, subscriber_gc_interval_sec, subscriber_ttl_sec
        Accepted for compatibility; not needed here.
    channel_validator
        ``validator(name) -> bool``; a rejected name raises ``ValueError``.
    security
        :class:`SecurityConfig` checked on ``publish`` and ``register_subscriber``.
    hot_reload_config_path, hot_reload_interval_sec
        A YAML/JSON file re-applied with :meth:`apply_config` whenever it changes.

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     bus = NeuralcoreCognitiveBus()
    ...     bus.create_channel("jobs")
    ...     got = asyncio.Event()
    ...     async def handler(msg):
    ...         got.set()
    ...     await bus.register_subscriber("jobs", "worker", handler)
    ...     await bus.start()
    ...     msg_id = await bus.publish("jobs", {"n": 1}, priority=2)
    ...     await asyncio.wait_for(got.wait(), 2)
    ...     await bus.stop()
    ...     return msg_id is not None, bus.snapshot_metrics()["jobs"]["dispatched"]
    >>> asyncio.run(main())
    (True, 1)
    """

    def __init__(
        self,
        *,
        default_max_queue_size: int = 1000,
        persistence_path: str | Path | None = None,
        enable_prometheus: bool = False,
        prometheus_port: int = 8000,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        channel_validator: Callable[[str], bool] | None = None,
        security: SecurityConfig | None = None,
        hot_reload_config_path: str | Path | None = None,
        hot_reload_interval_sec: float = 2.0,
        subscriber_gc_interval_sec: float = 60.0,
        subscriber_ttl_sec: float = 15 * 60.0,
    ) -> None:
        self.logger = logger or _log
        self.default_max_queue_size = int(default_max_queue_size)
        self.running = False
        self._persistence_path = str(persistence_path) if persistence_path else None
        self._validator = channel_validator
        self._security = security or SecurityConfig(enabled=False)
        self._hot_path = Path(hot_reload_config_path) if hot_reload_config_path else None
        self._hot_interval = float(hot_reload_interval_sec)
        self._hot_mtime: float | None = None
        self._channel_cfg: dict[str, ChannelConfig] = {}
        self._subs: dict[str, list[SubscriberConfig]] = {}
        self._stats: dict[str, ChannelStats] = {}
        self._limiters: dict[str, TokenBucket] = {}
        self._plugins: list[Plugin] = []
        self._plain = channel_validator is None  # no validator and no plugins yet
        self._ready: collections.deque[Any] | None = None  # the loop's ready queue
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bus_subs: dict[str, Subscription] = {}
        self._dispatcher = Dispatcher(self._stat, self._dead_letter, self.logger)
        self._bus: MessageBus | None = None  # built on first use, again after stop()
        self._store = AtlasLog(self._persistence_path) if self._persistence_path else None
        self._queued: dict[str, dict[str, int]] = {}  # channel -> queued id -> priority
        self._tombs: set[str] = set()  # ids dropped by drop_old, still in the MessageBus
        self._publishers: dict[str, str] = {}  # api key -> its published_by label
        self._last_seq: dict[tuple[str, str], int] = {}
        t = uuid.uuid4().hex  # ids: this prefix and a counter, laid out as a version-4 UUID
        self._id_head = f"{t[:8]}-{t[8:12]}-4{t[13:16]}-{'89ab'[int(t[16], 16) % 4]}{t[17:20]}-"
        self._ids = itertools.count(1)
        self._msg_cls = _envelope_class()

    # -- ATLAS's AgentBus reads these -----------------------------------------------------

    @property
    def _queues(self) -> Mapping[str, ChannelConfig]:
        """Channel names (``name in bus._queues``), as ATLAS's AgentBus checks them."""
        return self._channel_cfg

    @property
    def message_bus(self) -> MessageBus:
        """The underlying :class:`neuralcore.messaging.MessageBus`."""
        return self._live()

    def _live(self) -> MessageBus:
        """The current MessageBus, with every channel and fan-out subscription attached."""
        if self._bus is None:
            from neuralcore.messaging import BusConfig, MessageBus

            config = BusConfig(drain_timeout=0.0)  # persistence is ATLAS's file (_log)
            self._bus, self._bus_subs = MessageBus(config), {}
            for cfg in self._channel_cfg.values():
                self._attach(cfg)
        return self._bus

    # -- plugins and config ---------------------------------------------------------------

    def add_plugin(self, plugin: Plugin) -> None:
        """Add publish/dispatch hooks (run in the order added)."""
        self._plugins.append(plugin)
        self._plain = False

    def create_channel(self, channel_name: str, cfg: ChannelConfig | None = None) -> None:
        """Create a channel (a no-op, logged, when it exists); also its dead-letter channel."""
        if channel_name in self._channel_cfg:
            self.logger.warning("channel %s already exists", channel_name)
            return
        cfg = cfg or ChannelConfig(name=channel_name, max_queue_size=self.default_max_queue_size)
        cfg.name = channel_name
        self._channel_cfg[channel_name] = cfg
        self._subs[channel_name] = []
        self._queued[channel_name] = {}
        self._stat(channel_name)
        self._set_limiter(cfg)
        if self._bus is not None:
            self._attach(cfg)
        dlq = cfg.dead_letter_channel
        if dlq == channel_name:
            self.logger.warning("channel %s names itself as dead-letter channel; ignored", dlq)
        elif dlq and dlq not in self._channel_cfg:
            self.create_channel(
                dlq, ChannelConfig(name=dlq, max_queue_size=self.default_max_queue_size)
            )

    def _attach(self, cfg: ChannelConfig) -> None:
        """Create (or reuse) the neuralcore channel and subscribe the fan-out handler."""
        bus = self._live()
        if cfg.name not in bus.channels():
            bus.create_channel(self._nc_config(cfg))
        self._bus_subs[cfg.name] = bus.subscribe(cfg.name, self._on_message, name="ncb-fanout")

    def _nc_config(self, cfg: ChannelConfig) -> NcChannelConfig:
        from neuralcore.messaging import ChannelConfig as NcChannelConfig

        return NcChannelConfig(
            name=cfg.name,
            max_size=_UNBOUNDED,  # ATLAS's bound and drop policy are applied in _enqueue
            default_priority=int(cfg.default_priority),
            max_attempts=1,  # retries and dead letters are per subscriber, in the dispatcher
        )

    def _set_limiter(self, cfg: ChannelConfig) -> None:
        if cfg.rate_limit_per_sec and cfg.rate_limit_burst:
            self._limiters[cfg.name] = TokenBucket(cfg.rate_limit_per_sec, cfg.rate_limit_burst)
        else:
            self._limiters.pop(cfg.name, None)

    def remove_channel(self, channel_name: str) -> None:
        """Forget a channel: its subscribers stop receiving and publishes return ``None``."""
        self._channel_cfg.pop(channel_name, None)
        self._subs.pop(channel_name, None)
        self._queued.pop(channel_name, None)
        self._limiters.pop(channel_name, None)
        self._dispatcher.fanout.pop(channel_name, None)
        sub = self._bus_subs.pop(channel_name, None)
        if sub is not None:
            sub.unsubscribe()

    # -- subscribers ----------------------------------------------------------------------

    async def register_subscriber(
        self,
        channel_name: str,
        module_name: str,
        callback_fn: Callable[[Message], Awaitable[None]],
        filter_fn: Callable[[Message], bool] | None = None,
        *,
        rate_limit_per_sec: float | None = None,
        rate_limit_burst: float | None = None,
        replay_on_register: bool = False,
        replay_after_seq: int = 0,
        auth: dict[str, Any] | None = None,
        retry_attempts: int = 0,
        retry_delay: float = 0.1,
        concurrency: int = 1,
    ) -> None:
        """Subscribe ``callback_fn`` (async) on ``channel_name`` under ``module_name``.

        Raises
        ------
        UnknownChannelError
            the channel does not exist (a ``ValueError``).
        AuthorizationError
            security is enabled and ``auth`` may not use the channel.
        """
        self._check_name(channel_name)
        if channel_name not in self._channel_cfg:
            raise UnknownChannelError(f"Channel '{channel_name}' does not exist.")
        self._security.verify(auth, channel_name)
        sub = SubscriberConfig(
            module_name, callback_fn, filter_fn, rate_limit_per_sec, rate_limit_burst,
            replay_on_register, replay_after_seq, retry_attempts, retry_delay, concurrency,
        )  # fmt: skip
        self._subs[channel_name].append(sub)
        key = (channel_name, module_name)
        if rate_limit_per_sec and rate_limit_burst:
            self._dispatcher.limiters[key] = TokenBucket(rate_limit_per_sec, rate_limit_burst)
        if concurrency > 1:
            self._dispatcher.slots[key] = asyncio.Semaphore(concurrency)
        if replay_on_register and self._store and self._channel_cfg[channel_name].persistent:
            await self._replay(channel_name, sub, int(replay_after_seq))

    async def _replay(self, channel: str, sub: SubscriberConfig, after_seq: int) -> None:
        """ATLAS's ``replay_on_register``: the channel's logged messages after ``after_seq``."""
        assert self._store is not None  # checked by the caller
        cfg = self._channel_cfg[channel]
        self._last_seq[(channel, sub.module_name)] = after_seq
        try:
            for seq, blob in await self._store.replay(channel, after_seq):
                d = decode(blob, cfg.serializer, cfg.compress)
                meta = dict(d.get("meta") or {})
                meta["replay"], meta["persist_seq"] = True, seq
                meta.setdefault("trace_id", str(d.get("id") or ""))
                msg = self._msg_cls(
                    str(d.get("id") or ""), str(d.get("channel") or ""),
                    float(d.get("ts") or 0.0), int(d.get("priority") or 0), d.get("payload"), meta,
                )  # fmt: skip
                await self._dispatcher.dispatch(cfg, msg, [sub])
                self._last_seq[(channel, sub.module_name)] = seq
        except Exception:  # as in ATLAS: a failed replay is counted and logged
            self._stat(channel).errors += 1
            self.logger.exception("replay of %s to %s failed", channel, sub.module_name)

    async def unregister_subscriber(self, channel_name: str, module_name: str) -> None:
        """Remove every subscriber named ``module_name`` from the channel."""
        subs = self._subs.get(channel_name)
        if subs is None:
            return
        self._subs[channel_name] = [s for s in subs if s.module_name != module_name]
        self._dispatcher.limiters.pop((channel_name, module_name), None)
        self._dispatcher.slots.pop((channel_name, module_name), None)

    def _check_name(self, channel_name: str) -> None:
        if self._validator is not None and not self._validator(channel_name):
            raise InvalidInputError(f"Invalid channel name: {channel_name}")

    # -- lifecycle ------------------------------------------------------------------------

    async def start(
        self,
        *,
        redis_url: str | None = None,
        kafka_bootstrap_servers: str | None = None,
        kafka_topic_prefix: str = "ncb",
        kafka_client_id: str = "ncb-bridge",
        kafka_acks: str = "all",
        kafka_max_in_flight: int = 5,
        **kwargs: Any,
    ) -> None:
        """Start dispatching, and the Redis/Kafka bridges of channels that name them.

        ``kafka_acks``/``kafka_max_in_flight`` are accepted (the bridge always uses an
        idempotent producer); unknown keyword options are logged and ignored, as in ATLAS.
        """
        if self.running:
            self.logger.warning("bus already running")
            return
        if kwargs:
            self.logger.warning("ignoring unknown start() options: %s", sorted(kwargs))
        cfgs = list(self._channel_cfg.values())
        bridges = redis_bridges(cfgs, redis_url) if redis_url else []
        if kafka_bootstrap_servers:
            bridges += kafka_bridges(
                cfgs,
                kafka_bootstrap_servers,
                topic_prefix=kafka_topic_prefix,
                client_id=kafka_client_id,
            )
        bus = self._live()
        for bridge in bridges:
            await bus.add_bridge(bridge)
        await bus.start()
        self.running = True
        # CPython's loop keeps its ready callbacks in ``_ready``: dispatch yields to them
        # only when there are some; with another loop it yields after every delivery.
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        self._ready = ready if isinstance(ready, collections.deque) else None
        if self._hot_path is not None:
            self._spawn(self._hot_reload_loop())

    async def stop(self) -> None:
        """Stop: cancel in-flight work and discard queued messages, as ATLAS does (persistent
        channels' messages stay in the persistence file for ``replay_on_register``). The bus
        can be started again; stopping a bus that is not running only logs."""
        if not self.running:
            self.logger.warning("bus not running")
            if self._store is not None:
                await self._store.flush()
            return
        self.running = False
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_bus()

    async def _close_bus(self) -> None:
        """Stop the MessageBus and drop what is queued; the next use builds a fresh one."""
        bus, self._bus, self._bus_subs = self._bus, None, {}
        for queued in self._queued.values():  # queued messages are dropped, as in ATLAS
            queued.clear()
        self._tombs.clear()
        if self._store is not None:
            await self._store.flush()
        if bus is not None:
            await bus.stop(timeout=0.0)

    # -- publish --------------------------------------------------------------------------

    async def publish(
        self,
        channel_name: str,
        payload: Any,
        *,
        priority: int | None = None,
        meta: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> str | None:
        """Queue ``payload`` on ``channel_name``; the message id, or ``None`` when the channel
        does not exist, a plugin rejected it, or the full queue dropped it.

        Raises
        ------
        AuthorizationError
            security is enabled and ``auth`` may not publish there (a ``PermissionError``).
        """
        cfg = self._channel_cfg.get(channel_name)
        queued = self._queued.get(channel_name)
        bus = self._bus
        if (  # the common case, inlined: nothing but queueing to do
            cfg is not None
            and queued is not None
            and bus is not None
            and not meta
            and self._plain
            and not self._security.enabled
            and len(queued) < cfg.max_queue_size
            and not (cfg.persistent or cfg.redis_out or cfg.kafka_out)
            and channel_name not in self._limiters
        ):
            t0 = _perf()
            msg_id = f"{self._id_head}{next(self._ids):012x}"
            pr = cfg.default_priority if priority is None else int(priority)
            by = self._publisher(auth) if auth else "unknown"
            msg = _fast_new(self._msg_cls)
            _set_dict(msg, "__dict__", {
                "id": msg_id, "channel": channel_name, "ts": _now(), "priority": pr,
                "payload": payload, "meta": {"trace_id": msg_id, "published_by": by},
            })  # fmt: skip
            bus.publish(channel_name, msg, priority=pr)
            queued[msg_id] = pr
            stats = self._stats[channel_name]
            stats.published += 1
            stats.publish_latency_ms_sum += (_perf() - t0) * 1000.0
            return msg_id
        if self._validator is not None:
            self._check_name(channel_name)
        if cfg is None:
            self.logger.error("publish to unknown channel %s", channel_name)
            return None
        if self._security.enabled:
            self._security.verify(auth, channel_name)
        msg = self._new(channel_name, payload, cfg, priority, meta, auth)
        if self._plugins:
            transformed = await self._hooked(msg, "pre_publish")
            if transformed is None:
                return None
            msg = transformed
        return await self._enqueue(msg, cfg)

    def _new(
        self,
        channel: str,
        payload: Any,
        cfg: ChannelConfig,
        priority: int | None,
        meta: dict[str, Any] | None,
        auth: dict[str, Any] | None,
    ) -> Message:
        """A new envelope; ``trace_id`` defaults to the message id (both unique)."""
        msg_id = f"{self._id_head}{next(self._ids):012x}"
        if meta:
            m = dict(meta)
            m.setdefault("trace_id", msg_id)
            if "published_by" not in m:
                m["published_by"] = self._publisher(auth)
        else:
            m = {"trace_id": msg_id, "published_by": self._publisher(auth) if auth else "unknown"}
        pr = cfg.default_priority if priority is None else int(priority)
        return self._msg_cls(msg_id, channel, time.time(), pr, payload, m)

    def _publisher(self, auth: dict[str, Any] | None) -> str:
        """``published_by``: the JWT subject, a fingerprint of the API key (never the key
        itself), or ``"unknown"``."""
        if not auth:
            return "unknown"
        if auth.get("sub"):
            return str(auth["sub"])
        key = auth.get("api_key")
        if not key:
            return "unknown"
        label = self._publishers.get(key)
        if label is None:
            digest = hashlib.sha256(str(key).encode()).hexdigest()[:12]
            label = self._publishers[key] = f"api_key:sha256:{digest}"
        return label

    async def _enqueue(self, msg: Message, cfg: ChannelConfig) -> str | None:
        name = msg.channel
        limiter = self._limiters.get(name)
        if limiter is not None:
            await limiter.acquire(1.0)
        stats, t0 = self._stat(name), time.perf_counter()
        queued = self._queued[name]
        if len(queued) >= cfg.max_queue_size > 0 and not self._make_room(cfg, queued, msg):
            stats.publish_latency_ms_sum += (time.perf_counter() - t0) * 1000.0
            stats.dropped += 1
            self.logger.warning("queue of %s full; dropped message %s", name, msg.id)
            return None
        bus = self._bus or self._live()
        wire: Any = msg.to_dict() if cfg.redis_out or cfg.kafka_out else msg
        await bus.publish_async(name, wire, priority=msg.priority)
        queued[msg.id] = msg.priority
        stats.publish_latency_ms_sum += (time.perf_counter() - t0) * 1000.0
        stats.published += 1
        if cfg.persistent and self._store is not None:
            self._persist(msg, cfg)
        if self._plugins:
            self._spawn(self._sinks(msg, "post_publish"))
        return msg.id

    def _make_room(self, cfg: ChannelConfig, queued: dict[str, int], msg: Message) -> bool:
        """ATLAS's ``drop_old``: drop the least urgent, newest queued message (it stays in
        the MessageBus as a tombstone); any other policy drops the new one."""
        if cfg.drop_policy != "drop_old" or not queued:
            return False
        worst = max(reversed(queued.items()), key=lambda item: item[1])[0]
        del queued[worst]
        self._tombs.add(worst)
        self.logger.warning("queue of %s full; drop_old dropped message %s", msg.channel, worst)
        return True

    def _persist(self, msg: Message, cfg: ChannelConfig) -> None:
        assert self._store is not None  # checked by the caller
        try:
            blob = encode(msg.to_dict(), cfg.serializer, cfg.compress, cfg.compression_level)
        except ValueError:  # as in ATLAS: counted and logged, the publish stands
            self._stat(msg.channel).errors += 1
            self.logger.exception("cannot persist message %s", msg.id)
            return
        self._store.append((msg.channel, msg.id, msg.ts, msg.priority, blob))

    # -- dispatch -------------------------------------------------------------------------

    async def _on_message(self, raw: NcMessage) -> None:
        """The neuralcore subscription of every channel: the envelope is the payload."""
        msg = raw.payload
        if type(msg) is not self._msg_cls:
            msg = self._from_wire(raw)
        name = msg.channel
        queued = self._queued.get(name)
        if queued is None:
            return
        if queued.pop(msg.id, None) is None and msg.id in self._tombs:
            self._tombs.discard(msg.id)  # dropped by drop_old after it was queued
            return
        if self._plugins:
            transformed = await self._hooked(msg, "pre_dispatch")
            if transformed is None:
                return
            msg = transformed
        subs = self._subs.get(name)
        if not subs:
            return
        cfg = self._channel_cfg[name]
        if len(subs) == 1 and subs[0].concurrency <= 1:  # one delivery, awaited in place
            sub, stats, t0 = subs[0], self._stats[name], _perf()
            if (
                sub.filter_fn is None
                and sub.retry_attempts <= 0
                and not cfg.idempotency_key_field
                and not self._dispatcher.limiters
            ):
                try:
                    await sub.callback_fn(msg)
                except Exception as err:  # counted, logged and dead-lettered, as in ATLAS
                    await self._dispatcher.failed(cfg, msg, sub, err)
                else:
                    stats.dispatched += 1
            else:
                await self._dispatcher.deliver_one(cfg, msg, sub)
            stats.dispatch_latency_ms_sum += (_perf() - t0) * 1000.0
            ready = self._ready
            if ready is None:
                await _yield()
            else:  # let what the delivery woke run first, as ATLAS's per-delivery gather
                for _ in range(3):  # does: its task and gather take up to three passes
                    if not ready:
                        break
                    await _yield()
        elif any(s.concurrency > 1 for s in subs):
            self._spawn(self._dispatcher.dispatch(cfg, msg, list(subs)))
        else:
            t0 = _perf()
            await self._dispatcher.dispatch(cfg, msg, list(subs))
            self._stats[name].dispatch_latency_ms_sum += (_perf() - t0) * 1000.0
        if self._plugins:
            self._spawn(self._sinks(msg, "post_dispatch"))

    def _from_wire(self, raw: NcMessage) -> Message:
        """An envelope from a bridge (its dict form) or from a plain MessageBus publisher."""
        d = raw.payload
        if isinstance(d, dict) and {"id", "channel", "priority", "payload"} <= d.keys():
            meta = d.get("meta")
            return self._msg_cls(
                str(d["id"]), raw.channel, float(d.get("ts") or raw.timestamp),
                int(d["priority"]), d["payload"], dict(meta) if isinstance(meta, dict) else {},
            )  # fmt: skip
        meta = dict(raw.headers)
        meta.setdefault("trace_id", raw.id)
        return self._msg_cls(raw.id, raw.channel, raw.timestamp, raw.priority, raw.payload, meta)

    async def _dead_letter(
        self, origin: str, msg: Message, subscriber: str, err: BaseException
    ) -> None:
        """Send a failed delivery to the channel's dead-letter channel, if it has one."""
        dlq = self._channel_cfg[origin].dead_letter_channel if origin in self._channel_cfg else None
        if not dlq or dlq == origin or msg.meta.get("dlq"):
            return
        if dlq not in self._channel_cfg:
            self.create_channel(dlq)
        meta = {"trace_id": msg.trace_id, "dlq": True, "origin_msg_id": msg.id}
        payload = dead_letter_payload(origin, subscriber, msg, err)
        dlq_cfg = self._channel_cfg[dlq]
        await self._enqueue(self._new(dlq, payload, dlq_cfg, 0, meta, None), dlq_cfg)

    # -- plugins --------------------------------------------------------------------------

    async def _hooked(self, msg: Message, phase: str) -> Message | None:
        """Run validators then ``phase`` transforms; ``None`` (counted, logged) on failure."""
        try:
            for plugin in self._plugins:
                if plugin.validate is not None:
                    await plugin.validate(msg)
            for plugin in self._plugins:
                hook = getattr(plugin, phase)
                if hook is not None:
                    msg = await hook(msg)
        except Exception:  # a plugin rejecting a message drops it, as in ATLAS
            self._stat(msg.channel).errors += 1
            self.logger.exception("%s plugin failed on message %s", phase, msg.id)
            return None
        return msg

    async def _sinks(self, msg: Message, phase: str) -> None:
        for plugin in self._plugins:
            sink = getattr(plugin, phase)
            if sink is None:
                continue
            try:
                await sink(msg)
            except Exception:  # observers must not break delivery; counted and logged
                self._stat(msg.channel).errors += 1
                self.logger.exception("%s sink of plugin %s failed", phase, plugin.name)

    # -- background work ------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- metrics --------------------------------------------------------------------------

    def _stat(self, channel: str) -> ChannelStats:
        stats = self._stats.get(channel)
        if stats is None:
            stats = self._stats[channel] = ChannelStats()
        return stats

    def snapshot_metrics(self) -> dict[str, dict[str, Any]]:
        """Per channel: published, dropped, dispatched, errors, publish/dispatch latency sums
        (ms) and queue_size."""
        return {
            name: {**vars(stats), "queue_size": len(self._queued.get(name, ()))}
            for name, stats in self._stats.items()
        }

    async def benchmark(
        self,
        channel: str,
        *,
        messages: int = 100_000,
        concurrency: int = 50,
        payload_factory: Callable[[int], Any] | None = None,
        priority: int = 100,
    ) -> dict[str, Any]:
        """Throughput of ``channel`` with a no-op subscriber (the bus must be running).

        Returns ``channel``, ``messages``, ``concurrency``, ``seconds``, ``msgs_per_sec``
        and the channel's ``metrics``, as ATLAS's bus does.
        """
        from neuralcore.compat.atlas.bus._bench import run_benchmark

        return await run_benchmark(
            self,
            channel,
            messages=messages,
            concurrency=concurrency,
            payload_factory=payload_factory,
            priority=priority,
        )

    def metrics_text(self) -> str:
        """The underlying bus's metrics in Prometheus text format."""
        return self._live().metrics_text()
