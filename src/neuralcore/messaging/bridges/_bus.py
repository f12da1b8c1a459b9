"""Adapter from :class:`~neuralcore.messaging.MessageBus` to the :class:`BusPort` seams."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neuralcore.core import ChannelNotFoundError
from neuralcore.messaging._message import Message
from neuralcore.messaging.bridges._port import BusPort, OnSettled, Sink

if TYPE_CHECKING:
    from neuralcore.messaging._bus import MessageBus

__all__ = ("MessageBusPort", "port_for")

logger = logging.getLogger(__name__)


class MessageBusPort:
    """:class:`BusPort` over a real bus: ``tap`` out, ``inject`` in, ``bus.codec`` on the wire.

    A channel that arrives from the server but does not exist locally is created with
    default settings (the bridge's channel selection asked for it).
    """

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self._codec = bus.codec

    @property
    def origin(self) -> str:
        """The bus id."""
        return self.bus.bus_id

    def watch(self, channels: tuple[str, ...], sink: Sink) -> Callable[[], None]:
        """One tap per selector; a channel matched by several selectors is seen once."""

        owner: dict[str, str | None] = {}  # channel -> the selector that reports it

        def first_only(selector: str) -> Callable[[Message], None]:
            def callback(msg: Message) -> None:
                channel = msg.channel
                first = owner.get(channel, "")
                if first == "":
                    first = owner[channel] = _first_match(channels, channel)
                if first == selector:
                    sink(msg)

            return callback

        if len(channels) == 1:  # the usual case: no overlap to resolve, tap the sink itself
            if not _is_pattern(channels[0]):
                self._ensure_channel(channels[0])
            tap = self.bus.tap(channels[0], sink)
            return tap.close

        taps = []
        for selector in channels:
            if not _is_pattern(selector):
                self._ensure_channel(selector)
            taps.append(self.bus.tap(selector, first_only(selector)))

        def close() -> None:
            for tap in taps:
                tap.close()

        return close

    async def inject(self, msg: Message, on_settled: OnSettled) -> bool:
        """Deliver locally; ``on_settled`` fires once local handlers settled it."""
        try:
            return await self.bus.inject(msg, on_settled=on_settled)
        except ChannelNotFoundError:
            self._ensure_channel(msg.channel)
            return await self.bus.inject(msg, on_settled=on_settled)

    def encode(self, msg: Message) -> bytes:
        """``bus.codec.encode``."""
        return self._codec.encode(msg)

    def decode(self, data: bytes) -> Message:
        """``bus.codec.decode``."""
        return self._codec.decode(data)

    def _ensure_channel(self, name: str) -> None:
        if name not in self.bus.channels():
            logger.info("bridge: creating local channel %r with default settings", name)
            self.bus.create_channel(name)


def port_for(bus: Any) -> BusPort:
    """The :class:`BusPort` of ``bus`` (a MessageBus, or already a port)."""
    from neuralcore.messaging._bus import MessageBus

    if isinstance(bus, MessageBus):
        return MessageBusPort(bus)
    if all(hasattr(bus, a) for a in ("origin", "watch", "inject", "encode", "decode")):
        port: BusPort = bus
        return port
    raise TypeError(f"cannot bridge a {type(bus).__name__}: expected a MessageBus")


def _is_pattern(channel: str) -> bool:
    return any(ch in channel for ch in "*?[")


def _first_match(selectors: tuple[str, ...], channel: str) -> str | None:
    for selector in selectors:
        if fnmatch.fnmatchcase(channel, selector):
            return selector
    return None
