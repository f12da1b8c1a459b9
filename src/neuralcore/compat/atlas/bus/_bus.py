"""A bus with the public interface of ATLAS's NeuralCognitiveBus.

Each channel has a :class:`~neuralcore.compat.atlas.bus._lane.Lane` (priority buckets with
ATLAS's queue rules) and one dispatcher task that hands messages to the ATLAS-style
subscribers (:mod:`neuralcore.compat.atlas.bus._dispatch`). Channels bridged to Redis or
Kafka (``redis_in``/``redis_out``/``kafka_in``/``kafka_out``) also get a channel on a
:class:`neuralcore.messaging.MessageBus`, whose bridges carry them between processes.
ATLAS's AgentBus reads two private attributes of the bus it wraps, ``_queues``
(membership) and ``_channel_cfg`` (configs it edits in place); both are provided.

Why not every channel on the MessageBus: ATLAS's envelope must be built anyway (its ids,
meta and types), and its queue rules (``drop_old`` takes the least urgent, *newest*
message; ``max_queue_size`` and ``drop_policy`` change on live channels) are not the
MessageBus's. Stacking the two queues cost as much again per message as the MessageBus
itself; one lane per channel keeps the per-message path to building the envelope, one
deque append, one pop and one await. The envelope's id is a per-bus prefix plus a counter,
in UUID form (no ``uuid4`` per message); one subscriber is awaited in place, several are
fanned out as ATLAS does.

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
from neuralcore.compat.atlas.bus._lane import Lane
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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bus_subs: dict[str, Subscription] = {}
        self._dispatcher = Dispatcher(self._stat, self._dead_letter, self.logger)
        self._bus: MessageBus | None = None  # built on first use, again after stop()
        self._store = AtlasLog(self._persistence_path) if self._persistence_path else None
        self._lanes: dict[str, Lane] = {}  # channel -> its queue and dispatcher
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
        """The :class:`neuralcore.messaging.MessageBus` carrying the bridged channels."""
        return self._live()

    def _live(self) -> MessageBus:
        """The current MessageBus, with every bridged channel attached."""
        if self._bus is None:
            from neuralcore.messaging import BusConfig, MessageBus

            config = BusConfig(drain_timeout=0.0)  # persistence is ATLAS's file (_log)
            self._bus, self._bus_subs = MessageBus(config), {}
            for cfg in self._channel_cfg.values():
                if _bridged(cfg):
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
        self._lanes[channel_name] = lane = Lane()
        self._stat(channel_name)
        self._set_limiter(cfg)
        if self._bus is not None and _bridged(cfg):
            self._attach(cfg)
        if self.running:
            self._start_lane(channel_name, lane)
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
        self._bus_subs[cfg.name] = bus.subscribe(cfg.name, self._on_remote, name="ncb-bridge")

    def _nc_config(self, cfg: ChannelConfig) -> NcChannelConfig:
        from neuralcore.messaging import ChannelConfig as NcChannelConfig

        return NcChannelConfig(
            name=cfg.name,
            max_size=_UNBOUNDED,  # ATLAS's bound and drop policy are the lane's
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
        lane = self._lanes.pop(channel_name, None)
        if lane is not None and lane.task is not None:
            lane.task.cancel()
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
        if bridges:
            bus = self._live()
            for bridge in bridges:
                await bus.add_bridge(bridge)
            await bus.start()
        self.running = True
        for name, lane in self._lanes.items():
            self._start_lane(name, lane)
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
        for lane in self._lanes.values():
            if lane.task is not None:
                tasks.append(lane.task)
                lane.task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_bus()

    async def _close_bus(self) -> None:
        """Stop the MessageBus and drop what is queued; the next use builds a fresh one."""
        bus, self._bus, self._bus_subs = self._bus, None, {}
        for lane in self._lanes.values():  # queued messages are dropped, as in ATLAS
            lane.clear()
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
        if (  # the common case, inlined: nothing but queueing to do
            cfg is not None
            and not meta
            and self._plain
            and not self._security.enabled
            and not (cfg.persistent or cfg.redis_out or cfg.kafka_out)
            and channel_name not in self._limiters
            and (lane := self._lanes[channel_name]).size < cfg.max_queue_size
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
            lane.push(pr, msg)
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
            if len(self._publishers) >= 1024:  # bounded: unchecked keys may be anything
                self._publishers.clear()
            digest = hashlib.sha256(str(key).encode()).hexdigest()[:12]
            label = self._publishers[key] = f"api_key:sha256:{digest}"
        return label

    async def _enqueue(
        self, msg: Message, cfg: ChannelConfig, *, remote: bool = False
    ) -> str | None:
        """Queue an envelope under the channel's rules; log it, bridge it, observe it."""
        name = msg.channel
        limiter = self._limiters.get(name)
        if limiter is not None:
            await limiter.acquire(1.0)
        lane = self._lanes.get(name)
        if lane is None:  # removed meanwhile
            return None
        stats, t0 = self._stat(name), _perf()
        if 0 < cfg.max_queue_size <= lane.size:
            if cfg.drop_policy != "drop_old":
                stats.publish_latency_ms_sum += (_perf() - t0) * 1000.0
                stats.dropped += 1
                self.logger.warning("queue of %s full; dropped message %s", name, msg.id)
                return None
            dropped = lane.drop_worst()  # ATLAS: the least urgent, newest queued one goes
            self.logger.warning("queue of %s full; drop_old dropped %s", name, dropped.id)
        lane.push(msg.priority, msg)
        stats.publish_latency_ms_sum += (_perf() - t0) * 1000.0
        stats.published += 1
        if cfg.persistent and self._store is not None:
            self._persist(msg, cfg)
        if not remote and (cfg.redis_out or cfg.kafka_out) and self._bus is not None:
            self._bus.publish(name, msg.to_dict(), priority=msg.priority)
        if self._plugins:
            self._spawn(self._sinks(msg, "post_publish"))
        return msg.id

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

    def _start_lane(self, name: str, lane: Lane) -> None:
        if lane.task is None or lane.task.done():
            lane.task = asyncio.get_running_loop().create_task(self._run(name, lane))

    async def _run(self, name: str, lane: Lane) -> None:
        """The channel's dispatcher: most urgent first, one message at a time (concurrent
        subscribers are spawned, as in ATLAS)."""
        loop = asyncio.get_running_loop()
        # CPython's loop keeps ready callbacks in ``_ready``: after a delivery the
        # dispatcher yields while some are waiting; with another loop, always.
        ready = getattr(loop, "_ready", None)
        if not isinstance(ready, collections.deque):
            ready = None
        stats, dispatcher = self._stats[name], self._dispatcher
        while True:
            if not lane.size:
                lane.waiter = waiter = loop.create_future()
                await waiter
                continue
            msg = lane.pop()
            subs, cfg = self._subs.get(name), self._channel_cfg.get(name)
            if cfg is None:
                return
            if not subs:
                continue  # as in ATLAS: nobody listening, the message is gone
            sub = subs[0]
            try:
                if (
                    self._plain
                    and len(subs) == 1
                    and sub.concurrency <= 1
                    and sub.filter_fn is None
                    and sub.retry_attempts <= 0
                    and not cfg.idempotency_key_field
                    and not dispatcher.limiters
                ):
                    t0 = _perf()
                    try:
                        await sub.callback_fn(msg)
                    except Exception as err:  # counted, logged, dead-lettered, as in ATLAS
                        await dispatcher.failed(cfg, msg, sub, err)
                    else:
                        stats.dispatched += 1
                    stats.dispatch_latency_ms_sum += (_perf() - t0) * 1000.0
                else:
                    await self._deliver(cfg, msg, subs)
            except Exception:  # as ATLAS's channel loop: count, log, go on
                stats.errors += 1
                self.logger.exception("dispatch on %s failed", name)
            if ready is None:
                await _yield()
            else:  # let what the delivery woke run first, as ATLAS's per-delivery gather
                for _ in range(3):  # does: its task and gather take up to three passes
                    if not ready:
                        break
                    await _yield()

    async def _deliver(self, cfg: ChannelConfig, msg: Message, subs: list[Any]) -> None:
        """Everything but the common case: plugins, several or concurrent subscribers."""
        name = cfg.name
        if self._plugins:
            transformed = await self._hooked(msg, "pre_dispatch")
            if transformed is None:
                return
            msg = transformed
        if len(subs) == 1 and subs[0].concurrency <= 1:
            t0 = _perf()
            await self._dispatcher.deliver_one(cfg, msg, subs[0])
            self._stats[name].dispatch_latency_ms_sum += (_perf() - t0) * 1000.0
        elif any(s.concurrency > 1 for s in subs):
            self._spawn(self._dispatcher.dispatch(cfg, msg, list(subs)))
        else:
            t0 = _perf()
            await self._dispatcher.dispatch(cfg, msg, list(subs))
            self._stats[name].dispatch_latency_ms_sum += (_perf() - t0) * 1000.0
        if self._plugins:
            self._spawn(self._sinks(msg, "post_dispatch"))

    async def _on_remote(self, raw: NcMessage) -> None:
        """The MessageBus subscription of a bridged channel: queue what other processes
        sent (this bus's own outbound copies come back here too, and are skipped)."""
        bus = self._bus
        if bus is None or raw.origin == bus.bus_id:
            return
        msg = self._from_wire(raw)
        cfg = self._channel_cfg.get(msg.channel)
        if cfg is not None:
            await self._enqueue(msg, cfg, remote=True)

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
            name: {**vars(stats), "queue_size": len(self._lanes.get(name, ()))}
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
        """:meth:`snapshot_metrics` in Prometheus text format (``ncb_<key>{channel=...}``)."""
        snapshot = self.snapshot_metrics()
        lines: list[str] = []
        for key in (*ChannelStats.__dataclass_fields__, "queue_size"):
            kind = "counter" if key in ("published", "dropped", "dispatched", "errors") else "gauge"
            lines.append(f"# TYPE ncb_{key} {kind}")
            lines += [f"ncb_{key}{{channel={_label(c)}}} {m[key]}" for c, m in snapshot.items()]
        return "\n".join(lines) + "\n"


def _bridged(cfg: ChannelConfig) -> bool:
    return bool(cfg.redis_in or cfg.redis_out or cfg.kafka_in or cfg.kafka_out)


def _label(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
