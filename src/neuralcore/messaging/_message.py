"""The message envelope: one small ``__slots__`` object per message, never copied in-process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuralcore.messaging._types import Outcome

__all__ = ("Message", "Tracker")

_RANK = {"acked": 0, "expired": 1, "dropped": 2, "dead_lettered": 3}


class Tracker:
    """Counts the deliveries of one message still outstanding; fires once all settle.

    Only messages that need it carry one (persistent channels, injected messages), so the
    plain in-memory path pays nothing for acknowledgement tracking.
    """

    __slots__ = (
        "done", "marked", "on_settled", "outcome", "pending", "replayed", "seq", "wire",
    )  # fmt: skip

    def __init__(
        self,
        seq: int | None,
        done: Callable[[Tracker, Message], None],
        on_settled: Callable[[Message, Outcome], None] | None = None,
    ) -> None:
        self.seq = seq
        self.done = done
        self.on_settled = on_settled
        self.pending = 0
        self.outcome: Outcome = "acked"
        self.marked = 0  # delivery attempts recorded in the file (stored messages)
        self.replayed = False  # read back after a restart: attempts are recorded first
        # The bytes the journal stored, kept from the commit until the channel's taps
        # ran (an outbound bridge sends them instead of encoding the message again).
        self.wire: bytes | None = None

    def settle(self, msg: Message, outcome: Outcome) -> None:
        """Record one delivery's outcome; the last one fires ``done``."""
        if _RANK[outcome] > _RANK[self.outcome]:
            self.outcome = outcome
        self.pending -= 1
        if self.pending <= 0:
            self.done(self, msg)


class Message:
    """One message: what a handler receives and what bridges encode.

    In-process delivery passes this object itself (the payload is the publisher's object,
    never serialised). Handlers must treat it as read-only: it is shared by every subscriber.

    Parameters
    ----------
    channel : str
        The channel the message is published on.
    payload : object
        Any Python object in-process; JSON types, bytes, numpy arrays, dataclasses or msgspec
        Structs where it crosses a boundary (persistence, bridges).
    priority : int
        Lower is more urgent (:class:`Priority`).
    headers : Mapping[str, object] or None
        Trace id, correlation id, source and custom headers.
    id : str or None
        Unique id; a random UUID when omitted (the bus makes ``<bus id>-<counter>`` ids).
    timestamp : float or None
        Seconds since the epoch (``time.time()``) at publish.
    attempt : int
        Delivery attempt, 1 for the first.
    origin : str
        Id of the bus that first published the message (bridges use it to avoid echo).

    Examples
    --------
    >>> m = Message("rag.query", {"q": "hi"}, priority=0, headers={"trace_id": "t1"}, id="m1")
    >>> (m.id, m.channel, m.priority, m.trace_id, m.attempt)
    ('m1', 'rag.query', 0, 't1', 1)
    """

    __slots__ = (
        "_headers",
        "_id",
        "_tapped",
        "_tracker",
        "attempt",
        "channel",
        "origin",
        "payload",
        "priority",
        "timestamp",
    )

    _tapped: bool  # set (never cleared) once a tap took it; unset is False: see tapped()

    def __init__(
        self,
        channel: str,
        payload: Any,
        *,
        priority: int = 50,
        headers: Mapping[str, Any] | None = None,
        id: str | None = None,
        timestamp: float | None = None,
        attempt: int = 1,
        origin: str = "",
    ) -> None:
        self.channel = channel
        self.payload = payload
        self.priority = priority
        self._headers = dict(headers) if headers else None
        # Bus-made messages hold an int here until ``id`` is first read (see ``_new``).
        self._id: str | int = uuid.uuid4().hex if id is None else id
        self.timestamp = time.time() if timestamp is None else timestamp
        self.attempt = attempt
        self.origin = origin
        self._tracker: Tracker | None = None

    @property
    def id(self) -> str:
        """Unique message id (built on first access for bus-made messages)."""
        mid = self._id
        if type(mid) is not str:
            mid = self._id = f"{self.origin}-{mid:x}"
        return mid

    @property
    def headers(self) -> dict[str, Any]:
        """Headers (``trace_id``, ``correlation_id``, ``source``, custom keys)."""
        h = self._headers
        if h is None:
            h = self._headers = {}
        return h

    @property
    def trace_id(self) -> str:
        """The ``trace_id`` header, or the message id when there is none."""
        h = self._headers
        value = h.get("trace_id") if h else None
        return str(value) if value is not None else self.id

    @property
    def correlation_id(self) -> str | None:
        """The ``correlation_id`` header (set by :meth:`MessageBus.request`)."""
        h = self._headers
        value = h.get("correlation_id") if h else None
        return None if value is None else str(value)

    def retry_copy(self) -> Message:
        """A copy for the next delivery attempt (same id, tracker and payload)."""
        m = _new(self.channel, self.payload, self.priority, self._headers, self.origin, 0)
        m._id = self.id
        m.timestamp = self.timestamp
        m.attempt = self.attempt + 1
        m._tracker = self._tracker
        return m

    def __repr__(self) -> str:
        return (
            f"Message(id={self.id!r}, channel={self.channel!r}, priority={self.priority}, "
            f"attempt={self.attempt})"
        )


_now = time.time
_object_new = object.__new__


def _new(
    channel: str,
    payload: Any,
    priority: int,
    headers: dict[str, Any] | None,
    origin: str,
    num: int,
) -> Message:
    """Hot-path constructor: no argument parsing, headers dict taken as is.

    ``MessageBus.publish`` and ``publish_async`` inline a copy of it (a call costs ~4% of
    an in-process publish): a new slot must be set there too.
    """
    m: Message = _object_new(Message)
    m.channel = channel
    m.payload = payload
    m.priority = priority
    m._headers = headers
    m._id = num
    m.timestamp = _now()
    m.attempt = 1
    m.origin = origin
    m._tracker = None
    return m
