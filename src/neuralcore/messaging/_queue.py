"""Bounded priority queue: one FIFO deque per priority level, levels kept sorted.

Cheaper than a heap of ``(priority, seq, msg)`` tuples: push and pop are O(1) deque
operations plus a tiny sorted list of the levels in use.
"""

from __future__ import annotations

from bisect import insort
from collections import deque

from neuralcore.messaging._message import Message

__all__ = ("PriorityQueue",)


class PriorityQueue:
    """Messages ordered by priority (lower first), FIFO within a priority.

    Examples
    --------
    >>> q = PriorityQueue()
    >>> for p, name in [(50, "a"), (0, "b"), (50, "c")]:
    ...     q.push(Message(name, None, priority=p))
    >>> [q.pop().channel for _ in range(len(q))]
    ['b', 'a', 'c']
    """

    __slots__ = ("_buckets", "_levels", "size")

    def __init__(self) -> None:
        self._buckets: dict[int, deque[Message]] = {}
        self._levels: list[int] = []  # sorted priorities whose deque is non-empty
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def push(self, msg: Message) -> None:
        """Append ``msg`` behind the messages of its priority."""
        p = msg.priority
        d = self._buckets.get(p)
        if d is None:
            d = self._buckets[p] = deque()
        if not d:
            insort(self._levels, p)
        d.append(msg)
        self.size += 1

    def push_front(self, msgs: list[Message]) -> None:
        """Put back messages taken earlier (in their original order) ahead of the rest."""
        for msg in reversed(msgs):
            p = msg.priority
            d = self._buckets.setdefault(p, deque())
            if not d:
                insort(self._levels, p)
            d.appendleft(msg)
            self.size += 1

    def pop(self) -> Message:
        """Remove and return the most urgent, oldest message."""
        levels = self._levels
        d = self._buckets[levels[0]]
        msg = d.popleft()
        if not d:
            del levels[0]
        self.size -= 1
        return msg

    def pop_many(self, limit: int) -> list[Message]:
        """Remove up to ``limit`` messages in delivery order."""
        out: list[Message] = []
        levels = self._levels
        while levels and len(out) < limit:
            d = self._buckets[levels[0]]
            take = min(limit - len(out), len(d))
            if take == len(d):
                out.extend(d)
                d.clear()
                del levels[0]
            else:
                popleft = d.popleft
                out.extend([popleft() for _ in range(take)])
        self.size -= len(out)
        return out

    def evict_least_urgent(self) -> Message:
        """Remove the oldest message of the least urgent priority (``drop_oldest``)."""
        levels = self._levels
        d = self._buckets[levels[-1]]
        msg = d.popleft()
        if not d:
            levels.pop()
        self.size -= 1
        return msg

    def peek_all(self) -> list[Message]:
        """Everything queued, in delivery order, without removing it."""
        return [msg for level in self._levels for msg in self._buckets[level]]

    def clear(self) -> list[Message]:
        """Remove and return everything, in delivery order."""
        return self.pop_many(self.size)
