"""Bus and channel configuration: frozen dataclasses validated at construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from neuralcore.core import Config, ConfigError
from neuralcore.messaging._routing import is_pattern
from neuralcore.messaging._types import Durability, Overflow

__all__ = ("BusConfig", "ChannelConfig")

_TUPLE_FIELDS = ("allow_publish", "allow_subscribe")


@dataclass(frozen=True, kw_only=True)
class ChannelConfig(Config):
    """Settings of one channel.

    Attributes
    ----------
    name : str
        Channel name (``"rag.query"``); ``*`` is reserved for subscription patterns.
    max_size : int
        Most messages queued before ``overflow`` applies.
    overflow : {"block", "drop_new", "drop_oldest", "error"}
        ``block`` makes publishers wait for room (``publish_async`` awaits, ``publish`` from
        another thread blocks up to ``BusConfig.block_timeout``, then ``QueueFullError``);
        ``drop_new`` discards the new message (``publish`` returns ``None``); ``drop_oldest``
        evicts the oldest message of the least urgent priority queued; ``error`` raises
        ``QueueFullError``.
    default_priority : int
        Priority of a publish that names none.
    persistent : bool
        Write messages to the bus's SQLite file before ``publish`` returns; unacknowledged
        messages are replayed on restart.
    dead_letter : str or None
        Channel that receives messages whose handlers failed ``max_attempts`` times.
    rate_limit : float or None
        Publishes per second allowed (token bucket); over it ``RateLimitedError``.
    rate_burst : int or None
        Bucket size; defaults to ``max(1, rate_limit)``.
    idempotency_window : float or None
        Seconds during which a repeated ``idempotency_key`` is dropped as a duplicate.
    max_attempts : int
        Deliveries tried per subscriber before dead-lettering (1 = no retry).
    retry_backoff : float
        Delay before the first retry; doubles each attempt up to ``retry_backoff_max``.
    retry_backoff_max : float
        Ceiling of the retry delay.
    ttl : float or None
        Messages older than this many seconds at dispatch are dropped as expired.
    handler_timeout : float or None
        Seconds an async handler may run before it counts as failed.
    allow_publish, allow_subscribe : tuple of str or None
        Roles allowed to publish / subscribe (``"*"``: any known API key); ``None`` = open.

    Examples
    --------
    >>> ChannelConfig(name="jobs", max_size=100, overflow="error").overflow
    'error'
    >>> ChannelConfig(name="jobs", overflow="spill")
    Traceback (most recent call last):
    ...
    neuralcore.core._errors.ConfigError: config field 'overflow' = 'spill': expected one of 'block', 'drop_new', 'drop_oldest', 'error'
    """  # noqa: E501

    name: str
    max_size: int = 10_000
    overflow: Overflow = "block"
    default_priority: int = 50
    persistent: bool = False
    dead_letter: str | None = None
    rate_limit: float | None = None
    rate_burst: int | None = None
    idempotency_window: float | None = None
    max_attempts: int = 3
    retry_backoff: float = 0.05
    retry_backoff_max: float = 5.0
    ttl: float | None = None
    handler_timeout: float | None = None
    allow_publish: tuple[str, ...] | None = None
    allow_subscribe: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:  # YAML gives lists
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        super().__post_init__()

    def validate(self) -> None:
        """Check value ranges; raise :class:`ConfigError` naming the field."""
        if not self.name or is_pattern(self.name):
            raise ConfigError(
                "name", self.name, "must be non-empty and contain none of '*', '?', '['"
            )
        _positive("max_size", self.max_size)
        _positive("max_attempts", self.max_attempts)
        for field in ("rate_limit", "idempotency_window", "ttl", "handler_timeout"):
            value = getattr(self, field)
            if value is not None:
                _positive(field, value)
        if self.rate_burst is not None:
            _positive("rate_burst", self.rate_burst)
        if self.retry_backoff < 0 or self.retry_backoff_max < self.retry_backoff:
            raise ConfigError(
                "retry_backoff", self.retry_backoff, "must be >= 0 and <= retry_backoff_max"
            )
        if self.dead_letter == self.name:
            raise ConfigError("dead_letter", self.dead_letter, "cannot be the channel itself")


@dataclass(frozen=True, kw_only=True)
class BusConfig(Config):
    """Settings of a :class:`MessageBus`.

    Attributes
    ----------
    channels : tuple of ChannelConfig
        Channels created with the bus.
    persistence_path : str or None
        SQLite file for persistent channels (created if missing).
    durability : {"process", "power"}
        ``process`` (default): WAL with ``synchronous=NORMAL``; a publish that returned
        survives a crash or kill of the process, but an OS crash or power loss may lose the
        last commits (the file stays consistent). ``power``: ``synchronous=FULL``, the WAL is
        fsynced at every group commit, so a returned publish also survives power loss.
    codec : {"auto", "msgpack", "json"}
        Wire format at boundaries; ``auto`` = MessagePack via msgspec when installed, else
        stdlib JSON.
    max_message_size : int
        Largest encoded message in bytes, checked when encoding and decoding.
    drain_timeout : float
        Seconds ``stop()`` waits for queued and in-flight messages.
    block_timeout : float
        Seconds a ``block`` channel makes a publisher wait before ``QueueFullError``.
    api_keys : dict of str to tuple of str
        API key -> roles, for channels with ``allow_publish``/``allow_subscribe``.
    prefetch : int
        Messages handed ahead to an async subscriber (larger: faster, coarser priority).
    batch_size : int
        Messages a channel dispatches per wake-up.
    metrics_sample_every : int
        Latency histograms time one message in this many (1 = every message).
    retention_seconds : float
        Acknowledged messages and dead letters are kept this long in the file (0 = delete
        on acknowledgement).
    retention_count : int or None
        At most this many acknowledged messages kept in the file.
    on_corrupt : {"raise", "recover"}
        A corrupt file is always moved aside; then raise ``PersistenceError`` or start empty.
    default_channel : ChannelConfig or None
        Template (its ``name`` is replaced) for channels created on demand: a message a
        bridge brings in for a channel this bus lacks (``inject(..., create=True)``,
        :meth:`MessageBus.create_default_channel`). ``None``: plain defaults.

    Examples
    --------
    >>> cfg = BusConfig.from_dict({"channels": [{"name": "a"}], "durability": "power"})
    >>> cfg.channels[0].name, cfg.durability
    ('a', 'power')
    """

    channels: tuple[ChannelConfig, ...] = ()
    persistence_path: str | None = None
    durability: Durability = "process"
    codec: Literal["auto", "msgpack", "json"] = "auto"
    max_message_size: int = 16 * 1024 * 1024
    drain_timeout: float = 5.0
    block_timeout: float = 5.0
    api_keys: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    prefetch: int = 64
    batch_size: int = 512
    metrics_sample_every: int = 8
    retention_seconds: float = 0.0
    retention_count: int | None = None
    on_corrupt: Literal["raise", "recover"] = "raise"
    default_channel: ChannelConfig | None = None

    def __post_init__(self) -> None:
        keys = {k: tuple(v) if isinstance(v, list) else v for k, v in self.api_keys.items()}
        object.__setattr__(self, "api_keys", keys)
        super().__post_init__()

    def validate(self) -> None:
        """Check value ranges; raise :class:`ConfigError` naming the field."""
        for field in ("max_message_size", "prefetch", "batch_size", "metrics_sample_every"):
            _positive(field, getattr(self, field))
        for field in ("drain_timeout", "block_timeout", "retention_seconds"):
            if getattr(self, field) < 0:
                raise ConfigError(field, getattr(self, field), "must be >= 0")
        names = [c.name for c in self.channels]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"channels[{i}].name", name, "duplicate channel name")


def _positive(field: str, value: Any) -> None:
    if value <= 0:
        raise ConfigError(field, value, "must be > 0")
