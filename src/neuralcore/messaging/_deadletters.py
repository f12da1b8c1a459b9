"""Dead letters: giving up on a message, the record of those given up on, and the headers
they travel with to a dead-letter channel."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from neuralcore.messaging._message import Message

if TYPE_CHECKING:
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._host import BusState
    from neuralcore.messaging._publish import Pipeline
    from neuralcore.messaging._subscription import Subscription
    from neuralcore.messaging._supervisor import Supervisor

__all__ = ("DeadLetter", "DeadLetters", "dead_headers")

logger = logging.getLogger(__name__)

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
    """The dead letters of this bus (this run, and earlier runs of persistent channels),
    and the one way a message is given up on: recorded (in memory, and in the file for a
    persistent channel), forwarded to the channel's dead-letter channel, then settled.

    Parameters
    ----------
    state : BusState, optional
        The bus's lifecycle (its journal records persistent channels' dead letters).
    pipeline : Pipeline, optional
        Publishes the copies to dead-letter channels.
    supervisor : Supervisor, optional
        Runs each forward as a background task that ``drain()`` waits for.

    Without them (as below) it is only the record.

    Examples
    --------
    >>> dl = DeadLetters()
    >>> dl.add(Message("a", 1), "ValueError: x", "h")
    >>> [d.error for d in dl.of("a")]
    ['ValueError: x']
    """

    __slots__ = ("_kept", "_pipeline", "_state", "_supervisor")

    def __init__(
        self,
        state: BusState | None = None,
        pipeline: Pipeline | None = None,
        supervisor: Supervisor | None = None,
        *,
        kept: int = KEPT,
    ) -> None:
        self._kept: deque[DeadLetter] = deque(maxlen=kept)
        self._state = state
        self._pipeline = pipeline
        self._supervisor = supervisor

    def add(self, msg: Message, error: str, subscriber: str, ts: float | None = None) -> None:
        """Record one dead letter."""
        self._kept.append(DeadLetter(msg, error, subscriber, time.time() if ts is None else ts))

    def of(self, channel: str) -> list[DeadLetter]:
        """The dead letters of ``channel``, oldest first."""
        return [d for d in self._kept if d.message.channel == channel]

    def all(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        return list(self._kept)

    def give_up(self, ch: Channel, sub: Subscription, msg: Message, err: BaseException) -> None:
        """``sub`` failed ``msg`` for the last time: record it, forward a copy to the
        dead-letter channel (in the background), and settle it once the copy is there."""
        from neuralcore.messaging._journal import describe

        assert self._pipeline is not None
        assert self._supervisor is not None
        text = describe(err)
        self.add(msg, text, sub.name)
        journal = self._state.journal if self._state is not None else None
        if ch.config.persistent and journal is not None:
            journal.dead_letter(ch.name, msg, sub.name, text)
        dlq = ch.config.dead_letter
        if dlq is None:
            ch.settle(msg, "dead_lettered")
            return
        headers = dead_headers(msg, text, ch.name, sub.name)
        self._supervisor.spawn(
            self._forward(ch, msg, dlq, headers), f"bus:dead-letter:{ch.name}", awaited=True
        )

    def give_up_restored(self, ch: Channel, msg: Message, error: str) -> None:
        """A restored message whose stored attempts are used up: dead-letter it now."""
        from neuralcore.messaging._journal import RESTORE_SUBSCRIBER

        journal = self._state.journal if self._state is not None else None
        assert journal is not None
        assert self._pipeline is not None
        ch.stats.dead_lettered += 1
        logger.error("channel %r: message %s dead-lettered at restore: %s", ch.name, msg.id, error)
        self.add(msg, error, RESTORE_SUBSCRIBER)
        dlq = ch.config.dead_letter
        if dlq is not None:
            headers = dead_headers(msg, error, ch.name, RESTORE_SUBSCRIBER)
            self._pipeline.publish_sync(
                dlq, msg.payload, msg.priority, headers, None, None, internal=True
            )
        journal.exhausted(ch.name, msg, error)

    async def _forward(self, ch: Channel, msg: Message, dlq: str, headers: dict[str, Any]) -> None:
        """Publish to the dead-letter channel, and settle the original only once it is there."""
        assert self._pipeline is not None
        try:
            await self._pipeline.publish_one(
                dlq, msg.payload, msg.priority, headers, None, None, internal=True
            )
        except Exception:
            logger.exception("could not forward message %s to dead-letter channel %r", msg.id, dlq)
        ch.settle(msg, "dead_lettered")


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
