"""Bus and channel configuration: frozen dataclasses validated at construction."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from neuralcore.core import Config, ConfigError
from neuralcore.messaging._routing import is_pattern
from neuralcore.messaging._types import Durability, Overflow

__all__ = ("BusConfig", "ChannelConfig")

_TUPLE_FIELDS = ("allow_publish", "allow_subscribe")
_C = TypeVar("_C", bound="BusConfig")
_HIDDEN = "<hidden>"
_SECRET_FIELDS = ("api_keys",)
_INT64 = 2**63
_COUNT_MAX = 10**9  # queue sizes, bursts, batch sizes...
_DAY = 86_400.0
_YEAR = 365 * _DAY


@dataclass(frozen=True, kw_only=True)
class ChannelConfig(Config):
    """Settings of one channel.

    Attributes
    ----------
    name : str
        Channel name (``"rag.query"``); ``*`` is reserved for subscription patterns. Any
        valid Unicode text (a lone surrogate such as ``"\\ud800"`` is refused).
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
    neuralcore.errors.ConfigError: config field 'overflow' = 'spill': expected one of 'block', 'drop_new', 'drop_oldest', 'error'
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
        _text("name", self.name)
        if self.dead_letter is not None:
            _text("dead_letter", self.dead_letter)
        _count("max_size", self.max_size)
        _count("max_attempts", self.max_attempts, 10**6)
        _count("rate_burst", self.rate_burst)
        if not -_INT64 <= self.default_priority < _INT64:
            raise ConfigError(
                "default_priority", self.default_priority, "must fit a signed 64-bit integer"
            )
        _seconds("rate_limit", self.rate_limit, 1e9, positive=True)
        for field in ("idempotency_window", "ttl", "handler_timeout"):
            _seconds(field, getattr(self, field), 10 * _YEAR, positive=True)
        _seconds("retry_backoff", self.retry_backoff, _DAY)
        _seconds("retry_backoff_max", self.retry_backoff_max, _DAY)
        if self.retry_backoff_max < self.retry_backoff:
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
    commit_timeout : float
        Seconds any wait on the SQLite writer may take before ``PersistenceError``.
    api_keys : dict of str to tuple of str
        API key -> roles, for channels with ``allow_publish``/``allow_subscribe``. Once
        set, every way in is checked: a channel without ``allow_*`` then admits any known
        key (deny by default). Never shown in reprs or errors.
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
    commit_timeout: float = 30.0
    api_keys: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, repr=False)
    prefetch: int = 64
    batch_size: int = 512
    metrics_sample_every: int = 8
    retention_seconds: float = 0.0
    retention_count: int | None = None
    on_corrupt: Literal["raise", "recover"] = "raise"
    default_channel: ChannelConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_keys", _api_keys(self.api_keys))
        super().__post_init__()

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any], *, path: str = "") -> _C:
        """Build from a mapping (see :meth:`Config.from_dict`); errors about a secret
        field name the field, never its value."""
        try:
            return super().from_dict(data, path=path)
        except ConfigError as err:
            if type(err.value) is str and err.value == _HIDDEN:
                raise
            top = err.field.removeprefix(f"{path}." if path else "").split(".")[0].split("[")[0]
            if top in _SECRET_FIELDS:
                field = f"{path}.{top}" if path else top
                raise ConfigError(field, _HIDDEN, _strip_value(err.reason)) from None
            raise

    def validate(self) -> None:
        """Check value ranges; raise :class:`ConfigError` naming the field."""
        _count("max_message_size", self.max_message_size, 2**30)
        for field in ("prefetch", "batch_size"):
            _count(field, getattr(self, field), 10**6)
        _count("metrics_sample_every", self.metrics_sample_every)
        for field in ("drain_timeout", "block_timeout"):
            _seconds(field, getattr(self, field), 7 * _DAY)
        _seconds("commit_timeout", self.commit_timeout, 7 * _DAY, positive=True)
        _seconds("retention_seconds", self.retention_seconds, 100 * _YEAR)
        if self.retention_count is not None:
            _count("retention_count", self.retention_count, 2**62, zero=True)
        names = [c.name for c in self.channels]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"channels[{i}].name", name, "duplicate channel name")


def _text(field: str, value: str) -> None:
    """A channel name must be valid Unicode text (it is stored, encoded and sent as
    UTF-8): a lone surrogate (``"\\ud800"``) is refused here, not by the file later."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(field, value, "holds a lone surrogate (not valid UTF-8)") from None


def _count(field: str, value: int | None, most: int = _COUNT_MAX, *, zero: bool = False) -> None:
    """An integer count: ``None`` (unset) or in ``[1, most]`` (``[0, most]`` with zero)."""
    if value is not None and not (0 if zero else 1) <= value <= most:
        raise ConfigError(field, value, f"must be between {0 if zero else 1} and {most}")


def _seconds(field: str, value: float | None, most: float, *, positive: bool = False) -> None:
    """A finite duration or rate: ``None`` (unset) or in ``[0, most]`` (``(0, most]``)."""
    if value is None:
        return
    if not math.isfinite(value):
        raise ConfigError(field, value, "must be a finite number (not NaN or infinity)")
    if value < 0 or (positive and value == 0) or value > most:
        low = "> 0" if positive else ">= 0"
        raise ConfigError(field, value, f"must be {low} and <= {most:g}")


def _api_keys(keys: Any) -> dict[str, tuple[str, ...]]:
    """Check ``api_keys`` without ever echoing a key (they are secrets)."""
    if not isinstance(keys, Mapping):
        raise ConfigError("api_keys", _HIDDEN, "expected a mapping of API key to roles")
    out: dict[str, tuple[str, ...]] = {}
    for i, (key, roles) in enumerate(keys.items()):
        if type(key) is not str or not key:
            raise ConfigError(
                "api_keys", _HIDDEN, f"key #{i + 1} must be a non-empty str (value hidden)"
            )
        roles = tuple(roles) if isinstance(roles, list | tuple) else roles
        if type(roles) is not tuple or not all(type(r) is str for r in roles):
            raise ConfigError(
                "api_keys", _HIDDEN, f"the roles of key #{i + 1} must be a list of str"
            )
        out[key] = roles
    return out


def _strip_value(reason: str) -> str:
    """A type-check reason without anything that could hold the value."""
    return reason if "expected" in reason or "unknown key" in reason else "invalid value"
