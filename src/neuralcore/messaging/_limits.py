"""Token-bucket rate limiting and the idempotency window."""

from __future__ import annotations

import time
from collections import OrderedDict

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

    Examples
    --------
    >>> w = IdempotencyWindow(60.0)
    >>> w.seen("k1"), w.remember("k1", "m1", now=0.0), w.seen("k1", now=1.0)
    (None, 60.0, 'm1')
    """

    __slots__ = ("_keys", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._keys: OrderedDict[str, tuple[float, str]] = OrderedDict()  # key -> (expiry, id)

    def _expire(self, now: float) -> None:
        keys = self._keys
        while keys:
            key, (expiry, _) = next(iter(keys.items()))
            if expiry > now:
                break
            del keys[key]

    def seen(self, key: str, *, now: float | None = None) -> str | None:
        """Message id first published with ``key``, if still inside the window."""
        self._expire(time.time() if now is None else now)
        entry = self._keys.get(key)
        return None if entry is None else entry[1]

    def remember(self, key: str, msg_id: str, *, now: float | None = None) -> float:
        """Record ``key``; returns its expiry time."""
        expiry = (time.time() if now is None else now) + self.window
        self._keys[key] = (expiry, msg_id)
        return expiry

    def claim(self, key: str, msg_id: str, *, now: float | None = None) -> str | None:
        """:meth:`seen` and, for a new key, :meth:`remember` in one step (one clock read).

        Returns the id first published with ``key`` (a duplicate), or ``None`` (claimed).

        Examples
        --------
        >>> w = IdempotencyWindow(60.0)
        >>> w.claim("k", "m1", now=0.0), w.claim("k", "m2", now=1.0)
        (None, 'm1')
        """
        t = time.time() if now is None else now
        self._expire(t)
        keys = self._keys
        entry = keys.get(key)
        if entry is not None:
            return entry[1]
        keys[key] = (t + self.window, msg_id)
        return None

    def forget(self, key: str) -> None:
        """Drop ``key`` (its publish failed after the check)."""
        self._keys.pop(key, None)

    def restore(self, key: str, msg_id: str, expiry: float) -> None:
        """Load a key saved by the persistence layer."""
        self._keys[key] = (expiry, msg_id)
