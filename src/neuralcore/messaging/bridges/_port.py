"""What a bridge needs from the local bus, as one small protocol.

:func:`port_for` adapts a :class:`~neuralcore.messaging.MessageBus` to it, so the bridge
transports depend on these five members only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from neuralcore.messaging._message import Message
from neuralcore.messaging._types import Outcome

__all__ = ("BusPort", "OnSettled", "Sink")

Sink = Callable[[Message], None]
OnSettled = Callable[[Message, Outcome], None]


class BusPort(Protocol):
    """The bus seams a bridge uses."""

    @property
    def origin(self) -> str:
        """Id of the local bus (stamped on the messages it publishes)."""
        ...

    def watch(self, channels: tuple[str, ...], sink: Sink) -> Callable[[], None]:
        """Call ``sink`` with every message published locally on ``channels``.

        Returns a function that stops watching.
        """
        ...

    async def inject(self, msg: Message, on_settled: OnSettled) -> bool:
        """Deliver a remote message locally; ``on_settled`` fires once handlers settle it.

        Returns False when the local channel's overflow policy dropped it.
        """
        ...

    def encode(self, msg: Message) -> bytes:
        """The bus codec's wire form of ``msg`` (``SerializationError`` if impossible)."""
        ...

    def decode(self, data: bytes) -> Message:
        """Inverse of :meth:`encode`; ``SerializationError`` on foreign or bad bytes."""
        ...
