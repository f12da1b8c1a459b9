"""Bridge configuration: frozen, keyword-only dataclasses validated at construction.

Secrets (passwords, SASL credentials, key passwords) are excluded from ``repr`` and are
never logged; :meth:`BridgeConfig.redacted` gives a dict safe to print.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import socket
from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from neuralcore.core import Config, ConfigError
from neuralcore.messaging._routing import Selector

__all__ = (
    "BridgeConfig",
    "Direction",
    "KafkaBridgeConfig",
    "RedisBridgeConfig",
    "channel_names",
)

Direction = Literal["out", "in", "both"]

_SECRET = "***"
_DAY = 86_400.0
_WEEK = 7 * _DAY


def _secret() -> Any:
    return dataclasses.field(default=None, repr=False, metadata={"secret": True})


@dataclasses.dataclass(frozen=True, kw_only=True)
class BridgeConfig(Config):
    """Settings shared by every bridge.

    Parameters
    ----------
    channels : tuple of str
        Channel names or shell-style wildcards (``"orders.*"``) carried by the bridge.
    direction : {"out", "in", "both"}
        ``out`` forwards local publishes to the server, ``in`` delivers server messages
        locally, ``both`` does both (own messages are never echoed back).
    group : str or None
        ``None`` (the default) is fan-out: every bus with a local subscriber on a carried
        channel receives every message on it once, whichever process published it (each
        bus reads through a private group, ``fanout.<consumer>``). A name makes a work
        queue: each message is handled by exactly one bus of that group (a dead member's
        pending messages are taken over).
    groups : dict of str to str
        Per-channel work queues: channel name or wildcard -> group name (the first
        matching entry wins; channels matching none use ``group``). E.g. with
        ``groups={"x.jobs": "workers"}`` and no ``group``, ``x.jobs`` is a work queue
        shared by every bus of the group ``workers`` while the other carried channels
        fan out. (Kafka: the bridge runs one consumer per group, its private fan-out
        group included.)
    consumer : str
        This bus's name on the server; ``""`` means ``hostname-pid-<bus id>``. Keep it stable
        across restarts to resume what this bus had not acknowledged (and, in fan-out
        mode, to receive what was published while it was away); with the default name
        a fan-out bus receives what is published after its bridge connected.
    batch_size : int
        Most messages sent to the server in one batch (pipeline / producer batch).
    linger_ms : float
        How long a partial batch may wait for more messages before it is sent.
    buffer_size : int
        Most outbound messages held in memory while the server is away.
    spill_path : str or None
        File where persistent-channel messages overflowing the buffer are written (and
        re-sent from, also after a process restart); ``None`` rejects them instead.
    reconnect_initial_s, reconnect_max_s : float
        Exponential reconnect backoff bounds.
    reconnect_jitter : float
        Fraction (0-1) of each delay that is randomised.
    max_reconnect_attempts : int
        Attempts before the state becomes ``failed``; 0 retries forever.
    dedup_window : int
        How many recent message ids are remembered to drop redeliveries.
    health_interval_s : float
        How often an idle connection is checked (PING), so a lost server is noticed
        even when nothing is sent.
    startup_timeout_s : float
        How long :meth:`start` keeps trying to reach the server before it raises
        :class:`BridgeConnectionError` (a refused connection is retried with the backoff
        until then). ``0`` starts without waiting: the bridge connects in the
        background, buffering outbound messages (state ``reconnecting``).
    drain_timeout_s : float
        At stop, how long the bridge keeps sending what it accepted (also across a
        reconnect) before it gives up and reports the rest as unsent.
    outbox : str
        Name under which the bus's persistent-channel messages stay recorded until the
        server confirmed them (a durable tap); ``""`` means ``kind>channels``
        (``"redis>orders.*"``). Keep it stable across restarts (records under a name no
        bridge uses any more are never forwarded, and keep their messages in the file),
        and distinct between two sending bridges of one bus.

    Notes
    -----
    Every number must be finite: NaN and infinity are refused with a
    :class:`ConfigError` naming the field (none of these settings means "for good").
    Durations are at most a day (``linger_ms`` at most a minute), ``startup_timeout_s``
    and ``drain_timeout_s`` at most a week.

    Examples
    --------
    >>> BridgeConfig(channels=("orders.*",), direction="out").matches("orders.new")
    True
    """

    channels: tuple[str, ...] = ("*",)
    direction: Direction = "both"
    group: str | None = None
    groups: dict[str, str] = dataclasses.field(default_factory=dict)
    consumer: str = ""
    batch_size: int = 512
    linger_ms: float = 0.0
    buffer_size: int = 100_000
    spill_path: str | None = None
    reconnect_initial_s: float = 0.02
    reconnect_max_s: float = 0.4
    reconnect_jitter: float = 0.5
    max_reconnect_attempts: int = 0
    dedup_window: int = 100_000
    health_interval_s: float = 0.25
    startup_timeout_s: float = 2.0
    drain_timeout_s: float = 10.0
    outbox: str = ""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"{type(self).__name__}({fields})"

    def validate(self) -> None:
        """Check ranges; raise :class:`ConfigError` naming the field."""
        if not self.channels or any(not c for c in self.channels):
            raise ConfigError("channels", self.channels, "need at least one non-empty name")
        _positive(self, "batch_size", "buffer_size", "dedup_window")
        _non_negative(self, "max_reconnect_attempts")
        _seconds(self, "health_interval_s", _DAY, positive=True)
        _seconds(self, "linger_ms", 60_000.0)
        _seconds(self, "reconnect_initial_s", _DAY)
        _seconds(self, "reconnect_max_s", _DAY)
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ConfigError("reconnect_max_s", self.reconnect_max_s, "below reconnect_initial_s")
        _seconds(self, "reconnect_jitter", 1.0)
        _seconds(self, "startup_timeout_s", _WEEK)
        _seconds(self, "drain_timeout_s", _WEEK)
        if self.group is not None and not self.group:
            raise ConfigError("group", self.group, "must not be empty (None means fan-out)")
        for selector, name in self.groups.items():
            if not selector or not isinstance(name, str) or not name:
                raise ConfigError(
                    "groups", {selector: name}, "need a channel selector and a group name"
                )

    def matches(self, channel: str) -> bool:
        """True when ``channel`` is selected by :attr:`channels`."""
        return _selector(self.channels).matches(channel)

    @property
    def sends(self) -> bool:
        """True when local publishes are forwarded to the server."""
        return self.direction in ("out", "both")

    @property
    def receives(self) -> bool:
        """True when server messages are delivered locally."""
        return self.direction in ("in", "both")

    def consumer_name(self, origin: str = "") -> str:
        """The consumer name: ``consumer``, or ``hostname-pid-<bus id>`` (unique per bus,
        also for several buses in one process)."""
        if self.consumer:
            return self.consumer
        generated = f"{socket.gethostname()}-{os.getpid()}"
        return f"{generated}-{origin}" if origin else generated

    @property
    def fan_out(self) -> bool:
        """True when no channel is a work queue (no ``group``, no ``groups``)."""
        return self.group is None and not self.groups

    def group_for(self, channel: str) -> str | None:
        """The work-queue group of ``channel`` (``groups``, then ``group``); ``None`` for
        fan-out (the bus reads through its private group ``fanout.<consumer>``).

        Examples
        --------
        >>> cfg = BridgeConfig(channels=("x.*",), groups={"x.jobs": "workers"})
        >>> cfg.group_for("x.jobs"), cfg.group_for("x.news"), cfg.fan_out
        ('workers', None, False)
        """
        if self.groups:
            for selector, name in self.groups.items():
                if _selector((selector,)).matches(channel):
                    return name
        return self.group

    def group_name(self, origin: str = "") -> str:
        """The server-side group this bus reads through by default (``fanout.<consumer>``
        in fan-out mode: private to this bus)."""
        return self.group if self.group is not None else f"fanout.{self.consumer_name(origin)}"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced by ``***`` (safe to log)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _SECRET if f.metadata.get("secret") and value is not None else value
        return out


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class RedisBridgeConfig(BridgeConfig):
    """Redis bridge settings: Streams for durable channels, Pub/Sub for the rest.

    Parameters
    ----------
    url : str
        ``redis://`` or ``rediss://`` (TLS) URL; credentials belong in ``username`` /
        ``password``, not in the URL (a URL with ``user:password@`` or a ``password=``
        query is refused, without echoing it).
    username, password : str or None
        ACL credentials (never logged, not in ``repr``).
    ssl, ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs
        TLS settings passed to redis-py.
    prefix : str
        Key prefix of the streams and Pub/Sub channels (``nc:`` + channel).
    pubsub_channels : tuple of str
        Wildcards of channels always sent over Pub/Sub (fire-and-forget), whatever the
        rules below say.
    stream_channels : tuple of str
        Wildcards of channels sent as Streams although the local bus keeps them in
        memory. Otherwise the publishing bus decides per channel: its persistent
        channels travel as Streams, plain ones over Pub/Sub, and a bridge with a
        ``group`` (a work queue) sends every channel as a Stream.
    maxlen : int
        Most entries kept per stream (the sending bridge trims the oldest, never on the
        way in). Each trimmed entry that some known group had not acknowledged yet is
        counted (``BridgeMetrics.trimmed``) and logged as a warning; a stream no group
        reads counts every trimmed entry.
    block_ms : int
        ``XREADGROUP BLOCK`` time.
    claim_idle_ms : int
        Pending entries idle this long are taken over with ``XAUTOCLAIM``.
    claim_interval_s : float
        How often stale pending entries are looked for (and heartbeats refreshed).
    stale_after_s : float
        A fan-out bus with a generated consumer name keeps a heartbeat on the server
        (``prefix + "fanout"``, refreshed every ``claim_interval_s``). When one stops
        refreshing for this long (its process crashed), a live bus removes its private
        groups and its reply stream, so trimming is no longer held back (or counted as
        loss) by a reader that will never come back. Named consumers (``consumer``) are
        durable and never removed. Must exceed ``claim_interval_s``.
    start : {"earliest", "latest"}
        Where a new consumer group starts in an existing stream.
    socket_timeout_s, connect_timeout_s : float
        Socket timeouts.

    Examples
    --------
    >>> cfg = RedisBridgeConfig(url="redis://127.0.0.1:6379/0", password="s3cret")
    >>> "s3cret" in repr(cfg), cfg.redacted()["password"]
    (False, '***')
    """

    # "secret": a value of the wrong type is not echoed (it may hold credentials);
    # redacted() shows the URL unless it holds a secret (refused at construction anyway)
    url: str = dataclasses.field(default="redis://127.0.0.1:6379/0", metadata={"secret": True})
    username: str | None = None
    password: str | None = _secret()
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: Literal["required", "optional", "none"] = "required"
    prefix: str = "nc:"
    pubsub_channels: tuple[str, ...] = ()
    stream_channels: tuple[str, ...] = ()
    maxlen: int = 1_000_000
    block_ms: int = 100
    claim_idle_ms: int = 30_000
    claim_interval_s: float = 1.0
    stale_after_s: float = 60.0
    start: Literal["earliest", "latest"] = "earliest"
    socket_timeout_s: float = 5.0
    connect_timeout_s: float = 1.0

    def validate(self) -> None:
        """Check ranges; raise :class:`ConfigError` naming the field."""
        super().validate()
        if _url_has_secret(self.url):  # first: no other check may echo the URL
            raise ConfigError("url", "<redacted>", "put credentials in username/password")
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("url", self.url, "expected redis://, rediss:// or unix://")
        _positive(self, "maxlen", "block_ms", "claim_idle_ms")
        _seconds(self, "claim_interval_s", _DAY, positive=True)
        _seconds(self, "stale_after_s", 30 * _DAY, positive=True)
        _seconds(self, "socket_timeout_s", _DAY, positive=True)
        _seconds(self, "connect_timeout_s", _DAY, positive=True)
        if self.stale_after_s <= self.claim_interval_s:
            raise ConfigError(
                "stale_after_s", self.stale_after_s,
                f"must exceed claim_interval_s={self.claim_interval_s:g} (heartbeat period)",
            )  # fmt: skip

    def is_pubsub(self, channel: str) -> bool:
        """True when ``channel`` is always sent over Pub/Sub (``pubsub_channels``)."""
        return bool(self.pubsub_channels) and _selector(self.pubsub_channels).matches(channel)

    def is_stream(self, channel: str) -> bool:
        """True when ``channel`` is sent as a Stream although it is plain locally."""
        return bool(self.stream_channels) and _selector(self.stream_channels).matches(channel)

    def redacted(self) -> dict[str, Any]:
        """The settings with secrets replaced by ``***`` (a URL secret hides the URL)."""
        out = super().redacted()
        out["url"] = _SECRET if _url_has_secret(self.url) else self.url
        return out


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class KafkaBridgeConfig(BridgeConfig):
    """Kafka bridge settings (confluent-kafka / librdkafka).

    Parameters
    ----------
    bootstrap : str
        ``host:port[,host:port]`` of the brokers. Credentials belong in
        ``sasl_username`` / ``sasl_password``: an address with ``user:password@`` is
        refused, without echoing it.
    topic_prefix : str
        Topic name = prefix + channel (characters Kafka rejects become ``_``).
    partitions, replication : int
        Used when the bridge creates a missing topic (it always creates topics itself).
    compression : {"none", "lz4", "zstd", "gzip", "snappy"}
        Producer batch compression.
    batch_size : int
        Most messages sent in one batch: 4096 here, eight packs of 512 per delivery round
        trip (a batch of 512, one pack, left the producer idle between round trips: 0.6x
        the rate, measured 2026-11-29). Also librdkafka's ``batch.num.messages``; one
        consume call returns at most ``min(batch_size, 512)`` records (packs).
    batch_bytes : int
        Producer ``batch.size`` in bytes (``batch_size`` is the message count).
    pack : int
        Most messages of one channel (and key) sent as one Kafka record, a *pack*
        (framing in :mod:`neuralcore.messaging.bridges._kafka`); a pack is one delivery
        report and one offset, which is what makes the producer fast. ``1`` sends one
        message per record (readable by any consumer that decodes ``bus.codec``).
    pack_bytes : int
        Most bytes of envelopes in one pack (keep it below the broker's
        ``message.max.bytes``).
    key_header : str
        Header whose value becomes the record key instead of the channel name. Records
        are keyed by channel by default, so one channel is one partition and messages
        from one producer keep their publish order; a key header trades that for
        per-key order spread over partitions.
    security_protocol, sasl_mechanism, sasl_username, sasl_password, ssl_ca_location,
    ssl_certificate_location, ssl_key_location, ssl_key_password
        Passed to librdkafka; secrets are never logged.
    session_timeout_ms, fetch_wait_max_ms, message_timeout_ms : int
        Group session timeout, fetch wait (keep it low), producer delivery timeout.

    Examples
    --------
    >>> KafkaBridgeConfig(bootstrap="127.0.0.1:9092", compression="zstd").compression
    'zstd'
    """

    bootstrap: str = dataclasses.field(default="127.0.0.1:9092", metadata={"secret": True})
    topic_prefix: str = "nc."
    partitions: int = 3
    replication: int = 1
    compression: Literal["none", "lz4", "zstd", "gzip", "snappy"] = "lz4"
    batch_size: int = 4096
    batch_bytes: int = 1_000_000
    pack: int = 512
    pack_bytes: int = 262_144
    key_header: str = ""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = _secret()
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = _secret()
    session_timeout_ms: int = 10_000
    fetch_wait_max_ms: int = 10
    message_timeout_ms: int = 30_000

    def validate(self) -> None:
        """Check ranges; raise :class:`ConfigError` naming the field."""
        super().validate()
        if _bootstrap_has_secret(self.bootstrap):  # first: no other check may echo it
            raise ConfigError(
                "bootstrap", "<redacted>", "put credentials in sasl_username/sasl_password"
            )
        if not self.bootstrap:
            raise ConfigError("bootstrap", self.bootstrap, "must not be empty")
        _positive(self, "partitions", "replication", "batch_bytes", "session_timeout_ms")
        _positive(self, "pack", "pack_bytes")
        _positive(self, "fetch_wait_max_ms", "message_timeout_ms")
        if self.sasl_mechanism is not None and not self.security_protocol.startswith("SASL"):
            raise ConfigError("sasl_mechanism", self.sasl_mechanism, "needs a SASL protocol")

    def redacted(self) -> dict[str, Any]:
        """The settings with secrets replaced by ``***`` (credentials in ``bootstrap``
        hide it; they are refused at construction)."""
        out = super().redacted()
        out["bootstrap"] = _SECRET if _bootstrap_has_secret(self.bootstrap) else self.bootstrap
        return out


def channel_names(channels: str | Iterable[str]) -> tuple[str, ...]:
    """A bridge's ``channels=`` argument as a tuple: one name or pattern, or several.

    A single string is one selector (``"x.*"``), never its characters.

    >>> channel_names("x.*"), channel_names(["a", "b.*"])
    (('x.*',), ('a', 'b.*'))
    """
    if isinstance(channels, str):
        return (channels,)
    return tuple(channels)


@functools.lru_cache(maxsize=256)
def _selector(texts: tuple[str, ...]) -> Selector:
    return Selector(texts)


def _decoded(text: str) -> str:
    """``text`` percent-decoded until it no longer changes (a client decodes once; a
    secret check that decodes more refuses more, never less)."""
    for _ in range(4):
        out = unquote(text)
        if out == text:
            break
        text = out
    return text


def _url_has_secret(url: str) -> bool:
    """True for ``user[:pw]@`` in the address or a ``password=`` query parameter, also
    percent-encoded (``%70assword=``), in any case or with spaces around the URL: the
    check runs before any other, so that no error about the URL echoes a secret."""
    text = url.strip()
    rest = text.split("//", 1)[-1]
    netloc = rest.partition("/")[0].partition("?")[0].partition("#")[0]
    query = text.partition("?")[2].partition("#")[0]
    names: set[str] = set()
    for part in query.replace(";", "&").split("&"):
        key = part.split("=", 1)[0]
        names.add(_decoded(key).strip().lower())
        names.update(k.strip().lower() for k, _ in parse_qsl(part, keep_blank_values=True))
    return "@" in _decoded(netloc) or "password" in names or "passwd" in names


def _bootstrap_has_secret(bootstrap: str) -> bool:
    """True when a broker address carries credentials (``sasl://user:pw@host:9092``)."""
    return "@" in _decoded(bootstrap)


def _positive(cfg: Config, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ConfigError(name, getattr(cfg, name), "must be > 0")


def _non_negative(cfg: Config, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 0:
            raise ConfigError(name, getattr(cfg, name), "must be >= 0")


def _seconds(cfg: Config, name: str, most: float, *, positive: bool = False) -> None:
    """A finite number in ``[0, most]`` (``(0, most]`` with ``positive``): NaN passes
    every ``<`` test, so it is refused first, and infinity with it."""
    value = getattr(cfg, name)
    if not math.isfinite(value):
        raise ConfigError(name, value, "must be a finite number (not NaN or infinity)")
    if value < 0 or (positive and value == 0) or value > most:
        raise ConfigError(name, value, f"must be {'> 0' if positive else '>= 0'} and <= {most:g}")
