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

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from neuralcore.messaging._message import Message
from neuralcore.messaging._routing import Selector

if TYPE_CHECKING:
    from neuralcore.messaging._bus import MessageBus
    from neuralcore.messaging._host import TapHost

__all__ = ("Bridge", "BridgeDirection", "Tap")

BridgeDirection = Literal["inbound", "outbound", "both"]


@runtime_checkable
class Bridge(Protocol):
    """What :meth:`MessageBus.add_bridge` accepts.

    Attributes
    ----------
    name : str
        Shown in logs and errors (read-only).
    channels : tuple of str
        Channel names or patterns (``"rag.*"``) the bridge carries (read-only).
    direction : {"inbound", "outbound", "both"}
        Which way messages flow (read-only).
    """

    # Read-only properties, not attributes: a bridge that exposes them as properties (the
    # built-in bridges do) satisfies the protocol under ``mypy --strict``; a plain
    # attribute still does.
    @property
    def name(self) -> str:
        """Shown in logs and errors."""
        ...

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names or patterns the bridge carries."""
        ...

    @property
    def direction(self) -> BridgeDirection:
        """``"inbound"``, ``"outbound"`` or ``"both"``."""
        ...

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

    A *durable* tap (``durable=True``) records every message of a persistent channel it
    sees in the bus's SQLite file, in the publish's own group commit, until :meth:`ack`
    says it was forwarded; unacknowledged ones are given to the callback again when a tap
    of the same ``name`` is made after a restart (oldest first).

    Attributes
    ----------
    selector : str or tuple of str
        What was tapped: a channel name, a pattern, or several of them.
    name : str or None
        The durable tap's name (its records in the file are kept under it).
    durable : bool
        Whether messages of persistent channels are recorded until acknowledged.
    """

    __slots__ = (
        "_auth",
        "_host",
        "_trusted",
        "active",
        "callback",
        "durable",
        "forwards",
        "include_remote",
        "name",
        "selection",
        "selector",
        "selectors",
    )

    def __init__(
        self,
        host: TapHost,
        selector: str | tuple[str, ...],
        callback: Callable[[Message], object],
        *,
        include_remote: bool,
        durable: bool = False,
        name: str | None = None,
    ) -> None:
        self._host = host
        self._auth: str | None = None  # the API key it was made with (never shown)
        self._trusted = False  # made by the bus's own bridge port: not authorized
        # An outbound bridge's tap (made by the bus's bridge port): a callback that
        # returns True took the message for sending (see Pipeline.give_taps).
        self.forwards = False
        self.selector = selector
        self.selection = Selector(selector)
        self.selectors = self.selection.texts
        self.callback = callback
        self.include_remote = include_remote
        self.durable = durable
        self.name = name
        self.active = True

    def matches(self, channel: str) -> bool:
        """True when ``channel`` is selected by this tap.

        Examples
        --------
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("rag.q")
        >>> tap = bus.tap(("rag.*", "rag.q"), print)
        >>> tap.matches("rag.new"), tap.matches("jobs")
        (True, False)
        """
        return self.selection.matches(channel)

    def records(self, channel: str) -> bool:
        """True when messages of ``channel`` are recorded until :meth:`ack` (durable tap on
        a persistent channel)."""
        return self.durable and self._host.records(channel)

    def ack(self, messages: Iterable[Message]) -> None:
        """Mark messages (as given to the callback) forwarded: their records are deleted
        in the bus's next group commit (not waited for).

        Messages that were never recorded are ignored; a lost ack (crash) only means the
        message is given to the tap again after the restart.

        Examples
        --------
        >>> from neuralcore.messaging import MessageBus
        >>> bus = MessageBus()
        >>> _ = bus.create_channel("out")
        >>> tap = bus.tap("out", lambda m: tap.ack([m]), durable=True, name="demo")
        >>> bus.publish("out", 1).payload
        1
        """
        if self.durable and self.name is not None:
            seqs = [t.seq for t in (m._tracker for m in messages) if t is not None and t.seq]
            self._host.forwarded(self.name, seqs)

    def close(self) -> None:
        """Stop observing (a durable tap's records stay for its next incarnation)."""
        if self.active:
            self.active = False
            self._host.remove_tap(self)
