"""What a bridge needs from the local bus, as one small protocol.

:func:`port_for` adapts a :class:`~neuralcore.messaging.MessageBus` to it, so the bridge
transports depend on these members only. Channel selections follow the bus's one grammar,
:class:`neuralcore.messaging._routing.Selector` (``*``, ``?``, ``[...]``). A port that
also implements :class:`DurablePort` (the MessageBus one does) lets a bridge keep the
messages of persistent channels in the bus's SQLite outbox until the server confirmed them,
so they survive a crash of the process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from neuralcore.messaging._message import Message
from neuralcore.messaging._types import Outcome

__all__ = ("BusPort", "DurablePort", "OnSettled", "Sink")

Sink = Callable[[Message], object]
"""A bridge's tap callback: returns True when it took the message for sending (the bus
then keeps no local copy of it when the channel has no local subscriber)."""
OnSettled = Callable[[Message, Outcome], None]


class BusPort(Protocol):
    """The bus seams a bridge uses."""

    @property
    def origin(self) -> str:
        """Id of the local bus (stamped on the messages it publishes)."""
        ...

    def watch(self, channels: tuple[str, ...], sink: Sink) -> Callable[[], None]:
        """Call ``sink`` with every message published locally on ``channels``.

        ``sink`` returns True when it took the message for sending: a message taken so
        on a channel without a local subscriber is not queued locally (it was delivered
        over the bridge; nobody here would ever take it). Returns a function that stops
        watching.
        """
        ...

    async def inject(self, msg: Message, on_settled: OnSettled) -> bool:
        """Deliver a remote message locally; ``on_settled`` fires once handlers settle it.

        Returns False when the local channel's overflow policy dropped it.
        """
        ...

    def subscribed(self, channel: str) -> bool:
        """True when the local bus has at least one active subscriber (direct or pattern)
        whose selection matches ``channel``.

        A bridge uses it so that a bus with no local subscriber for a channel never
        claims messages of that channel from a consumer group.
        """
        ...

    def encode(self, msg: Message) -> bytes:
        """The bus codec's wire form of ``msg`` (``SerializationError`` if impossible)."""
        ...

    def decode(self, data: bytes) -> Message:
        """Inverse of :meth:`encode`; ``SerializationError`` on foreign or bad bytes."""
        ...


class DurablePort(BusPort, Protocol):
    """Extra seams of a bus with a durable outbox (persistent channels, SQLite)."""

    def watch_durable(self, channels: tuple[str, ...], sink: Sink, name: str) -> Callable[[], None]:
        """Like :meth:`BusPort.watch`, but messages of persistent channels stay recorded
        under ``name`` until :meth:`forwarded` (by :meth:`seq`); unforwarded ones of an
        earlier run are given to ``sink`` first (with their original origin)."""
        ...

    def records(self, channel: str) -> bool:
        """True when ``channel``'s messages are recorded until forwarded."""
        ...

    def wire(self, msg: Message) -> bytes:
        """``msg`` encoded like :meth:`BusPort.encode`; a message the bus just recorded
        comes with the bytes it stored (no second encode)."""
        ...

    def seq(self, msg: Message) -> int:
        """The outbox order of a recorded message (0 when it is not recorded)."""
        ...

    def forwarded(self, name: str, seqs: list[int]) -> None:
        """The server confirmed these messages: delete their records (batched)."""
        ...

    def outbox(self, name: str, after: int, limit: int) -> list[Message]:
        """Up to ``limit`` recorded messages with an order above ``after``, oldest first."""
        ...
