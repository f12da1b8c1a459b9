"""Token-bucket rate limiting and the idempotency window."""

from __future__ import annotations

import time
from collections import deque

__all__ = ("IdempotencyWindow", "TokenBucket")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.

    Examples
    --------
    >>> bucket = TokenBucket(rate=1.0, burst=2)
    >>> [bucket.take() for _ in range(3)]
    [True, True, False]
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class IdempotencyWindow:
    """Remembers keys for ``window`` seconds; a repeat inside the window is a duplicate.

    Expiry follows ``time.time()`` (read on each call, so a test can drive it with a fake
    clock). One dict (key -> id) and two deques in claim order (expiry times, keys): a claim
    is one lookup, one insert and two appends (no per-key tuple). Expired keys are found
    with one comparison against the oldest expiry.

    Examples
    --------
    >>> w = IdempotencyWindow(60.0)
    >>> w.seen("k1"), w.remember("k1", "m1", now=0.0), w.seen("k1", now=1.0)
    (None, 60.0, 'm1')
    """

    __slots__ = ("_ids", "_order_keys", "_order_times", "_stale", "_unsorted", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        # key -> id of the message first published with it (a bus-made message's number
        # while its id is not formatted yet: the hot path never builds the string)
        self._ids: dict[str, str | int] = {}
        self._order_times: deque[float] = deque()  # expiry of each claim, oldest first
        self._order_keys: deque[str] = deque()  # its key
        # Keys with more entries in the order than the live one (forgotten, or claimed
        # again): how many of their oldest entries to skip when they expire.
        self._stale: dict[str, int] = {}
        self._unsorted = False  # keys restored out of expiry order: sort before use

    def _expire(self, now: float) -> None:
        if self._unsorted:
            self._sort()
        times, keys, stale = self._order_times, self._order_keys, self._stale
        while times and times[0] <= now:
            times.popleft()
            key = keys.popleft()
            skip = stale.get(key) if stale else None
            if skip is None:
                del self._ids[key]
            elif skip > 1:
                stale[key] = skip - 1
            else:
                del stale[key]

    def seen(self, key: str, *, now: float | None = None) -> str | int | None:
        """Message id first published with ``key``, if still inside the window."""
        self._expire(time.time() if now is None else now)
        return self._ids.get(key)

    def remember(self, key: str, msg_id: str, *, now: float | None = None) -> float:
        """Record ``key``; returns its expiry time."""
        expiry = (time.time() if now is None else now) + self.window
        self.restore(key, msg_id, expiry)
        return expiry

    def claim(self, key: str, msg_id: str | int, *, now: float | None = None) -> str | int | None:
        """:meth:`seen` and, for a new key, :meth:`remember` in one step (one clock read).

        Returns the id first published with ``key`` (a duplicate), or ``None`` (claimed).

        Examples
        --------
        >>> w = IdempotencyWindow(60.0)
        >>> w.claim("k", "m1", now=0.0), w.claim("k", "m2", now=1.0)
        (None, 'm1')
        >>> w.claim("k", "m3", now=61.0)  # expired: claimed again
        """
        t = time.time() if now is None else now  # read each time: tests may set the clock
        times = self._order_times
        if self._unsorted or (times and times[0] <= t):
            self._expire(t)
            times = self._order_times
        ids = self._ids
        first = ids.get(key)
        if first is not None:
            return first
        ids[key] = msg_id
        times.append(t + self.window)
        self._order_keys.append(key)
        return None

    def forget(self, key: str) -> None:
        """Drop ``key`` (its publish failed after the check); its entry in the expiry
        order is skipped when it comes due."""
        if self._ids.pop(key, None) is not None:
            self._stale[key] = self._stale.get(key, 0) + 1

    def unclaim(self, msg_id: str | int) -> None:
        """Forget the latest claim when it was made for ``msg_id`` (that message was
        refused after the claim, in the same call)."""
        keys = self._order_keys
        if keys and self._ids.get(keys[-1]) == msg_id:
            self.forget(keys[-1])

    def restore(self, key: str, msg_id: str, expiry: float) -> None:
        """Load a key saved by the persistence layer."""
        if key in self._ids:  # its older entry must not expire the new one
            self._stale[key] = self._stale.get(key, 0) + 1
        self._ids[key] = msg_id
        times = self._order_times
        if times and times[-1] > expiry:
            self._unsorted = True
        times.append(expiry)
        self._order_keys.append(key)

    def _sort(self) -> None:
        pairs = sorted(zip(self._order_times, self._order_keys, strict=True))
        self._order_times = deque(t for t, _ in pairs)
        self._order_keys = deque(k for _, k in pairs)
        self._unsorted = False

    def __len__(self) -> int:
        return len(self._ids)
