"""Taps and their durable outbox: what outbound bridges watch, owned by one part of the bus.

The bus composes one :class:`Taps` and delegates :meth:`MessageBus.tap` to it; the
bridge port (:mod:`neuralcore.messaging._port`) uses it for ``watch``, ``records``,
``forwarded`` and ``outbox``. It sees the bus only through :class:`TapsHost`, and is
itself what each :class:`Tap` sees (:class:`~neuralcore.messaging._host.TapHost`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from neuralcore.core import InputTypeError, InvalidInputError
from neuralcore.messaging._bridge import Tap
from neuralcore.messaging._message import Message, Tracker

if TYPE_CHECKING:
    from neuralcore.messaging._admission import Gate
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._journal import Journal
    from neuralcore.messaging._registry import Registry

__all__ = ("Taps", "TapsHost")

logger = logging.getLogger(__name__)
_PAGE = 4096  # outbox rows read per query when replaying


class TapsHost(Protocol):
    """What :class:`Taps` needs from its bus: lifecycle and the durable record."""

    @property
    def running(self) -> bool:
        """The bus is started (a durable tap made now replays at once)."""
        ...

    @property
    def journal(self) -> Journal | None:
        """The durable record (outbox rows), or ``None`` for an in-memory bus."""
        ...


class Taps:
    """Opens, closes and replays taps; writes and deletes their outbox rows. Each
    :class:`Tap` it makes talks back to it (``records``, ``forwarded``, ``remove_tap``)."""

    __slots__ = ("_bus_id", "_gate", "_host", "_registry")

    def __init__(self, host: TapsHost, registry: Registry, gate: Gate, bus_id: str) -> None:
        self._host = host
        self._registry = registry
        self._gate = gate
        self._bus_id = bus_id

    def open(
        self,
        channel: str | tuple[str, ...],
        callback: Callable[[Message], object],
        *,
        include_remote: bool,
        durable: bool,
        name: str | None,
        auth: str | None,
        trusted: bool,
        forwards: bool = False,
    ) -> Tap:
        """:meth:`MessageBus.tap`; ``trusted`` taps (the bus's own bridge port) skip
        authorization; ``forwards`` marks an outbound bridge's tap, whose callback returns
        True when it took a message for sending."""
        if not callable(callback):
            raise InputTypeError(f"callback must be callable, got {type(callback).__name__}")
        if durable and not name:
            raise InvalidInputError("a durable tap needs a name (its records are kept under it)")
        if durable and name in self._registry.durable_taps:
            raise InvalidInputError(f"a durable tap named {name!r} is already open")
        tap = Tap(
            self, channel, callback,
            include_remote=include_remote, durable=durable, name=name,
        )  # fmt: skip
        tap._auth, tap._trusted, tap.forwards = auth, trusted, forwards
        matched: dict[str, Channel] = {}
        for selector in tap.selection.names:
            matched[selector] = ch = self._registry.channel(selector)
            if not trusted:
                self._gate.authorize(ch, auth, "subscribe")
        if tap.selection.is_pattern:  # a pattern reaches only the channels it may read
            for n, c in self._registry.channels.items():
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
        journal = self._host.journal
        if durable and journal is not None:  # owed the rows recorded so far
            self._registry.replay_due[tap] = journal.reserve_none()
            if self._host.running:
                self.replay(tap)
        return tap

    def remove_tap(self, tap: Tap) -> None:
        """Stop giving messages to ``tap``."""
        for ch in self._registry.remove_tap(tap):
            ch.taps = [t for t in ch.taps if t is not tap]
            ch.refresh()

    def records(self, channel: str) -> bool:
        """``channel`` keeps messages recorded until a durable tap acknowledges them."""
        ch = self._registry.channels.get(channel)
        return ch is not None and ch.config.persistent and self._host.journal is not None

    def forwarded(self, name: str, seqs: list[int]) -> None:
        """Durable tap ``name`` forwarded these rows (deleted in the next group commit)."""
        journal = self._host.journal
        if journal is not None and seqs:
            journal.forwarded(name, seqs)

    def outbox(self, name: str, after: int, limit: int) -> list[Message]:
        """Recorded messages of durable tap ``name`` after row ``after``."""
        journal = self._host.journal
        if journal is None:
            return []
        return journal.outbox(name, after, limit, _untracked)

    def replay_due(self) -> None:
        """Replay every durable tap made before the bus started."""
        for tap in list(self._registry.replay_due):
            self.replay(tap)

    def replay(self, tap: Tap) -> None:
        """Give a durable tap the messages it never acknowledged, oldest first (read in
        pages: a long outbox is not decoded all at once)."""
        upto = self._registry.replay_due.pop(tap, None)
        journal = self._host.journal
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

    def outbox_rows(self, ch: Channel, msgs: list[Message], first: int) -> list[tuple[int, str]]:
        """Outbox rows of ``msgs`` for the channel's durable taps (same commit as them)."""
        rows = []
        for tap in ch.taps:
            if tap.durable and tap.name is not None:
                for i, msg in enumerate(msgs):
                    if tap.include_remote or msg.origin == self._bus_id:
                        rows.append((first + i, tap.name))
        return rows


def _seq(msg: Message) -> int:
    tracker = msg._tracker
    return tracker.seq or 0 if tracker is not None else 0


def _untracked(_tracker: Tracker, _msg: Message) -> None:
    """Done callback of outbox messages read back (they are never dispatched)."""
