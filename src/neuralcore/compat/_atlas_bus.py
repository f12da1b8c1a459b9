"""A bus with the public interface of ATLAS's NeuralCognitiveBus, built on MessageBus.

Each compat channel is a neuralcore channel (priority queue, overflow policy, SQLite
persistence, Redis/Kafka bridges, metrics) with one subscription that fans messages out to
the ATLAS-style subscribers (:mod:`neuralcore.compat._atlas_dispatch`). ATLAS's AgentBus
reads two private attributes of the bus it wraps, ``_queues`` (membership) and
``_channel_cfg`` (configs it edits in place); both are provided.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuralcore.compat._atlas_bridges import kafka_bridges, redis_bridges
from neuralcore.compat._atlas_bus_config import BusConfigMixin
from neuralcore.compat._atlas_bus_types import (
    ChannelConfig,
    Message,
    Plugin,
    SecurityConfig,
    SubscriberConfig,
    TokenBucket,
)
from neuralcore.compat._atlas_dispatch import ChannelStats, Dispatcher, dead_letter_payload
from neuralcore.core._errors import ChannelNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from neuralcore.messaging import ChannelConfig as NcChannelConfig
    from neuralcore.messaging import Message as NcMessage
    from neuralcore.messaging import MessageBus, Subscription

__all__ = ("NeuralcoreCognitiveBus", "UnknownChannelError")

_log = logging.getLogger(__name__)
_ID = "_ncb_id"  # header carrying the compat message id across the MessageBus
_OVERFLOW = {"drop_old": "drop_oldest"}  # anything else behaves as drop_new, as in ATLAS


class UnknownChannelError(ChannelNotFoundError, ValueError):
    """Subscribing to a channel that was never created (a ``ValueError``, as in ATLAS)."""


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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bus_subs: dict[str, Subscription] = {}
        self._dispatcher = Dispatcher(self._stat, self._dead_letter, self.logger)
        self._bus: MessageBus | None = None  # built on first use, again after stop()

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

            config = BusConfig(persistence_path=self._persistence_path, drain_timeout=0.0)
            self._bus, self._bus_subs = MessageBus(config), {}
            for cfg in self._channel_cfg.values():
                self._attach(cfg)
        return self._bus

    # -- plugins and config ---------------------------------------------------------------

    def add_plugin(self, plugin: Plugin) -> None:
        """Add publish/dispatch hooks (run in the order added)."""
        self._plugins.append(plugin)

    def create_channel(self, channel_name: str, cfg: ChannelConfig | None = None) -> None:
        """Create a channel (a no-op, logged, when it exists); also its dead-letter channel."""
        if channel_name in self._channel_cfg:
            self.logger.warning("channel %s already exists", channel_name)
            return
        cfg = cfg or ChannelConfig(name=channel_name, max_queue_size=self.default_max_queue_size)
        cfg.name = channel_name
        self._channel_cfg[channel_name] = cfg
        self._subs[channel_name] = []
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
            max_size=max(1, int(cfg.max_queue_size)),
            overflow=_OVERFLOW.get(cfg.drop_policy, "drop_new"),  # type: ignore[arg-type]
            default_priority=int(cfg.default_priority),
            persistent=bool(cfg.persistent and self._persistence_path),
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
        if replay_on_register:
            self.logger.warning(
                "replay_on_register is not supported; unacknowledged messages of persistent "
                "channels are replayed when the bus restarts instead"
            )

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
        if self._hot_path is not None:
            self._spawn(self._hot_reload_loop())

    async def stop(self) -> None:
        """Stop: cancel in-flight work and discard queued messages (persistent channels keep
        theirs for the next start). The bus can be started again."""
        if not self.running:
            self.logger.warning("bus not running")
            await self._close_bus()  # still release the persistence file
            return
        self.running = False
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_bus()

    async def _close_bus(self) -> None:
        """Stop the MessageBus (queued in-memory messages are dropped, persistent ones stay
        in the file); the next use builds a fresh one."""
        bus, self._bus, self._bus_subs = self._bus, None, {}
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
            security is enabled and ``auth`` may not publish there.
        """
        self._check_name(channel_name)
        cfg = self._channel_cfg.get(channel_name)
        if cfg is None:
            self.logger.error("publish to unknown channel %s", channel_name)
            return None
        self._security.verify(auth, channel_name)
        msg = _envelope(channel_name, payload, cfg, priority, meta, auth)
        if self._plugins:
            transformed = await self._hooked(msg, "pre_publish")
            if transformed is None:
                return None
            msg = transformed
        return await self._enqueue(msg)

    async def _enqueue(self, msg: Message) -> str | None:
        limiter = self._limiters.get(msg.channel)
        if limiter is not None:
            await limiter.acquire(1.0)
        stats, t0 = self._stat(msg.channel), time.perf_counter()
        headers = {**msg.meta, _ID: msg.id}
        queued = await self._live().publish_async(
            msg.channel, msg.payload, priority=msg.priority, headers=headers
        )
        stats.publish_latency_ms_sum += (time.perf_counter() - t0) * 1000.0
        if queued is None:
            stats.dropped += 1
            self.logger.warning("queue of %s full; dropped message %s", msg.channel, msg.id)
            return None
        stats.published += 1
        if self._plugins:
            self._spawn(self._sinks(msg, "post_publish"))
        return msg.id

    # -- dispatch -------------------------------------------------------------------------

    async def _on_message(self, raw: NcMessage) -> None:
        """The neuralcore subscription of every channel: rebuild the envelope, fan out."""
        cfg = self._channel_cfg.get(raw.channel)
        subs = list(self._subs.get(raw.channel, ()))
        if cfg is None:
            return
        msg = _from_nc(raw)
        if self._plugins:
            transformed = await self._hooked(msg, "pre_dispatch")
            if transformed is None:
                return
            msg = transformed
        if not subs:
            return
        if any(s.concurrency > 1 for s in subs):
            self._spawn(self._dispatcher.dispatch(cfg, msg, subs))
        else:
            t0 = time.perf_counter()
            await self._dispatcher.dispatch(cfg, msg, subs)
            self._stat(cfg.name).dispatch_latency_ms_sum += (time.perf_counter() - t0) * 1000.0
        if self._plugins:
            self._spawn(self._sinks(msg, "post_dispatch"))

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
        await self._enqueue(_envelope(dlq, payload, self._channel_cfg[dlq], 0, meta, None))

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
        depth = {name: m.queue_depth for name, m in self._live().metrics().items()}
        return {
            name: {
                **vars(stats),
                "queue_size": depth.get(name, 0) if name in self._channel_cfg else 0,
            }
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
        from neuralcore.compat._atlas_bus_bench import run_benchmark

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


def _envelope(
    channel: str,
    payload: Any,
    cfg: ChannelConfig,
    priority: int | None,
    meta: dict[str, Any] | None,
    auth: dict[str, Any] | None,
) -> Message:
    m = dict(meta or {})
    m.setdefault("trace_id", str(uuid.uuid4()))
    m.setdefault(
        "published_by", (auth or {}).get("sub") or (auth or {}).get("api_key") or "unknown"
    )
    pr = int(priority if priority is not None else cfg.default_priority)
    return Message(str(uuid.uuid4()), channel, time.time(), pr, payload, m)


def _from_nc(raw: NcMessage) -> Message:
    meta = dict(raw.headers)
    msg_id = str(meta.pop(_ID, None) or raw.id)
    return Message(msg_id, raw.channel, raw.timestamp, raw.priority, raw.payload, meta)
