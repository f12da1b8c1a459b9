"""Redis bridge: Streams (consumer groups, XACK, XAUTOCLAIM) and Pub/Sub, via redis-py.

Which way a message travels is decided by the publishing bus, per channel: the bus's
persistent channels (and every channel of a bridge with a work-queue ``group``, and
``stream_channels``) are Stream entries; plain channels are Pub/Sub messages
(``pubsub_channels`` forces Pub/Sub). A receiving bridge reads both. Streams are read
through a consumer group: ``fanout.<consumer>`` (private to the bus) by default, or the
configured work-queue group; a stream is read only while the bus has a local subscriber
on its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from neuralcore.core import require
from neuralcore.messaging._routing import is_pattern
from neuralcore.messaging.bridges._base import REPLY_PREFIX, BaseBridge, FatalBridgeError
from neuralcore.messaging.bridges._buffer import Outgoing
from neuralcore.messaging.bridges._config import Direction, RedisBridgeConfig

__all__ = ("RedisBridge",)

logger = logging.getLogger(__name__)

_FIELD = b"m"
_REGISTRY = "channels"
_DLQ = "dlq"
# One round trip and one reply per channel and batch, instead of one reply per XADD: the
# client-side cost per message drops to packing one argument. No MAXLEN here: trimming is
# done by acknowledged id (see RedisBridge._trim), never silently on the way in.
_XADD_MANY = """
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
end
return #ARGV
"""


class RedisBridge(BaseBridge):
    """Carry bus channels over Redis: Streams for persistent channels, Pub/Sub for the rest.

    Outbound, a persistent channel's messages are ``XADD``-ed to ``prefix + channel`` in
    pipelined batches (one producer's messages keep their order per stream); a plain
    channel's are ``PUBLISH``-ed. Inbound, the bridge subscribes (``PSUBSCRIBE``) to its
    selection and reads the selected streams with ``XREADGROUP``: in fan-out mode (no
    ``group``) through a group private to this bus, created at the moment the bridge first
    connected, so it receives every entry published after that; with ``group`` through
    that shared group, each entry going to one member (a dead member's entries pending
    longer than ``claim_idle_ms`` are taken over with ``XAUTOCLAIM``). An entry is
    ``XACK``-ed only after the local handlers settled it, or when it is this bus's own
    message coming back. A stream whose channel has no local subscriber is not read.

    Streams are kept at ``maxlen`` entries by the sending bridge (checked every
    ``claim_interval_s``): the oldest entries go; each one that some known group had not
    acknowledged yet is counted in ``metrics().trimmed`` and logged as a warning.

    Parameters
    ----------
    config : RedisBridgeConfig or str
        The settings, or just the server URL.
    channels : tuple of str, optional
        Overrides ``config.channels``.
    direction : {"out", "in", "both"}, optional
        Overrides ``config.direction``.

    Raises
    ------
    MissingDependencyError
        redis-py is not installed (``pip install "neuralcore-runtime[redis]"``).

    Examples
    --------
    >>> bridge = RedisBridge("redis://127.0.0.1:6379/0", channels=("orders.*",))
    >>> bridge.state.value, bridge.direction
    ('stopped', 'both')
    >>> # bus.add_bridge(bridge); await bus.start()
    """

    kind = "redis"

    def __init__(
        self,
        config: RedisBridgeConfig | str,
        *,
        channels: tuple[str, ...] | None = None,
        direction: Direction | None = None,
    ) -> None:
        self._redis: Any = require("redis.asyncio", extra="redis", package="redis")
        self._errors: Any = require("redis.exceptions", extra="redis", package="redis")
        cfg = RedisBridgeConfig(url=config) if isinstance(config, str) else config
        overrides: dict[str, Any] = {}
        if channels is not None:
            overrides["channels"] = tuple(channels)
        if direction is not None:
            overrides["direction"] = direction
        if overrides:
            cfg = RedisBridgeConfig.from_dict({**_fields(cfg), **overrides})
        super().__init__(cfg)
        self.cfg = cfg
        self._client: Any = None
        self._reader: Any = None
        self._pubsub: Any = None
        self._registered: set[str] = set()
        self._known: dict[str, str] = {}  # stream key -> channel: selected streams that exist
        self._streams: dict[str, str] = {}  # stream key -> channel: read (group in place)
        self._sent_streams: set[str] = set()  # stream keys this bridge added to (trimmed)
        self._holding: set[bytes] = set()  # entry ids delivered locally, not yet settled
        self._next_scan = 0.0
        self._start_id = ""  # stream id of the first connect: where fan-out groups start
        self._script: str | None = None

    @property
    def address(self) -> str:
        """The server URL without its query (credentials never appear in it)."""
        return self.cfg.url.partition("?")[0]

    async def start_port(self, port: Any) -> None:
        """:meth:`BaseBridge.start_port`, plus the trimming loop of a sending bridge."""
        self._start_id = ""
        self._sent_streams.clear()
        await super().start_port(port)
        if self.cfg.sends:
            self._spawn(self._supervise(self._trim_loop))

    # -- connection -----------------------------------------------------------------------

    def _make_client(self, *, single: bool) -> Any:
        cfg = self.cfg
        retry = self._redis.retry.Retry(self._backoff_none(), 0)
        kwargs: dict[str, Any] = {
            "username": cfg.username,
            "password": cfg.password,
            "socket_timeout": cfg.socket_timeout_s,
            "socket_connect_timeout": cfg.connect_timeout_s,
            "retry": retry,
            "single_connection_client": single,
            "client_name": f"neuralcore-{self._consumer}",
        }
        if cfg.ssl or cfg.url.startswith("rediss://"):
            kwargs.update(
                ssl_ca_certs=cfg.ssl_ca_certs, ssl_certfile=cfg.ssl_certfile,
                ssl_keyfile=cfg.ssl_keyfile, ssl_cert_reqs=cfg.ssl_cert_reqs,
            )  # fmt: skip
            if cfg.url.startswith("redis://"):
                kwargs["connection_class"] = self._redis.SSLConnection
        return self._redis.Redis.from_url(cfg.url, **kwargs)

    @staticmethod
    def _backoff_none() -> Any:
        return require("redis.backoff", extra="redis", package="redis").NoBackoff()

    async def _connect(self) -> None:
        errors = self._errors
        self._client = self._make_client(single=False)
        try:
            await self._client.ping()
            if not self._start_id:
                seconds, micros = await self._client.time()
                self._start_id = f"{int(seconds) * 1000 + int(micros) // 1000}-0"
            if self.cfg.receives:
                self._reader = self._make_client(single=True)
                await self._reader.ping()
                self._streams.clear()
                self._next_scan = 0.0
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.psubscribe(*(self.cfg.prefix + c for c in self.cfg.channels))
        except (errors.AuthenticationError, errors.NoPermissionError) as err:
            raise FatalBridgeError(f"redis refused the credentials: {type(err).__name__}") from err
        except errors.ResponseError as err:
            if "NOAUTH" in str(err) or "WRONGPASS" in str(err):
                raise FatalBridgeError("redis refused the credentials") from err
            raise
        self._registered.clear()
        self._script = None

    async def _close(self) -> None:
        if self._stopping and self._client is not None:
            with contextlib.suppress(Exception):
                await self._forget_private_groups()
        for name in ("_pubsub", "_reader", "_client"):
            conn = getattr(self, name)
            setattr(self, name, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.aclose()

    async def _forget_private_groups(self) -> None:
        """At a clean stop: remove this bus's reply stream (its id is never reused) and, for
        a fan-out bus with a generated name, its private groups (nobody can resume them,
        and they would make trimming count their unread entries as lost)."""
        if not self.cfg.receives:
            return
        pipe = self._client.pipeline(transaction=False)
        if self.cfg.fan_out and not self.cfg.consumer:
            for key in self._streams:
                pipe.xgroup_destroy(key, self._group)
        pipe.delete(self.cfg.prefix + self._own_reply)
        await pipe.execute(raise_on_error=False)

    async def _ping(self) -> None:
        await self._client.ping()

    def _transient(self, err: BaseException) -> bool:
        errors = self._errors
        if isinstance(err, FatalBridgeError | errors.AuthenticationError):
            return False
        return isinstance(
            err, errors.ConnectionError | errors.TimeoutError | errors.BusyLoadingError
            | ConnectionError | TimeoutError | OSError,
        )  # fmt: skip

    def _scrub(self, text: str) -> str:
        for secret in (self.cfg.password,):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _persistent(self, channel: str) -> bool:
        """True when ``channel`` travels as a Stream (see the module docstring)."""
        cfg = self.cfg
        if channel.startswith(REPLY_PREFIX):
            return True  # a waiting request must get its reply even across a reconnect
        if cfg.is_pubsub(channel):
            return False
        if cfg.group is not None or cfg.is_stream(channel):
            return True
        durable = self._durable
        return durable is not None and durable.records(channel)

    def _address(self, channel: str) -> str:
        return self.cfg.prefix + channel

    # -- outbound -------------------------------------------------------------------------

    async def _send(self, items: list[Outgoing]) -> list[Outgoing]:
        cfg = self.cfg
        prefix = cfg.prefix
        if len(items) == 1 and items[0].channel in self._registered:
            return await self._send_one(items[0])
        if self._script is None:
            self._script = await self._client.script_load(_XADD_MANY)
        pipe = self._client.pipeline(transaction=False)
        new = {
            i.channel
            for i in items
            if i.persistent
            and i.channel not in self._registered
            and not i.channel.startswith(REPLY_PREFIX)  # private to one bus: not listed
        }
        if new:
            pipe.sadd(prefix + _REGISTRY, *new)
        groups: dict[str, list[Outgoing]] = {}
        for item in items:
            if item.persistent:
                groups.setdefault(item.channel, []).append(item)
            else:
                groups[f"\0{len(groups)}"] = [item]  # Pub/Sub: one PUBLISH each
        for channel, group in groups.items():
            if group[0].persistent:
                pipe.evalsha(self._script, 1, prefix + channel, *(i.data for i in group))
            else:
                pipe.publish(prefix + group[0].channel, group[0].data)
        started = time.perf_counter()
        results = await pipe.execute(raise_on_error=False)
        self._counters.rtt(started)
        if new:
            results = results[1:]
            self._registered |= new
        failed: list[Outgoing] = []
        for group, result in zip(groups.values(), results, strict=True):
            if isinstance(result, Exception):
                if "NOSCRIPT" in str(result):
                    self._script = None  # server restarted: load it again
                failed += group
            elif group[0].persistent and not group[0].channel.startswith(REPLY_PREFIX):
                self._sent_streams.add(prefix + group[0].channel)
        if failed:
            logger.warning("redis rejected %d of %d messages", len(failed), len(items))
        return failed

    async def _send_one(self, item: Outgoing) -> list[Outgoing]:
        """One message, no pipeline: the low-latency path when traffic is light."""
        started = time.perf_counter()
        key = self.cfg.prefix + item.channel
        if item.persistent:
            await self._client.xadd(key, {_FIELD: item.data})
        else:
            await self._client.publish(key, item.data)
        self._counters.rtt(started)
        return []

    # -- trimming -------------------------------------------------------------------------

    async def _trim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.claim_interval_s)
            for key in sorted(self._sent_streams):
                await self._trim(key)

    async def _trim(self, key: str) -> None:
        """Keep ``key`` at ``maxlen`` entries; count and warn for each removed entry that
        some known group had not acknowledged yet (acknowledged ones go silently)."""
        client = self._client
        excess = int(await client.xlen(key)) - self.cfg.maxlen
        if excess <= 0:
            return
        floor = await self._acked_floor(key)
        acked = 0
        if floor is not None:  # entries below the floor: every group is done with them
            below = await client.xrange(key, "-", f"({floor[0]}-{floor[1]}", count=excess)
            acked = len(below)
        await client.xtrim(key, maxlen=self.cfg.maxlen, approximate=False)
        lost = excess - acked
        if lost > 0:
            self._counters.trimmed += lost
            logger.warning(
                "redis bridge trimmed %d entries of %s not yet acknowledged by every group "
                "(maxlen=%d reached)", lost, key, self.cfg.maxlen,
            )  # fmt: skip

    async def _acked_floor(self, key: str) -> tuple[int, int] | None:
        """The lowest entry id some group still needs (None: no group knows the stream)."""
        client = self._client
        floor: tuple[int, int] | None = None
        for group in await client.xinfo_groups(key):
            if int(group.get("pending") or 0):
                summary = await client.xpending(key, group["name"])
                keep = _id(summary["min"])
            else:
                ms, seq = _id(group["last-delivered-id"])
                keep = (ms, seq + 1)
            floor = keep if floor is None else min(floor, keep)
        return floor

    # -- inbound --------------------------------------------------------------------------

    def _receive_loops(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        return [self._stream_loop, self._pubsub_loop]

    def _wanted(self, channel: str) -> bool:
        """Read a stream only while the bus has a local subscriber on its channel."""
        port = self._port
        return channel == self._own_reply or (port is not None and port.subscribed(channel))

    async def _discover(self) -> None:
        """Find selected streams: exact names, and the registry for wildcards."""
        cfg = self.cfg
        names = {c for c in cfg.channels if not is_pattern(c)}
        names.add(self._own_reply)  # replies to this bus's requests
        if any(is_pattern(c) for c in cfg.channels):
            members = await self._client.smembers(cfg.prefix + _REGISTRY)
            names |= {m.decode() for m in members if cfg.matches(m.decode())}
        for channel in names:
            self._known.setdefault(cfg.prefix + channel, channel)

    async def _activate(self) -> None:
        """Start reading the known streams whose channel gained a local subscriber (the
        group is created if missing), stop reading those that lost it."""
        for key, channel in list(self._known.items()):
            wanted = self._wanted(channel)
            if wanted and key not in self._streams:
                await self._ensure_group(key)
                self._streams[key] = channel
                await self._read_own_pending(key)
            elif not wanted and key in self._streams:
                del self._streams[key]

    async def _ensure_group(self, key: str) -> None:
        cfg = self.cfg
        if cfg.group is not None:  # a work queue
            start = "0" if cfg.start == "earliest" else self._start_id
        else:  # fan-out: a named consumer is durable, a generated name starts now
            start = "0" if cfg.consumer else self._start_id
        try:
            await self._client.xgroup_create(key, self._group, id=start, mkstream=True)
        except self._errors.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def _read_own_pending(self, key: str) -> None:
        """Re-deliver entries this consumer read but never acknowledged (after a restart)."""
        last = "0"
        while True:
            resp = await self._client.xreadgroup(
                self._group, self._consumer, {key: last}, count=self.cfg.batch_size
            )
            entries = resp[0][1] if resp else []
            if not entries:
                return
            await self._on_entries(key, entries, skip_holding=True)
            last = entries[-1][0]

    async def _stream_loop(self) -> None:
        cfg = self.cfg
        while True:
            if time.monotonic() >= self._next_scan:
                await self._housekeeping()
            await self._activate()
            if not self._streams:
                await asyncio.sleep(cfg.block_ms / 1000.0)
                continue
            try:
                resp = await self._reader.xreadgroup(
                    self._group, self._consumer, dict.fromkeys(self._streams, ">"),
                    count=cfg.batch_size, block=cfg.block_ms,
                )  # fmt: skip
            except self._errors.ResponseError as err:
                if "NOGROUP" not in str(err):
                    raise
                logger.warning("redis stream or group vanished (server restart?); recreating")
                self._streams.clear()
                self._next_scan = 0.0
                continue
            for key, entries in resp or ():
                await self._on_entries(key.decode(), entries, skip_holding=False)

    async def _housekeeping(self) -> None:
        self._next_scan = time.monotonic() + self.cfg.claim_interval_s
        await self._discover()
        if self.cfg.group is not None:  # fan-out groups have one member: nothing to take
            await self._claim_stale()
        lag = 0
        for key in self._streams:
            for group in await self._client.xinfo_groups(key):
                if group.get("name") in (self._group, self._group.encode()):
                    lag += int(group.get("lag") or 0)
        self._server_lag = lag

    async def _claim_stale(self) -> None:
        """Take over entries a dead (or stuck) member left pending too long."""
        cfg = self.cfg
        for key in list(self._streams):
            start = "0-0"
            while True:
                resp = await self._client.xautoclaim(
                    key, self._group, self._consumer, cfg.claim_idle_ms, start_id=start,
                    count=cfg.batch_size,
                )  # fmt: skip
                start, entries = resp[0], resp[1]
                if entries:
                    logger.info("redis bridge took over %d stale entries of %s", len(entries), key)
                    await self._on_entries(key, entries, skip_holding=True)
                if start in (b"0-0", "0-0") or not entries:
                    break

    async def _on_entries(self, key: str, entries: list[Any], *, skip_holding: bool) -> None:
        for entry_id, fields in entries:
            if skip_holding and entry_id in self._holding:
                continue  # still being handled here
            token = (key, entry_id)
            if fields is None:  # trimmed away while pending (counted by the trimmer)
                self._settle(token)
                continue
            raw = fields.get(_FIELD)
            if raw is None:
                reason: str | None = self._rejected(f"foreign entry on {key!r}: no 'm' field")
            else:
                self._holding.add(entry_id)
                reason = await self._handle(raw, token, key)
            if reason is not None:
                self._holding.discard(entry_id)
                await self._dead_letter(_raw_of(fields), reason, key)
                self._settle(token)

    async def _pubsub_loop(self) -> None:
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                await asyncio.sleep(0.05)
                continue
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None or msg.get("type") != "pmessage":
                continue
            source = msg["channel"].decode()
            reason = await self._handle(msg["data"], None, source)
            if reason is not None:
                await self._dead_letter(msg["data"], reason, source)

    async def _ack(self, tokens: list[Any]) -> None:
        by_key: dict[str, list[Any]] = {}
        for token in tokens:
            if token is not None:
                by_key.setdefault(token[0], []).append(token[1])
        if not by_key:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, ids in by_key.items():
            pipe.xack(key, self._group, *ids)
        await pipe.execute()
        for ids in by_key.values():
            self._holding.difference_update(ids)

    async def _dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        fields = {"raw": raw, "reason": reason, "source": source, "time": str(time.time())}
        await self._client.xadd(self.cfg.prefix + _DLQ, fields, maxlen=self.cfg.maxlen)


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _raw_of(fields: dict[Any, Any] | None) -> bytes:
    if not fields:
        return b""
    return b"".join(bytes(k) + b"=" + bytes(v) + b";" for k, v in fields.items())


def _fields(cfg: RedisBridgeConfig) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
