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
from collections.abc import Iterable
from typing import Any

from neuralcore.core import require
from neuralcore.messaging._message import Message
from neuralcore.messaging._routing import is_pattern
from neuralcore.messaging.bridges._buffer import Outgoing
from neuralcore.messaging.bridges._config import Direction, RedisBridgeConfig, channel_names
from neuralcore.messaging.bridges._runner import BridgeRunner
from neuralcore.messaging.bridges._transport import REPLY_PREFIX, FatalBridgeError, Link, Loop

__all__ = ("RedisBridge", "RedisTransport")

logger = logging.getLogger(__name__)

_FIELD = b"m"
_REGISTRY = "channels"
_DLQ = "dlq"
_ALIVE = "fanout"  # hash: private group -> "<server ms> <reply stream key>" (heartbeats)
# Refresh this bus's heartbeat and return the entries older than ARGV[3] ms, by the
# server's clock (one clock for every host).
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], now .. ' ' .. ARGV[2])
end
local stale = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local seen = tonumber(string.match(all[i + 1], '^%d+'))
  if seen == nil or now - seen > tonumber(ARGV[3]) then
    table.insert(stale, all[i])
    table.insert(stale, all[i + 1])
  end
end
return stale
"""
# One round trip and one reply per channel and batch, instead of one reply per XADD: the
# client-side cost per message drops to packing one argument. No MAXLEN here: trimming is
# done by acknowledged id (see RedisBridge._trim), never silently on the way in.
_XADD_MANY = """
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
end
return #ARGV
"""


class RedisBridge(BridgeRunner):
    """Carry bus channels over Redis: Streams for persistent channels, Pub/Sub for the rest.

    Outbound, a persistent channel's messages are ``XADD``-ed to ``prefix + channel`` in
    pipelined batches (one producer's messages keep their order per stream); a plain
    channel's are ``PUBLISH``-ed. Inbound, the bridge subscribes (``PSUBSCRIBE``) to its
    selection and reads the selected streams with ``XREADGROUP``: in fan-out mode (no
    ``group``) through a group private to this bus, created at the moment the bridge first
    connected, so it receives every entry published after that; with ``group`` (or a
    ``groups`` entry for the channel) through that shared group, each entry going to one
    member (a dead member's entries pending
    longer than ``claim_idle_ms`` are taken over with ``XAUTOCLAIM``). An entry is
    ``XACK``-ed only after the local handlers settled it, or when it is this bus's own
    message coming back. A stream whose channel has no local subscriber is not read.

    Streams are kept at ``maxlen`` entries by the sending bridge (checked every
    ``claim_interval_s``): the oldest entries go; each one that some known group had not
    acknowledged yet is counted in ``metrics().trimmed`` and logged as a warning.

    A fan-out bus with a generated consumer name refreshes a heartbeat on the server
    every ``claim_interval_s``; its private groups and reply stream are removed at a
    clean stop, and by any live bus once the heartbeat is older than ``stale_after_s``
    (the process crashed), so they do not hold back trimming forever.

    Parameters
    ----------
    config : RedisBridgeConfig or str
        The settings, or just the server URL.
    channels : str or iterable of str, optional
        Overrides ``config.channels`` (one name or pattern, or several).
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

    def __init__(
        self,
        config: RedisBridgeConfig | str,
        *,
        channels: str | Iterable[str] | None = None,
        direction: Direction | None = None,
    ) -> None:
        cfg = RedisBridgeConfig(url=config) if isinstance(config, str) else config
        overrides: dict[str, Any] = {}
        if channels is not None:
            overrides["channels"] = channel_names(channels)
        if direction is not None:
            overrides["direction"] = direction
        if overrides:
            cfg = RedisBridgeConfig.from_dict({**_fields(cfg), **overrides})
        super().__init__(cfg, RedisTransport(cfg))
        self.cfg = cfg


class RedisTransport:
    """The Redis :class:`~neuralcore.messaging.bridges._transport.Transport` (see
    :class:`RedisBridge`): redis-py clients, Streams, Pub/Sub, trimming."""

    kind = "redis"
    max_in_flight = 1
    channel_keyed = True  # no keys at all

    def __init__(self, cfg: RedisBridgeConfig) -> None:
        self._redis: Any = require("redis.asyncio", extra="redis", package="redis")
        self._errors: Any = require("redis.exceptions", extra="redis", package="redis")
        self.cfg = cfg
        self._link: Link | None = None
        self._client: Any = None
        self._reader: Any = None
        self._sender: Any = None
        self._pubsub: Any = None
        self._registered: set[str] = set()
        self._known: dict[str, str] = {}  # stream key -> channel: selected streams that exist
        self._streams: dict[str, str] = {}  # stream key -> channel: read (group in place)
        self._sent_streams: set[str] = set()  # stream keys this bridge added to (trimmed)
        self._holding: set[tuple[str, Any]] = set()  # (key, entry id) delivered, not settled
        self._next_scan = 0.0
        self._start_id = ""  # stream id of the first connect: where fan-out groups start
        self._script: str | None = None
        self._beat: str | None = None  # sha of _HEARTBEAT
        self._next_beat = 0.0

    @property
    def link(self) -> Link:
        """The runner driving this transport (set by :meth:`bind`)."""
        link = self._link
        if link is None:
            raise RuntimeError("redis transport used before bind()")
        return link

    def bind(self, link: Link) -> None:
        """A new start: fan-out groups start at the next connect."""
        self._link = link
        self._start_id = ""
        self._sent_streams.clear()

    def loops(self) -> list[Loop]:
        """Trimming (sending), streams and Pub/Sub (receiving)."""
        cfg = self.cfg
        out: list[Loop] = []
        if cfg.sends:
            out.append(self._trim_loop)
        if cfg.receives:
            out += [self._stream_loop, self._pubsub_loop]
        return out

    def key(self, msg: Message) -> bytes | None:
        """No record key on Redis (one stream per channel keeps the order)."""
        return None

    @property
    def address(self) -> str:
        """The server URL without its query (credentials never appear in it)."""
        return self.cfg.url.partition("?")[0]

    # -- connection -----------------------------------------------------------------------

    def _make_client(self, *, single: bool, timeout: bool = True) -> Any:
        cfg = self.cfg
        retry = self._redis.retry.Retry(self._backoff_none(), 0)
        kwargs: dict[str, Any] = {
            "username": cfg.username,
            "password": cfg.password,
            "socket_timeout": cfg.socket_timeout_s if timeout else None,
            "socket_connect_timeout": cfg.connect_timeout_s,
            "retry": retry,
            "single_connection_client": single,
            "client_name": f"neuralcore-{self.link.consumer}",
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

    async def connect(self) -> None:
        """Open the client (and the reader and Pub/Sub of a receiving bridge)."""
        errors = self._errors
        self._client = self._make_client(single=False)
        try:
            await self._client.ping()
            if not self._start_id:
                seconds, micros = await self._client.time()
                self._start_id = f"{int(seconds) * 1000 + int(micros) // 1000}-0"
            if self.cfg.sends:
                # The send loop's round trips get a connection of their own, read without a
                # per-reply timer (~15 us each): a server that stops answering is found by
                # the watchdog's PING (socket_timeout_s) on the main client, and the
                # reconnect closes this connection, which fails the waiting read.
                self._sender = self._make_client(single=True, timeout=False)
                await self._sender.ping()
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
        self._script = self._beat = None
        self._next_beat = 0.0
        await self._heartbeat()  # registered before anything can crash

    async def close(self) -> None:
        """Close every connection (at a clean stop, forget private groups first)."""
        if self.link.stopping and self._client is not None:
            with contextlib.suppress(Exception):
                await self._forget_private_groups()
        for name in ("_pubsub", "_reader", "_sender", "_client"):
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
        link = self.link
        if not self.cfg.consumer:
            for key, channel in self._streams.items():
                if link.fan_out(channel):
                    pipe.xgroup_destroy(key, link.group_of(channel))
        pipe.delete(self.cfg.prefix + link.own_reply)
        if self._beating:
            pipe.hdel(self.cfg.prefix + _ALIVE, self._private_group)
        await pipe.execute(raise_on_error=False)

    # -- heartbeats of fan-out buses ------------------------------------------------------

    @property
    def _beating(self) -> bool:
        """True when this bus has private groups nobody else can resume (fan-out reader
        with a generated name): those are announced with a heartbeat."""
        return self.cfg.receives and not self.cfg.consumer

    @property
    def _private_group(self) -> str:
        return f"fanout.{self.link.consumer}"

    async def _heartbeat(self) -> None:
        """Refresh this bus's heartbeat (every ``claim_interval_s``) and remove what the
        buses whose heartbeat is older than ``stale_after_s`` left behind."""
        now = time.monotonic()
        if now < self._next_beat:
            return
        cfg, client = self.cfg, self._client
        self._next_beat = now + cfg.claim_interval_s
        if self._beat is None:
            self._beat = await client.script_load(_HEARTBEAT)
        mine = self._private_group if self._beating else ""
        reply = cfg.prefix + self.link.own_reply
        stale_ms = int(cfg.stale_after_s * 1000)
        try:
            stale = await client.evalsha(self._beat, 1, cfg.prefix + _ALIVE, mine, reply, stale_ms)
        except self._errors.ResponseError as err:
            if "NOSCRIPT" not in str(err):
                raise
            self._beat = None  # the server restarted: load it again next time
            self._next_beat = 0.0
            return
        for i in range(0, len(stale), 2):
            group = _text(stale[i])
            await self._reap(group, _text(stale[i + 1]).partition(" ")[2])

    async def _reap(self, group: str, reply: str) -> None:
        """Remove the private ``group`` of a bus that stopped beating from every stream
        in the registry, and its reply stream."""
        cfg, client = self.cfg, self._client
        members = await client.smembers(cfg.prefix + _REGISTRY)
        pipe = client.pipeline(transaction=False)
        for channel in sorted(_text(m) for m in members):
            pipe.xgroup_destroy(cfg.prefix + channel, group)
        if reply.startswith(cfg.prefix + REPLY_PREFIX):
            pipe.delete(reply)
        pipe.hdel(cfg.prefix + _ALIVE, group)
        results = await pipe.execute(raise_on_error=False)
        removed = sum(1 for r in results[: len(members)] if r is True or r == 1)
        logger.warning(
            "redis bridge removed the fan-out group %s of a bus that stopped beating for "
            "stale_after_s=%g (%d streams)", group, cfg.stale_after_s, removed,
        )  # fmt: skip

    async def ping(self) -> None:
        """PING."""
        await self._client.ping()

    def transient(self, err: BaseException) -> bool:
        """Connection-level errors (never credentials)."""
        errors = self._errors
        if isinstance(err, FatalBridgeError | errors.AuthenticationError):
            return False
        return isinstance(
            err, errors.ConnectionError | errors.TimeoutError | errors.BusyLoadingError
            | ConnectionError | TimeoutError | OSError,
        )  # fmt: skip

    def scrub(self, text: str) -> str:
        """Hide the password."""
        for secret in (self.cfg.password,):
            if secret:
                text = text.replace(secret, "***")
        return text

    def persistent(self, channel: str) -> bool:
        """True when ``channel`` travels as a Stream (see the module docstring)."""
        cfg = self.cfg
        if channel.startswith(REPLY_PREFIX):
            return True  # a waiting request must get its reply even across a reconnect
        if cfg.is_pubsub(channel):
            return False
        if cfg.group_for(channel) is not None or cfg.is_stream(channel):
            return True
        return self.link.records(channel)

    def source_of(self, channel: str) -> str:
        """The stream key / Pub/Sub channel: ``prefix + channel``."""
        return self.cfg.prefix + channel

    # -- outbound -------------------------------------------------------------------------

    async def send(self, items: list[Outgoing]) -> list[Outgoing]:
        """Everything the send loop took in one round trip on the sender connection: per
        persistent channel one ``XADD`` (one message) or one script call adding them all
        in order; one ``PUBLISH`` per Pub/Sub message. Replies are read straight off the
        connection (no pipeline object); a rejected command fails only its messages."""
        prefix = self.cfg.prefix
        registered = self._registered
        commands: list[tuple[Any, ...]] = []
        runs: list[list[Outgoing]] = []
        new = {
            channel
            for channel, _, _, persistent, _ in items
            if persistent
            and channel not in registered
            and not channel.startswith(REPLY_PREFIX)  # private to one bus: not listed
        }
        if new:
            commands.append(("SADD", prefix + _REGISTRY, *new))
        if len(items) == 1:
            runs.append(items)
        else:
            by_channel: dict[str, list[Outgoing]] = {}
            for item in items:
                if item[3]:  # persistent
                    by_channel.setdefault(item[0], []).append(item)
                else:
                    by_channel[f"\0{len(by_channel)}"] = [item]  # Pub/Sub: one PUBLISH each
            runs.extend(by_channel.values())
        for run in runs:
            channel, data, _, persistent, _ = run[0]
            if not persistent:
                commands.append(("PUBLISH", prefix + channel, data))
            elif len(run) == 1:
                commands.append(("XADD", prefix + channel, "*", _FIELD, data))
            else:
                if self._script is None:
                    self._script = await self._client.script_load(_XADD_MANY)
                key = prefix + channel
                commands.append(("EVALSHA", self._script, 1, key, *(i[1] for i in run)))
        conn = self._sender.connection
        packed = (
            conn.pack_commands(commands) if len(commands) > 1 else conn.pack_command(*commands[0])
        )
        started = time.perf_counter()
        await conn.send_packed_command(packed, check_health=False)
        replies = []
        error = self._errors.ResponseError
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except error as err:  # the reply was read: the connection stays usable
                replies.append(err)
        self.link.counters.rtt(started)
        if new:
            if not isinstance(replies[0], Exception):
                registered |= new
            replies = replies[1:]
        failed: list[Outgoing] = []
        for run, reply in zip(runs, replies, strict=True):
            if isinstance(reply, Exception):
                if "NOSCRIPT" in str(reply):
                    self._script = None  # server restarted: load it again
                failed += run
            elif run[0][3] and not run[0][0].startswith(REPLY_PREFIX):
                self._sent_streams.add(prefix + run[0][0])
        if failed:
            logger.warning("redis rejected %d of %d messages", len(failed), len(items))
        return failed

    # -- trimming -------------------------------------------------------------------------

    async def _trim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.claim_interval_s)
            await self._heartbeat()
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
            self.link.counters.trimmed += lost
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

    def _wanted(self, channel: str) -> bool:
        """Read a stream only while the bus has a local subscriber on its channel."""
        link = self.link
        port = link.port
        return channel == link.own_reply or (port is not None and port.subscribed(channel))

    async def _discover(self) -> None:
        """Find selected streams: exact names, and the registry for wildcards."""
        cfg = self.cfg
        names = {c for c in cfg.channels if not is_pattern(c)}
        names.add(self.link.own_reply)  # replies to this bus's requests
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

    def _group(self, key: str) -> str:
        """The group the stream ``key`` is read through (per channel)."""
        link = self.link
        return link.group_of(self._known.get(key) or key[len(self.cfg.prefix) :])

    async def _ensure_group(self, key: str) -> None:
        cfg, link = self.cfg, self.link
        channel = self._known[key]
        if not link.fan_out(channel):  # a work queue
            start = "0" if cfg.start == "earliest" else self._start_id
        else:  # fan-out: a named consumer is durable, a generated name starts now
            start = "0" if cfg.consumer else self._start_id
        try:
            await self._client.xgroup_create(key, self._group(key), id=start, mkstream=True)
        except self._errors.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        if not channel.startswith(REPLY_PREFIX) and channel not in self._registered:
            await self._client.sadd(cfg.prefix + _REGISTRY, channel)  # found when reaping
            self._registered.add(channel)

    async def _read_own_pending(self, key: str) -> None:
        """Re-deliver entries this consumer read but never acknowledged (after a restart)."""
        last = "0"
        group, consumer = self._group(key), self.link.consumer
        while True:
            resp = await self._client.xreadgroup(
                group, consumer, {key: last}, count=self.cfg.batch_size
            )
            entries = resp[0][1] if resp else []
            if not entries:
                return
            await self._on_entries(key, entries, skip_holding=True)
            last = entries[-1][0]

    def _by_group(self) -> dict[str, dict[str, str]]:
        """The streams being read, grouped by the group they are read through."""
        out: dict[str, dict[str, str]] = {}
        for key in self._streams:
            out.setdefault(self._group(key), {})[key] = ">"
        return out

    async def _stream_loop(self) -> None:
        cfg = self.cfg
        while True:
            if time.monotonic() >= self._next_scan:
                await self._housekeeping()
            await self._activate()
            if not self._streams:
                await asyncio.sleep(cfg.block_ms / 1000.0)
                continue
            groups = self._by_group()
            block: int | None = cfg.block_ms if len(groups) == 1 else None
            got = 0
            try:
                for group, streams in groups.items():  # one XREADGROUP per group
                    reader = self._reader
                    if reader is None:  # close() ran under this loop (stop or reconnect)
                        raise self._errors.ConnectionError("redis stream reader was closed")
                    resp = await reader.xreadgroup(
                        group, self.link.consumer, streams, count=cfg.batch_size, block=block
                    )
                    for key, entries in resp or ():
                        got += len(entries)
                        await self._on_entries(key.decode(), entries, skip_holding=False)
            except self._errors.ResponseError as err:
                if "NOGROUP" not in str(err):
                    raise
                logger.warning("redis stream or group vanished (server restart?); recreating")
                self._streams.clear()
                self._next_scan = 0.0
                continue
            if block is None and not got:  # several groups: poll without blocking
                await asyncio.sleep(min(cfg.block_ms, 10) / 1000.0)

    async def _housekeeping(self) -> None:
        self._next_scan = time.monotonic() + self.cfg.claim_interval_s
        await self._heartbeat()
        await self._discover()
        link = self.link
        # fan-out groups have one member: nothing to take over
        await self._claim_stale([k for k, c in self._streams.items() if not link.fan_out(c)])
        lag = 0
        for key in self._streams:
            mine = self._group(key)
            for group in await self._client.xinfo_groups(key):
                if group.get("name") in (mine, mine.encode()):
                    lag += int(group.get("lag") or 0)
        link.server_lag = lag

    async def _claim_stale(self, keys: list[str]) -> None:
        """Take over entries a dead (or stuck) member left pending too long."""
        cfg = self.cfg
        for key in keys:
            start = "0-0"
            while True:
                resp = await self._client.xautoclaim(
                    key, self._group(key), self.link.consumer, cfg.claim_idle_ms,
                    start_id=start, count=cfg.batch_size,
                )  # fmt: skip
                start, entries = resp[0], resp[1]
                if entries:
                    logger.info("redis bridge took over %d stale entries of %s", len(entries), key)
                    await self._on_entries(key, entries, skip_holding=True)
                if start in (b"0-0", "0-0") or not entries:
                    break

    async def _on_entries(self, key: str, entries: list[Any], *, skip_holding: bool) -> None:
        link = self.link
        holding = self._holding
        for entry_id, fields in entries:
            token = (key, entry_id)
            if skip_holding and token in holding:
                continue  # still being handled here
            if fields is None:  # trimmed away while pending (counted by the trimmer)
                link.settle(token)
                continue
            raw = fields.get(_FIELD)
            if raw is None:
                reason: str | None = link.rejected(f"foreign entry on {key!r}: no 'm' field")
            else:
                holding.add(token)
                reason = await link.handle(raw, token, key)
            if reason is not None:
                holding.discard(token)
                await self.dead_letter(_raw_of(fields), reason, key)
                link.settle(token)

    async def _pubsub_loop(self) -> None:
        link = self.link
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                await asyncio.sleep(0.05)
                continue
            conn = pubsub.connection
            try:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            finally:
                if self._pubsub is not pubsub and conn is not None:
                    # close() ran under the read, whose retry may have connected it again
                    with contextlib.suppress(Exception):
                        await conn.disconnect()
            if msg is None or msg.get("type") != "pmessage":
                continue
            source = msg["channel"].decode()
            reason = await link.handle(msg["data"], None, source)
            if reason is not None:
                await self.dead_letter(msg["data"], reason, source)

    async def ack(self, tokens: list[Any]) -> None:
        """XACK per stream, pipelined."""
        by_key: dict[str, list[Any]] = {}
        for token in tokens:
            by_key.setdefault(token[0], []).append(token[1])
        if not by_key:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, ids in by_key.items():
            pipe.xack(key, self._group(key), *ids)
        await pipe.execute()
        self._holding.difference_update(tokens)

    async def dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        """XADD to ``prefix + "dlq"`` with the reason and source."""
        fields = {"raw": raw, "reason": reason, "source": source, "time": str(time.time())}
        await self._client.xadd(self.cfg.prefix + _DLQ, fields, maxlen=self.cfg.maxlen)


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw_of(fields: dict[Any, Any] | None) -> bytes:
    if not fields:
        return b""
    return b"".join(bytes(k) + b"=" + bytes(v) + b";" for k, v in fields.items())


def _fields(cfg: RedisBridgeConfig) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
