"""Bridge seams of :class:`MessageBus`: bridge lifecycle, outbound taps, inbound inject.

See :mod:`neuralcore.messaging._bridge` for the protocol and how a bridge uses these.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from neuralcore.core import InputTypeError, InvalidInputError
from neuralcore.messaging._bridge import Bridge, Tap
from neuralcore.messaging._config import ChannelConfig
from neuralcore.messaging._message import Message, Tracker

if TYPE_CHECKING:
    from neuralcore.messaging._admission import Gate
    from neuralcore.messaging._bus import MessageBus
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._codec import Codec
    from neuralcore.messaging._config import BusConfig
    from neuralcore.messaging._host import BusHost
    from neuralcore.messaging._journal import Journal
    from neuralcore.messaging._registry import Registry
    from neuralcore.messaging._rpc import Requests
    from neuralcore.messaging._types import Outcome

__all__ = ("BridgeSeams",)

logger = logging.getLogger(__name__)
_PAGE = 4096  # outbox rows read per query when replaying


class BridgeSeams:
    """Mixin holding the seams a Redis/Kafka bridge builds on (split out to keep modules small)."""

    config: BusConfig
    bus_id: str
    running: bool
    _closed: bool
    _codec: Codec | None
    _gate: Gate
    _host: BusHost
    _requests: Requests
    _channels: dict[str, Channel]
    _bridges: list[Bridge]
    _registry: Registry
    _journal: Journal | None

    if TYPE_CHECKING:  # provided by MessageBus / Publisher; for the type checker only

        def _channel(self, name: str) -> Channel: ...

        def create_channel(self, channel: str | ChannelConfig) -> ChannelConfig: ...

        async def _inject(
            self, message: Message, on_settled: Callable[[Message, Outcome], None] | None
        ) -> bool: ...

    @property
    def codec(self) -> Codec:
        """The boundary codec (MessagePack or JSON), chosen once per bus."""
        if self._codec is None:
            from neuralcore.messaging._select import make_codec

            self._codec = make_codec(self.config.codec, max_size=self.config.max_message_size)
        return self._codec

    async def add_bridge(self, bridge: Bridge) -> None:
        """Attach a bridge; it starts with the bus (now, if the bus is running).

        Raises
        ------
        InputTypeError
            ``bridge`` lacks the :class:`Bridge` members.
        InvalidInputError
            It is already attached.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging import MessageBus
        >>> class Null:
        ...     name, channels, direction = "null", ("*",), "outbound"
        ...     async def start(self, bus): print("start")
        ...     async def stop(self): print("stop")
        >>> async def main():
        ...     bus = MessageBus()
        ...     await bus.add_bridge(Null())
        ...     async with bus:
        ...         pass
        >>> asyncio.run(main())
        start
        stop
        """
        if not isinstance(bridge, Bridge):
            raise InputTypeError(f"{type(bridge).__name__} does not implement the Bridge protocol")
        if bridge in self._bridges:
            raise InvalidInputError(f"bridge {bridge.name!r} is already attached")
        self._bridges.append(bridge)
        if self.running and not self._closed:
            await bridge.start(self._as_bus())

    async def remove_bridge(self, bridge: Bridge) -> None:
        """Detach a bridge, stopping it if the bus is running."""
        if bridge not in self._bridges:
            raise InvalidInputError(f"bridge {getattr(bridge, 'name', bridge)!r} is not attached")
        self._bridges.remove(bridge)
        if self.running:
            await self._stop_bridge(bridge)

    async def _stop_bridge(self, bridge: Bridge) -> None:
        try:
            await bridge.stop()
        except Exception:
            logger.exception("bridge %r failed to stop", bridge.name)

    def bridges(self) -> list[Bridge]:
        """Attached bridges."""
        return list(self._bridges)

    def tap(
        self,
        channel: str | tuple[str, ...],
        callback: Callable[[Message], None],
        *,
        include_remote: bool = False,
        durable: bool = False,
        name: str | None = None,
        auth: str | None = None,
    ) -> Tap:
        """Observe messages accepted on ``channel`` (name or pattern), for outbound bridges.

        ``callback(message)`` runs on the event loop thread after the message is accepted
        (and durable on persistent channels), in publish order. Messages whose ``origin``
        is another bus (injected by a bridge) are skipped unless ``include_remote``.

        Parameters
        ----------
        channel : str or tuple of str
            A channel name, a pattern with ``*``, or several (a channel matched by more
            than one is seen once).
        callback : callable
            ``callback(message)``; must not block.
        include_remote : bool
            Also see messages injected from other buses.
        durable : bool
            Record messages of persistent channels in the bus's file, in the publish's
            own group commit, until :meth:`Tap.ack`; the ones never acknowledged are given
            to ``callback`` again (oldest first, before new ones) when a tap of the same
            ``name`` is made in a later run: at once if the bus is running, else at
            :meth:`start`. Replayed messages keep their original ``origin``.
        name : str or None
            Required with ``durable``; unique among the bus's durable taps.
        auth : str or None
            API key: a tap reads messages, so it needs the right to subscribe on every
            protected channel it selects (also on those created later).

        Returns
        -------
        Tap

        Raises
        ------
        ChannelNotFoundError
            A plain name that is not a channel.
        AuthorizationError
            ``auth`` may not subscribe on a selected channel.
        InvalidInputError
            ``durable`` without a ``name``, or a durable tap of that name already open.

        Examples
        --------
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("out")
        >>> seen = []
        >>> tap = bus.tap("out", seen.append)
        >>> _ = bus.publish("out", 1)
        >>> [m.payload for m in seen]
        [1]
        """
        return self._open_tap(
            channel,
            callback,
            include_remote=include_remote,
            durable=durable,
            name=name,
            auth=auth,
            trusted=False,
        )

    def _open_tap(
        self,
        channel: str | tuple[str, ...],
        callback: Callable[[Message], None],
        *,
        include_remote: bool,
        durable: bool,
        name: str | None,
        auth: str | None,
        trusted: bool,
    ) -> Tap:
        """:meth:`tap`; ``trusted`` taps (the bus's own bridge port) skip authorization."""
        if not callable(callback):
            raise InputTypeError(f"callback must be callable, got {type(callback).__name__}")
        if durable and not name:
            raise InvalidInputError("a durable tap needs a name (its records are kept under it)")
        if durable and name in self._registry.durable_taps:
            raise InvalidInputError(f"a durable tap named {name!r} is already open")
        tap = Tap(
            self._host, channel, callback,
            include_remote=include_remote, durable=durable, name=name,
        )  # fmt: skip
        tap._auth, tap._trusted = auth, trusted
        matched: dict[str, Channel] = {}
        for selector in tap.selection.names:
            matched[selector] = ch = self._channel(selector)
            if not trusted:
                self._gate.authorize(ch, auth, "subscribe")
        if tap.selection.is_pattern:  # a pattern reaches only the channels it may read
            for n, c in self._channels.items():
                if (
                    n not in matched
                    and tap.matches(n)
                    and (trusted or self._gate.pattern_may(c, auth, f"tap {tap.selector!r}"))
                ):
                    matched[n] = c
        self._registry.add_tap(tap)
        for ch in matched.values():
            ch.taps.append(tap)
            ch.refresh()
        if durable and self._journal is not None:  # owed the rows recorded so far
            self._registry.replay_due[tap] = self._journal.reserve_none()
            if self.running:
                self._replay(tap)
        return tap

    def _records(self, channel: str) -> bool:
        ch = self._channels.get(channel)
        return ch is not None and ch.config.persistent and self._journal is not None

    def _forwarded(self, name: str, seqs: list[int]) -> None:
        if self._journal is not None and seqs:
            self._journal.forwarded(name, seqs)

    def _replay(self, tap: Tap) -> None:
        """Give a durable tap the messages it never acknowledged, oldest first (read in
        pages: a long outbox is not decoded all at once)."""
        upto = self._registry.replay_due.pop(tap, None)
        journal = self._journal
        if upto is None or journal is None or tap.name is None or not tap.active:
            return
        after, count = 0, 0
        while True:
            page = journal.outbox(tap.name, after, _PAGE, _untracked)
            rows = [m for m in page if _seq(m) <= upto]
            if not rows:
                break
            for msg in rows:
                try:
                    tap.callback(msg)
                except Exception:
                    logger.exception(
                        "durable tap %r failed on replayed message %s", tap.name, msg.id
                    )
            after, count = _seq(rows[-1]), count + len(rows)
        if count:
            logger.info("durable tap %r: replayed %d unforwarded messages", tap.name, count)

    def _outbox_rows(self, ch: Channel, msgs: list[Message], first: int) -> list[tuple[int, str]]:
        """Outbox rows of ``msgs`` for the channel's durable taps (same commit as them)."""
        rows = []
        for tap in ch.taps:
            if tap.durable and tap.name is not None:
                for i, msg in enumerate(msgs):
                    if tap.include_remote or msg.origin == self.bus_id:
                        rows.append((first + i, tap.name))
        return rows

    def _remove_tap(self, tap: Tap) -> None:
        for ch in self._registry.remove_tap(tap):
            ch.taps = [t for t in ch.taps if t is not tap]
            ch.refresh()

    async def inject(
        self,
        message: Message,
        *,
        on_settled: Callable[[Message, Outcome], None] | None = None,
        create: bool = False,
    ) -> bool:
        """Deliver a message that arrived from elsewhere (a bridge), keeping its envelope.

        Id, priority, headers, timestamp and origin are kept; publish hooks, authorization,
        rate limits and idempotency are not applied (the bridge is trusted). The channel's
        overflow policy and persistence are. ``on_settled(message, outcome)`` fires on the
        loop once every local target acked or dead-lettered it (or it was dropped/expired):
        the moment to XACK or commit the offset. Replies to this bus's requests
        (channel ``_reply.<bus_id>``) resolve the waiting :meth:`request` directly.

        Parameters
        ----------
        message : Message
            The decoded envelope.
        on_settled : callable or None
            ``on_settled(message, outcome)``, called once on the loop.
        create : bool
            Create a missing channel from ``BusConfig.default_channel`` (plain defaults
            when that is ``None``) instead of raising ``ChannelNotFoundError``.

        Returns
        -------
        bool
            ``False`` when the overflow policy dropped the message.

        Examples
        --------
        >>> import asyncio
        >>> from neuralcore.messaging import Message, MessageBus
        >>> async def main():
        ...     async with MessageBus() as bus:
        ...         bus.create_channel("in")
        ...         bus.subscribe("in", lambda m: None)
        ...         settled = asyncio.get_running_loop().create_future()
        ...         remote = Message("in", {"x": 1}, id="peer-7", origin="peer")
        ...         await bus.inject(remote, on_settled=lambda m, o: settled.set_result(o))
        ...         return await settled
        >>> asyncio.run(main())
        'acked'
        """
        if message.channel == f"_reply.{self.bus_id}":
            self._requests.resolve(str(message.correlation_id), message.payload)
            if on_settled is not None:
                on_settled(message, "acked")
            return True
        if create and message.channel not in self._channels:
            self.create_default_channel(message.channel)
        return await self._inject(message, on_settled)

    def create_default_channel(self, name: str) -> ChannelConfig:
        """Create channel ``name`` from the ``BusConfig.default_channel`` template.

        Plain :class:`ChannelConfig` defaults are used when the template is ``None``.

        Examples
        --------
        >>> from neuralcore.messaging import BusConfig, ChannelConfig, MessageBus
        >>> template = ChannelConfig(name="template", max_size=64, overflow="drop_oldest")
        >>> bus = MessageBus(BusConfig(default_channel=template))
        >>> cfg = bus.create_default_channel("remote.jobs")
        >>> cfg.name, cfg.max_size, cfg.overflow
        ('remote.jobs', 64, 'drop_oldest')
        """
        template = self.config.default_channel
        cfg = (
            ChannelConfig(name=name)
            if template is None
            else dataclasses.replace(template, name=name)
        )
        return self.create_channel(cfg)

    def _reply_channel(self, to: str) -> str:
        """The local channel a reply to bus ``to`` is published on (a bridge carries it)."""
        name = f"_reply.{to}"
        if name not in self._channels:  # replies are small and short-lived: never block
            self.create_channel(ChannelConfig(name=name, max_size=1024, overflow="drop_oldest"))
        return name

    def _as_bus(self) -> MessageBus:
        return cast("MessageBus", self)  # the mixin only ever lives inside MessageBus


def _seq(msg: Message) -> int:
    tracker = msg._tracker
    return tracker.seq or 0 if tracker is not None else 0


def _untracked(_tracker: Tracker, _msg: Message) -> None:
    """Done callback of replayed outbox messages (they are never dispatched)."""
