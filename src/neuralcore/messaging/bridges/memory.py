"""An in-memory transport: the bridge machinery without a server, for fast tests.

:class:`MemoryBroker` stands in for Redis or Kafka inside one process: one append-only
stream per channel, consumer groups with pending entries and acknowledgements, a
dead-letter list, and a ``down`` switch that makes every call fail like a lost connection.
:class:`MemoryTransport` implements the bridge
:class:`~neuralcore.messaging.bridges.Transport` over it, so :class:`MemoryBridge` carries a
bus's channels with the one runner shared with
:class:`~neuralcore.messaging.bridges.RedisBridge` and
:class:`~neuralcore.messaging.bridges.KafkaBridge` (reconnect with backoff, bounded
outbound buffer and requeue, inbound dedup, acknowledgement after the local handlers
settled, fan-out or work-queue groups), so that logic is tested quickly and
deterministically; the real-server tests cover the transports themselves.

Examples
--------
>>> import asyncio
>>> from neuralcore.messaging import MessageBus
>>> async def main():
...     broker = MemoryBroker()
...     async with MessageBus() as a, MessageBus() as b:
...         for bus in (a, b):
...             bus.create_channel("jobs")
...         got = asyncio.Queue()
...         b.subscribe("jobs", lambda m: got.put_nowait(m.payload))
...         await b.add_bridge(MemoryBridge(broker, channels=("jobs",)))
...         await a.add_bridge(MemoryBridge(broker, channels=("jobs",)))
...         await a.publish_async("jobs", {"n": 1})
...         return await asyncio.wait_for(got.get(), 5)
>>> asyncio.run(main())
{'n': 1}
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Iterable
from typing import Any

from neuralcore.messaging._message import Message
from neuralcore.messaging.bridges._buffer import Outgoing
from neuralcore.messaging.bridges._config import BridgeConfig, Direction, channel_names
from neuralcore.messaging.bridges._runner import BridgeRunner
from neuralcore.messaging.bridges._transport import Link, Loop

__all__ = ("MemoryBridge", "MemoryBroker", "MemoryTransport")


@dataclasses.dataclass
class _Group:
    position: int  # index of the next entry to hand out
    pending: dict[int, str] = dataclasses.field(default_factory=dict)  # entry id -> consumer


class MemoryBroker:
    """In-process streams with consumer groups (see the module docstring).

    Attributes
    ----------
    streams : dict of str to list of (int, bytes)
        Entries ``(id, data)`` per channel, oldest first.
    dead_letters : list of (bytes, str, str)
        ``(raw, reason, source)`` of every dead-lettered record.
    down : bool
        While True every call raises :class:`ConnectionError` (a lost server).
    """

    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[int, bytes]]] = {}
        self.dead_letters: list[tuple[bytes, str, str]] = []
        self.down = False
        self._groups: dict[tuple[str, str], _Group] = {}
        self._ids = itertools.count(1)
        self._last = 0

    def check(self) -> None:
        """Raise :class:`ConnectionError` while :attr:`down`."""
        if self.down:
            raise ConnectionError("memory broker is down")

    def append(self, channel: str, data: bytes) -> int:
        """Add one entry to ``channel``'s stream; returns its id."""
        self.check()
        entry = self._last = next(self._ids)
        self.streams.setdefault(channel, []).append((entry, data))
        return entry

    def last_id(self) -> int:
        """The id of the newest entry of any stream (0 before the first)."""
        self.check()
        return self._last

    def join(self, channel: str, group: str, *, after: int) -> None:
        """Create ``group`` on ``channel`` if missing, reading entries with ids > ``after``."""
        self.check()
        start = sum(1 for entry, _ in self.streams.get(channel, ()) if entry <= after)
        self._groups.setdefault((channel, group), _Group(start))

    def read(self, channel: str, group: str, consumer: str, count: int) -> list[tuple[int, bytes]]:
        """Hand up to ``count`` new entries to ``consumer`` (they stay pending until acked)."""
        self.check()
        state = self._groups[(channel, group)]
        entries = self.streams.get(channel, [])[state.position : state.position + count]
        state.position += len(entries)
        state.pending.update((entry, consumer) for entry, _ in entries)
        return entries

    def ack(self, channel: str, group: str, ids: list[int]) -> None:
        """Acknowledge entries of ``group``."""
        self.check()
        pending = self._groups[(channel, group)].pending
        for entry in ids:
            pending.pop(entry, None)

    def pending(self, channel: str, group: str) -> int:
        """How many entries ``group`` handed out and did not get acknowledged."""
        state = self._groups.get((channel, group))
        return len(state.pending) if state is not None else 0

    def groups(self, channel: str) -> list[str]:
        """The groups that read ``channel``."""
        return sorted(g for c, g in self._groups if c == channel)


class MemoryBridge(BridgeRunner):
    """Carry bus channels over a :class:`MemoryBroker` (see the module docstring).

    Parameters
    ----------
    broker : MemoryBroker
        The shared in-process "server".
    config : BridgeConfig, optional
        Channel selection, direction, group(s) and the runner's settings.
    channels : str or iterable of str, optional
        Overrides ``config.channels`` (one name or pattern, or several).
    direction : {"out", "in", "both"}, optional
        Overrides ``config.direction``.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        config: BridgeConfig | None = None,
        *,
        channels: str | Iterable[str] | None = None,
        direction: Direction | None = None,
    ) -> None:
        cfg = config or BridgeConfig()
        overrides: dict[str, Any] = {}
        if channels is not None:
            overrides["channels"] = channel_names(channels)
        if direction is not None:
            overrides["direction"] = direction
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
        super().__init__(cfg, MemoryTransport(broker, cfg))
        self.broker = broker


class MemoryTransport:
    """The in-memory :class:`~neuralcore.messaging.bridges._transport.Transport`: every
    channel is a stream of the :class:`MemoryBroker`, read through consumer groups."""

    kind = "memory"
    max_in_flight = 1
    channel_keyed = True  # no keys at all

    def __init__(self, broker: MemoryBroker, cfg: BridgeConfig) -> None:
        self.broker = broker
        self.cfg = cfg
        self._link: Link | None = None
        self._joined: set[str] = set()
        self._start_id = -1

    @property
    def link(self) -> Link:
        """The runner driving this transport (set by :meth:`bind`)."""
        link = self._link
        if link is None:
            raise RuntimeError("memory transport used before bind()")
        return link

    @property
    def address(self) -> str:
        """``memory``."""
        return "memory"

    def bind(self, link: Link) -> None:
        """A new start: fan-out groups start at the next connect."""
        self._link = link
        self._start_id = -1
        self._joined.clear()

    async def connect(self) -> None:
        """Check the broker is up (the first connect fixes where fan-out groups start)."""
        if self._start_id < 0:
            self._start_id = self.broker.last_id()
        self.broker.check()

    async def close(self) -> None:
        """Nothing to close."""

    async def ping(self) -> None:
        """Fails while the broker is down."""
        self.broker.check()

    def transient(self, err: BaseException) -> bool:
        """:class:`ConnectionError` (the broker's ``down`` switch)."""
        return isinstance(err, ConnectionError)

    def persistent(self, channel: str) -> bool:
        """Every channel is a stream."""
        return True

    def key(self, msg: Message) -> bytes | None:
        """No keys."""
        return None

    def source_of(self, channel: str) -> str:
        """The stream is named after the channel."""
        return channel

    def scrub(self, text: str) -> str:
        """No secrets."""
        return text

    async def send(self, items: list[Outgoing]) -> list[Outgoing]:
        """Append each item to its channel's stream."""
        started = time.perf_counter()
        for channel, data, _, _, _ in items:
            self.broker.append(channel, data)
        self.link.counters.rtt(started)
        return []

    def loops(self) -> list[Loop]:
        """One reading loop on a receiving bridge."""
        return [self._read_loop] if self.cfg.receives else []

    async def _read_loop(self) -> None:
        while True:
            handled = 0
            for channel in list(self.broker.streams):
                if self._wanted(channel):
                    handled += await self._read(channel)
            if not handled:
                await asyncio.sleep(0.001)

    def _wanted(self, channel: str) -> bool:
        link = self.link
        port = link.port
        if channel == link.own_reply:
            return True
        return self.cfg.matches(channel) and port is not None and port.subscribed(channel)

    async def _read(self, channel: str) -> int:
        link = self.link
        group = link.group_of(channel)
        if channel not in self._joined:
            # like the real transports: a work queue takes the backlog, a fan-out bus what
            # was published after its bridge connected
            after = self._start_id if link.fan_out(channel) else 0
            self.broker.join(channel, group, after=after)
            self._joined.add(channel)
        entries = self.broker.read(channel, group, link.consumer, self.cfg.batch_size)
        for entry, data in entries:
            token = (channel, entry)
            reason = await link.handle(data, token, channel)
            if reason is not None:
                await self.dead_letter(data, reason, channel)
                link.settle(token)
        return len(entries)

    async def ack(self, tokens: list[Any]) -> None:
        """Acknowledge per channel and group."""
        by_channel: dict[str, list[int]] = {}
        for channel, entry in tokens:
            by_channel.setdefault(channel, []).append(entry)
        link = self.link
        for channel, ids in by_channel.items():
            self.broker.ack(channel, link.group_of(channel), ids)

    async def dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        """Keep it in :attr:`MemoryBroker.dead_letters`."""
        self.broker.dead_letters.append((raw, reason, source))
