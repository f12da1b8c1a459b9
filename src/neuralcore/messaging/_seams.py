"""Bridge seams of :class:`MessageBus`: bridge lifecycle, outbound taps, inbound inject.

See :mod:`neuralcore.messaging._bridge` for the protocol and how a bridge uses these.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, cast

from neuralcore.core import InputTypeError, InvalidInputError
from neuralcore.messaging._bridge import Bridge, Tap
from neuralcore.messaging._message import Message

if TYPE_CHECKING:
    from neuralcore.messaging._bus import MessageBus
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._codec import Codec
    from neuralcore.messaging._config import BusConfig
    from neuralcore.messaging._types import Outcome

__all__ = ("BridgeSeams",)

logger = logging.getLogger(__name__)


class BridgeSeams:
    """Mixin holding the seams a Redis/Kafka bridge builds on (split out to keep modules small)."""

    config: BusConfig
    bus_id: str
    running: bool
    _closed: bool
    _codec: Codec | None
    _channels: dict[str, Channel]
    _bridges: list[Bridge]
    _pattern_taps: list[Tap]

    if TYPE_CHECKING:  # provided by MessageBus / Publisher; for the type checker only

        def _channel(self, name: str) -> Channel: ...

        def _resolve_reply(self, cid: str, payload: Any) -> None: ...

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
        self, channel: str, callback: Callable[[Message], None], *, include_remote: bool = False
    ) -> Tap:
        """Observe messages accepted on ``channel`` (name or pattern), for outbound bridges.

        ``callback(message)`` runs on the event loop thread after the message is accepted
        (and durable on persistent channels), in publish order. Messages whose ``origin``
        is another bus (injected by a bridge) are skipped unless ``include_remote``.

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
        tap = Tap(self._as_bus(), channel, callback, include_remote=include_remote)
        if "*" in channel:
            self._pattern_taps.append(tap)
            matched = [c for n, c in self._channels.items() if fnmatchcase(n, channel)]
        else:
            matched = [self._channel(channel)]
        for ch in matched:
            ch.taps.append(tap)
            ch.refresh()
        return tap

    def _remove_tap(self, tap: Tap) -> None:
        self._pattern_taps = [t for t in self._pattern_taps if t is not tap]
        for ch in self._channels.values():
            if tap in ch.taps:
                ch.taps = [t for t in ch.taps if t is not tap]
                ch.refresh()

    async def inject(
        self,
        message: Message,
        *,
        on_settled: Callable[[Message, Outcome], None] | None = None,
    ) -> bool:
        """Deliver a message that arrived from elsewhere (a bridge), keeping its envelope.

        Id, priority, headers, timestamp and origin are kept; publish hooks, authorization,
        rate limits and idempotency are not applied (the bridge is trusted). The channel's
        overflow policy and persistence are. ``on_settled(message, outcome)`` fires on the
        loop once every local target acked or dead-lettered it (or it was dropped/expired):
        the moment to XACK or commit the offset. Replies to this bus's requests
        (channel ``_reply.<bus_id>``) resolve the waiting :meth:`request` directly.

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
            self._resolve_reply(str(message.correlation_id), message.payload)
            if on_settled is not None:
                on_settled(message, "acked")
            return True
        return await self._inject(message, on_settled)

    def _as_bus(self) -> MessageBus:
        return cast("MessageBus", self)  # the mixin only ever lives inside MessageBus
