"""Redis bridge: Streams (consumer groups, XACK, XAUTOCLAIM) and Pub/Sub, via redis-py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from neuralcore.core import require
from neuralcore.messaging.bridges._base import REPLY_PREFIX, BaseBridge, FatalBridgeError
from neuralcore.messaging.bridges._buffer import Outgoing
from neuralcore.messaging.bridges._config import Direction, RedisBridgeConfig

__all__ = ("RedisBridge",)

logger = logging.getLogger(__name__)

_FIELD = b"m"
_REGISTRY = "channels"
_DLQ = "dlq"
# One round trip and one reply per channel and batch, instead of one reply per XADD: the
# client-side cost per message drops to packing one argument.
_XADD_MANY = """
local n = 0
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[i])
  n = n + 1
end
return n
"""


class RedisBridge(BaseBridge):
    """Carry bus channels over Redis: Streams for durable channels, Pub/Sub for the rest.

    Outbound messages are ``XADD``-ed (``MAXLEN ~`` trimmed) to ``prefix + channel`` in
    pipelined batches, or ``PUBLISH``-ed for ``pubsub_channels``. Inbound streams are read
    with ``XREADGROUP`` in the configured group; an entry is ``XACK``-ed only after the local
    handlers settled it, and entries a dead member left pending longer than
    ``claim_idle_ms`` are taken over with ``XAUTOCLAIM``.

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
        self._streams: dict[str, str] = {}  # stream key -> channel
        self._holding: set[bytes] = set()  # entry ids delivered locally, not yet settled
        self._next_scan = 0.0
        self._consumer = cfg.consumer_name()
        self._script: str | None = None

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
            if self.cfg.receives:
                self._reader = self._make_client(single=True)
                await self._reader.ping()
                self._streams.clear()
                self._next_scan = 0.0
                if self.cfg.pubsub_channels:
                    self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                    await self._subscribe_pubsub()
        except (errors.AuthenticationError, errors.NoPermissionError) as err:
            raise FatalBridgeError(f"redis refused the credentials: {type(err).__name__}") from err
        except errors.ResponseError as err:
            if "NOAUTH" in str(err) or "WRONGPASS" in str(err):
                raise FatalBridgeError("redis refused the credentials") from err
            raise
        self._registered.clear()
        self._script = None

    async def _close(self) -> None:
        for name in ("_pubsub", "_reader", "_client"):
            conn = getattr(self, name)
            setattr(self, name, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.aclose()

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
        return not self.cfg.is_pubsub(channel)

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
                args = [cfg.maxlen, *(i.data for i in group)]
                pipe.evalsha(self._script, 1, prefix + channel, *args)
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
        if failed:
            logger.warning("redis rejected %d of %d messages", len(failed), len(items))
        return failed

    async def _send_one(self, item: Outgoing) -> list[Outgoing]:
        """One message, no pipeline: the low-latency path when traffic is light."""
        started = time.perf_counter()
        key = self.cfg.prefix + item.channel
        if item.persistent:
            await self._client.xadd(
                key, {_FIELD: item.data}, maxlen=self.cfg.maxlen, approximate=True
            )
        else:
            await self._client.publish(key, item.data)
        self._counters.rtt(started)
        return []

    # -- inbound --------------------------------------------------------------------------

    def _receive_loops(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        loops: list[Callable[[], Coroutine[Any, Any, None]]] = [self._stream_loop]
        if self.cfg.pubsub_channels:
            loops.append(self._pubsub_loop)
        return loops

    async def _refresh_streams(self) -> None:
        """Find selected streams (exact names + the registry for wildcards); make groups."""
        cfg = self.cfg
        names = {c for c in cfg.channels if not _is_pattern(c)}
        names.add(self._own_reply)  # replies to this bus's requests
        if any(_is_pattern(c) for c in cfg.channels):
            members = await self._client.smembers(cfg.prefix + _REGISTRY)
            names |= {m.decode() for m in members if cfg.matches(m.decode())}
        for channel in sorted(names):
            key = cfg.prefix + channel
            if cfg.is_pubsub(channel) or key in self._streams:
                continue
            await self._ensure_group(key)
            self._streams[key] = channel
            await self._read_own_pending(key)

    async def _ensure_group(self, key: str) -> None:
        start = "0" if self.cfg.start == "earliest" else "$"
        try:
            await self._client.xgroup_create(key, self.cfg.group, id=start, mkstream=True)
        except self._errors.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def _read_own_pending(self, key: str) -> None:
        """Re-deliver entries this consumer read but never acknowledged (after a restart)."""
        last = "0"
        while True:
            resp = await self._client.xreadgroup(
                self.cfg.group, self._consumer, {key: last}, count=self.cfg.batch_size
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
            if not self._streams:
                await asyncio.sleep(min(0.1, cfg.claim_interval_s))
                continue
            try:
                resp = await self._reader.xreadgroup(
                    cfg.group, self._consumer, dict.fromkeys(self._streams, ">"),
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
        await self._refresh_streams()
        await self._claim_stale()
        lag = 0
        for key in self._streams:
            for group in await self._client.xinfo_groups(key):
                if group.get("name") in (self.cfg.group, self.cfg.group.encode()):
                    lag += int(group.get("lag") or 0)
        self._server_lag = lag

    async def _claim_stale(self) -> None:
        """Take over entries a dead (or stuck) member left pending too long."""
        cfg = self.cfg
        for key in list(self._streams):
            start = "0-0"
            while True:
                resp = await self._client.xautoclaim(
                    key, cfg.group, self._consumer, cfg.claim_idle_ms, start_id=start,
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
            raw = fields.get(_FIELD) if fields else None
            if fields is None:  # trimmed away while pending
                self._settle(token)
                continue
            reason = "no 'm' field: foreign entry" if raw is None else None
            if raw is not None:
                self._holding.add(entry_id)
                reason = await self._handle(raw, token)
            else:
                self._counters.dead_lettered += 1
                logger.warning("redis bridge: dead-lettering a foreign entry on %s", key)
            if reason is not None:
                self._holding.discard(entry_id)
                await self._dead_letter(_raw_of(fields), reason, key)
                self._settle(token)

    async def _subscribe_pubsub(self) -> None:
        patterns = [self.cfg.prefix + p for p in self.cfg.pubsub_channels]
        await self._pubsub.psubscribe(*patterns)

    async def _pubsub_loop(self) -> None:
        cfg = self.cfg
        while True:
            if self._pubsub is None:
                await asyncio.sleep(0.05)
                continue
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None or msg.get("type") != "pmessage":
                continue
            channel = msg["channel"].decode()[len(cfg.prefix) :]
            if not cfg.matches(channel):
                continue
            reason = await self._handle(msg["data"], None)
            if reason is not None:
                await self._dead_letter(msg["data"], reason, msg["channel"].decode())

    async def _ack(self, tokens: list[Any]) -> None:
        by_key: dict[str, list[Any]] = {}
        for token in tokens:
            if token is not None:
                by_key.setdefault(token[0], []).append(token[1])
        if not by_key:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, ids in by_key.items():
            pipe.xack(key, self.cfg.group, *ids)
        await pipe.execute()
        for ids in by_key.values():
            self._holding.difference_update(ids)

    async def _dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        fields = {"raw": raw, "reason": reason, "source": source, "time": str(time.time())}
        await self._client.xadd(self.cfg.prefix + _DLQ, fields, maxlen=self.cfg.maxlen)


def _is_pattern(channel: str) -> bool:
    return any(ch in channel for ch in "*?[")


def _raw_of(fields: dict[Any, Any] | None) -> bytes:
    if not fields:
        return b""
    return b"".join(bytes(k) + b"=" + bytes(v) + b";" for k, v in fields.items())


def _fields(cfg: RedisBridgeConfig) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
