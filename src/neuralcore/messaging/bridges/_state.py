"""Bridge state machine, reconnect backoff, metrics and health reports."""

from __future__ import annotations

import enum
import random
import time
from collections import deque
from typing import NamedTuple

__all__ = ("Backoff", "BridgeHealth", "BridgeMetrics", "BridgeState", "Counters")


class BridgeState(enum.Enum):
    """Where a bridge's connection stands.

    ``stopped`` -> ``connecting`` -> ``connected`` <-> ``reconnecting`` -> ``failed``
    (after ``max_reconnect_attempts``); :meth:`BaseBridge.stop` returns to ``stopped``.

    Examples
    --------
    >>> BridgeState.CONNECTED.value
    'connected'
    """

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


class BridgeMetrics(NamedTuple):
    """A snapshot of one bridge's counters.

    Attributes
    ----------
    sent : messages the server acknowledged (XADD / PUBLISH reply, Kafka delivery report).
    received : messages read from the server and handed to the local bus.
    acked : received messages whose local handlers settled, acknowledged to the server.
    retried : outbound messages sent again after a failed attempt.
    buffered : outbound messages waiting (memory plus spill file).
    spilled : outbound messages ever written to the spill file, or left in the bus's
        durable outbox (SQLite) because the memory buffer was full.
    dropped : fire-and-forget messages dropped because the buffer was full.
    dead_lettered : malformed or foreign wire messages moved to the dead-letter stream/topic.
    duplicates : redelivered messages dropped by id (never delivered twice).
    reconnects : successful reconnections after a connection loss.
    lag : received-but-unsettled messages plus the server-side backlog when known.
    rtt_p50_s, rtt_p99_s : server round trip of recent sends (send to server ack), seconds.
    trimmed : stream entries trimmed past ``maxlen`` before every known group read them
        (each also logged as a warning); 0 on Kafka (the broker's retention decides).
    unsent : accepted outbound messages not handed to the server when the last stop's
        drain timeout ran out (kept in the bus outbox or spill file where there is one).
    skipped : inbound messages acknowledged without delivery on purpose: this bus's
        own messages coming back (echo), and, in fan-out mode, channels without a
        local subscriber.

    Examples
    --------
    >>> Counters().snapshot(buffered=0, lag=0).sent
    0
    """

    sent: int
    received: int
    acked: int
    retried: int
    buffered: int
    spilled: int
    dropped: int
    dead_lettered: int
    duplicates: int
    reconnects: int
    lag: int
    rtt_p50_s: float
    rtt_p99_s: float
    trimmed: int = 0
    unsent: int = 0
    skipped: int = 0


class BridgeHealth(NamedTuple):
    """Whether a bridge works, and why not.

    Attributes
    ----------
    state : the connection state.
    healthy : connected, or stopped on purpose.
    since : ``time.time()`` of the last state change.
    last_error : the last connection error, or the error that stopped a background loop
        (type and message, never credentials), or ``""``.
    buffered : outbound messages waiting.

    Examples
    --------
    >>> BridgeHealth(BridgeState.CONNECTED, True, 0.0, "", 0).healthy
    True
    """

    state: BridgeState
    healthy: bool
    since: float
    last_error: str
    buffered: int


class Backoff:
    """Exponential backoff with jitter; :meth:`reset` after a success.

    Examples
    --------
    >>> b = Backoff(0.1, 1.0, jitter=0.0)
    >>> [b.next() for _ in range(5)]
    [0.1, 0.2, 0.4, 0.8, 1.0]
    """

    def __init__(self, initial: float, maximum: float, *, jitter: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt (counts one attempt)."""
        base: float = min(self.maximum, self.initial * 2.0**self.attempts)
        self.attempts += 1
        return base * (1.0 - self.jitter * random.random())

    def reset(self) -> None:
        """Forget past failures."""
        self.attempts = 0


class Counters:
    """Mutable counters behind :class:`BridgeMetrics` (event-loop thread only)."""

    def __init__(self) -> None:
        self.sent = self.received = self.acked = self.retried = 0
        self.spilled = self.dropped = self.dead_lettered = self.duplicates = 0
        self.reconnects = self.trimmed = self.unsent = self.skipped = 0
        self.rtts: deque[float] = deque(maxlen=1024)

    def rtt(self, started: float) -> None:
        """Record one round trip that began at ``time.perf_counter()`` value ``started``."""
        self.rtts.append(time.perf_counter() - started)

    def snapshot(self, *, buffered: int, lag: int) -> BridgeMetrics:
        """Freeze the counters into a :class:`BridgeMetrics`."""
        ordered = sorted(self.rtts)
        p50 = ordered[len(ordered) // 2] if ordered else float("nan")
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else p50
        return BridgeMetrics(
            self.sent, self.received, self.acked, self.retried, buffered, self.spilled,
            self.dropped, self.dead_lettered, self.duplicates, self.reconnects, lag, p50, p99,
            self.trimmed, self.unsent, self.skipped,
        )  # fmt: skip
