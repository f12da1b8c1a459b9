"""One channel's queue in the ATLAS-compatible bus: priority buckets with ATLAS's rules.

Lower priority numbers are more urgent; equal priorities keep publish order. ``drop_old``
takes the least urgent, newest message (ATLAS's ``max((priority, seq))``) in O(1). The
dispatcher waits on :attr:`Lane.waiter`; a push wakes it.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from typing import Any

__all__ = ("Lane",)


class Lane:
    """Queued messages of one channel, by priority then arrival.

    Examples
    --------
    >>> lane = Lane()
    >>> for prio, msg in [(5, "a"), (1, "b"), (5, "c")]:
    ...     lane.push(prio, msg)
    >>> lane.drop_worst(), lane.pop(), lane.pop(), len(lane)
    ('c', 'b', 'a', 0)
    """

    __slots__ = ("buckets", "levels", "size", "task", "waiter")

    def __init__(self) -> None:
        self.buckets: dict[int, deque[Any]] = {}
        self.levels: list[int] = []  # the priorities present, ascending
        self.size = 0
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None  # the channel's dispatcher

    def __len__(self) -> int:
        return self.size

    def push(self, priority: int, msg: Any) -> None:
        """Queue ``msg`` behind those of the same priority; wake the dispatcher."""
        bucket = self.buckets.get(priority)
        if bucket is None:
            bucket = self.buckets[priority] = deque()
            bisect.insort(self.levels, priority)
        bucket.append(msg)
        self.size += 1
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def pop(self) -> Any:
        """The most urgent, oldest message (the lane must not be empty)."""
        level = self.levels[0]
        bucket = self.buckets[level]
        msg = bucket.popleft()
        self.size -= 1
        if not bucket:
            del self.buckets[level]
            del self.levels[0]
        return msg

    def drop_worst(self) -> Any:
        """Remove and return the least urgent, newest message (ATLAS's ``drop_old``)."""
        level = self.levels[-1]
        bucket = self.buckets[level]
        msg = bucket.pop()
        self.size -= 1
        if not bucket:
            del self.buckets[level]
            self.levels.pop()
        return msg

    def clear(self) -> None:
        """Drop everything queued."""
        self.buckets.clear()
        self.levels.clear()
        self.size = 0
