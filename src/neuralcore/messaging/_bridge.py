"""Seams for bridges (Redis, Kafka...): the protocol a bridge implements and outbound taps.

A bridge is started and stopped with the bus. Outbound, it calls :meth:`MessageBus.tap` to
see every message accepted on the channels it carries (on the event loop thread, in
publish order) and encodes them with ``bus.codec``. Inbound, it decodes and calls
:meth:`MessageBus.inject`, whose ``on_settled`` callback fires once local handlers acked or
dead-lettered the message, the moment to XACK or commit the offset. ``msg.origin`` holds
the id of the bus that first published a message; taps skip foreign-origin messages
unless asked, so bridges do not echo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from neuralcore.messaging._message import Message

if TYPE_CHECKING:
    from neuralcore.messaging._bus import MessageBus

__all__ = ("Bridge", "BridgeDirection", "Tap")

BridgeDirection = Literal["inbound", "outbound", "both"]


@runtime_checkable
class Bridge(Protocol):
    """What :meth:`MessageBus.add_bridge` accepts.

    Attributes
    ----------
    name : str
        Shown in logs and errors.
    channels : tuple of str
        Channel names or patterns (``"rag.*"``) the bridge carries.
    direction : {"inbound", "outbound", "both"}
        Which way messages flow.
    """

    name: str
    channels: tuple[str, ...]
    direction: BridgeDirection

    async def start(self, bus: MessageBus) -> None:
        """Connect; called by ``bus.start()`` (or at once when the bus is running)."""
        ...

    async def stop(self) -> None:
        """Flush and disconnect; called first by ``bus.stop()``."""
        ...


class Tap:
    """An outbound observer made by :meth:`MessageBus.tap`; :meth:`close` removes it.

    The callback runs synchronously on the event loop thread for each accepted message, in
    order; it must not block (buffer and hand off instead). Exceptions it raises are logged
    and counted as channel errors, never raised to the publisher.
    """

    __slots__ = ("_bus", "active", "callback", "include_remote", "selector")

    def __init__(
        self,
        bus: MessageBus,
        selector: str,
        callback: Callable[[Message], None],
        *,
        include_remote: bool,
    ) -> None:
        self._bus = bus
        self.selector = selector
        self.callback = callback
        self.include_remote = include_remote
        self.active = True

    def close(self) -> None:
        """Stop observing."""
        if self.active:
            self.active = False
            self._bus._remove_tap(self)
