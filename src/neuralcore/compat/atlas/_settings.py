"""Load the ``messaging`` section of an ATLAS ``config.yaml`` into typed neuralcore config.

Every key ATLAS writes in that section is accepted (backend, persistence, Prometheus, the
Redis stream settings, the ``kafka`` block, the bus's flat ``kafka_*`` keys, ``policy``)
plus the bus's own ``channels`` and ``security`` blocks as its ``apply_config`` reads them.
An unknown key or a bad value raises :class:`~neuralcore.ConfigError` naming its full path
(``messaging.channels.jobs.max_queue_size``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from neuralcore.core._config import Config, load_yaml_mapping
from neuralcore.core._errors import ConfigError

if TYPE_CHECKING:
    from neuralcore.messaging import BusConfig
    from neuralcore.messaging import ChannelConfig as NcChannelConfig
    from neuralcore.messaging.bridges import KafkaBridgeConfig, RedisBridgeConfig

__all__ = (
    "AtlasChannelSettings",
    "AtlasKafkaSettings",
    "AtlasMessagingConfig",
    "AtlasSecuritySettings",
    "load_atlas_messaging",
)

_OVERFLOW = {"drop_new": "drop_new", "drop_old": "drop_oldest"}


@dataclass(frozen=True, kw_only=True)
class AtlasChannelSettings(Config):
    """One entry of ``messaging.channels`` (the bus's channel settings, name = the key)."""

    max_queue_size: int = 1000
    drop_policy: Literal["drop_new", "drop_old"] = "drop_new"
    default_priority: int = 100
    rate_limit_per_sec: float | None = None
    rate_limit_burst: float | None = None
    persistent: bool = False
    serializer: Literal["msgpack", "json"] = "msgpack"
    compress: bool = False
    compression_level: int = 3
    redis_in: str | None = None
    redis_out: str | None = None
    kafka_in: str | None = None
    kafka_out: str | None = None
    dead_letter_channel: str | None = None
    fanout_max_concurrency: int = 500
    idempotency_key_field: str | None = None
    idempotency_ttl_seconds: float = 60.0

    def validate(self) -> None:
        """Ranges as ATLAS's schema states them."""
        for name in ("max_queue_size", "fanout_max_concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "must be >= 1")
        for name in ("rate_limit_per_sec", "rate_limit_burst"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(name, value, "must be > 0")
        if not 1 <= self.compression_level <= 9:
            raise ConfigError("compression_level", self.compression_level, "must be 1..9")


@dataclass(frozen=True, kw_only=True)
class AtlasSecuritySettings(Config):
    """``messaging.security``: API keys, JWT settings and per-channel roles."""

    enabled: bool = False
    api_keys: tuple[str, ...] = ()
    jwt_secret: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    channel_roles: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AtlasKafkaSettings(Config):
    """``messaging.kafka``: the Kafka producer/bridge block."""

    enabled: bool = False
    bootstrap_servers: str | None = None
    topic_prefix: str = "atlas.bus"
    client_id: str | None = None
    acks: str = "all"
    enable_idempotence: bool = True
    max_in_flight: int = 5
    bridge: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AtlasMessagingConfig(Config):
    """The ``messaging`` section of an ATLAS config file.

    Examples
    --------
    >>> cfg = AtlasMessagingConfig.from_dict(
    ...     {"backend": "ncb", "channels": {"jobs": {"max_queue_size": 50}}}
    ... )
    >>> cfg.to_bus_config().channels[0].max_size
    50
    >>> AtlasMessagingConfig.from_dict({"channels": {"jobs": {"max_queue": 5}}})
    Traceback (most recent call last):
    ...
    neuralcore.errors.ConfigError: config field 'channels.jobs.max_queue' = '<int>': unknown key for AtlasChannelSettings
    """  # noqa: E501

    backend: Literal["in_memory", "ncb", "redis", "kafka"] = "ncb"
    persistence_path: str | None = None
    enable_prometheus: bool = False
    prometheus_port: int = 8000
    redis_url: str | None = None
    stream_prefix: str | None = None
    replay_start: str | None = None
    initial_offset: str | None = None
    initial_stream_id: str | None = None
    batch_size: int | None = None
    blocking_timeout_ms: int | None = None
    min_idle_ms: int | None = None
    auto_claim_idle_ms: int | None = None
    auto_claim_count: int | None = None
    delete_on_ack: bool | None = None
    delete_acknowledged: bool | None = None
    trim_maxlen: int | None = None
    trim_max_length: int | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    kafka: AtlasKafkaSettings = field(default_factory=AtlasKafkaSettings)
    kafka_bootstrap_servers: str | None = None
    kafka_topic_prefix: str | None = None
    kafka_client_id: str | None = None
    kafka_acks: str | None = None
    kafka_max_in_flight: int | None = None
    channels: dict[str, AtlasChannelSettings] = field(default_factory=dict)
    security: AtlasSecuritySettings = field(default_factory=AtlasSecuritySettings)

    def validate(self) -> None:
        """Cross-field rules: dead-letter targets differ from their channel."""
        for name, chan in self.channels.items():
            if chan.dead_letter_channel == name:
                field_name = f"channels.{name}.dead_letter_channel"
                raise ConfigError(field_name, name, "cannot be the channel itself")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError("redis_url", "<redacted>", "expected redis://, rediss:// or unix://")

    @property
    def kafka_servers(self) -> str | None:
        """Bootstrap servers from the flat key or the enabled ``kafka`` block."""
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        return self.kafka.bootstrap_servers if self.kafka.enabled else None

    def to_bus_config(self) -> BusConfig:
        """The equivalent :class:`neuralcore.messaging.BusConfig` (channels, persistence)."""
        from neuralcore.messaging import BusConfig

        channels = tuple(to_channel_config(n, c) for n, c in self.channels.items())
        return BusConfig(channels=channels, persistence_path=self.persistence_path)

    def _bridged(self, out_key: str, in_key: str) -> tuple[str, ...]:
        names = [n for n, c in self.channels.items() if getattr(c, out_key) or getattr(c, in_key)]
        return tuple(names) or ("*",)

    def to_redis_bridge_config(self) -> RedisBridgeConfig | None:
        """Redis bridge settings from ``redis_url`` and the stream keys (``None`` without a
        URL). Channels naming ``redis_in``/``redis_out`` are carried, else every channel."""
        if not self.redis_url:
            return None
        from neuralcore.messaging.bridges import RedisBridgeConfig

        extra: dict[str, Any] = {}
        if self.stream_prefix:
            extra["prefix"] = self.stream_prefix
        idle = self.min_idle_ms if self.min_idle_ms is not None else self.auto_claim_idle_ms
        if idle:
            extra["claim_idle_ms"] = idle
        if self.trim_maxlen or self.trim_max_length:
            extra["maxlen"] = self.trim_maxlen or self.trim_max_length
        if self.blocking_timeout_ms:
            extra["block_ms"] = self.blocking_timeout_ms
        if self.batch_size:
            extra["batch_size"] = self.batch_size
        start = self.replay_start or self.initial_offset or "$"
        extra["start"] = "latest" if start == "$" else "earliest"
        return RedisBridgeConfig.from_dict(
            {"url": self.redis_url, "channels": self._bridged("redis_out", "redis_in"), **extra}
        )

    def to_kafka_bridge_config(self) -> KafkaBridgeConfig | None:
        """Kafka bridge settings from the flat ``kafka_*`` keys or the enabled ``kafka``
        block (``None`` when neither names servers)."""
        servers = self.kafka_servers
        if not servers:
            return None
        from neuralcore.messaging.bridges import KafkaBridgeConfig

        prefix = self.kafka_topic_prefix or self.kafka.topic_prefix
        client = self.kafka_client_id or self.kafka.client_id
        return KafkaBridgeConfig.from_dict(
            {
                "bootstrap": servers,
                "channels": self._bridged("kafka_out", "kafka_in"),
                "topic_prefix": f"{prefix}.",
                **({"group": f"{client}-group"} if client else {}),
            }
        )


def to_channel_config(name: str, chan: AtlasChannelSettings) -> NcChannelConfig:
    """Map one ATLAS channel onto :class:`neuralcore.messaging.ChannelConfig`."""
    from neuralcore.messaging import ChannelConfig as NcChannelConfig

    burst = chan.rate_limit_burst
    return NcChannelConfig(
        name=name,
        max_size=chan.max_queue_size,
        overflow=_OVERFLOW[chan.drop_policy],  # type: ignore[arg-type]
        default_priority=chan.default_priority,
        persistent=chan.persistent,
        dead_letter=chan.dead_letter_channel,
        rate_limit=chan.rate_limit_per_sec,
        rate_burst=None if burst is None else max(1, int(burst)),
        idempotency_window=chan.idempotency_ttl_seconds if chan.idempotency_key_field else None,
    )


def load_atlas_messaging(
    source: str | os.PathLike[str] | dict[str, Any], *, section: str = "messaging"
) -> AtlasMessagingConfig:
    """Read the ``messaging`` section from an ATLAS YAML file, YAML text or a dict.

    Raises
    ------
    ConfigError
        the section is missing, a key is unknown or a value is bad; the error names the
        full key path (``messaging.channels.jobs.drop_policy``).

    Examples
    --------
    >>> load_atlas_messaging({"messaging": {"backend": "ncb"}}).backend
    'ncb'
    """
    data = source if isinstance(source, dict) else load_yaml_mapping(source)
    if section not in data:
        raise ConfigError(section, None, "section missing from the ATLAS config")
    block = data[section] or {}
    return AtlasMessagingConfig.from_dict(block, path=section)
