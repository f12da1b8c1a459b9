"""Dead letters: the record of messages given up on, and the headers they travel with."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, NamedTuple

from neuralcore.messaging._message import Message

__all__ = ("DeadLetter", "DeadLetters", "dead_headers")

KEPT = 10_000
"""Dead letters kept in memory (the oldest go first); persistent ones stay in the file."""


class DeadLetter(NamedTuple):
    """A message given up on after ``max_attempts`` failed deliveries.

    Attributes
    ----------
    message : Message
        The message as last attempted.
    error : str
        ``"ExceptionType: text"`` of the last failure.
    subscriber : str
        Name of the subscription that failed (``"<restore>"``: found unreadable or out of
        attempts when the channel was restored).
    timestamp : float
        When it was dead-lettered (``time.time()``).
    """

    message: Message
    error: str
    subscriber: str
    timestamp: float


class DeadLetters:
    """The dead letters of this bus (this run, and earlier runs of persistent channels).

    Examples
    --------
    >>> dl = DeadLetters()
    >>> dl.add(Message("a", 1), "ValueError: x", "h")
    >>> [d.error for d in dl.of("a")]
    ['ValueError: x']
    """

    __slots__ = ("_kept",)

    def __init__(self, kept: int = KEPT) -> None:
        self._kept: deque[DeadLetter] = deque(maxlen=kept)

    def add(self, msg: Message, error: str, subscriber: str, ts: float | None = None) -> None:
        """Record one dead letter."""
        self._kept.append(DeadLetter(msg, error, subscriber, time.time() if ts is None else ts))

    def of(self, channel: str) -> list[DeadLetter]:
        """The dead letters of ``channel``, oldest first."""
        return [d for d in self._kept if d.message.channel == channel]

    def all(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        return list(self._kept)


def dead_headers(msg: Message, error: str, channel: str, subscriber: str) -> dict[str, Any]:
    """Headers of the copy sent to a dead-letter channel."""
    return {
        **(msg._headers or {}),
        "dead_letter_error": error,
        "dead_letter_channel": channel,
        "dead_letter_subscriber": subscriber,
        "dead_letter_attempts": msg.attempt,
        "original_id": msg.id,
    }
