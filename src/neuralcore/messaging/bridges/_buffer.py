"""Bounded outbound buffer that spills persistent messages to a SQLite file when full.

Messages of the bus's persistent channels are already in the bus's SQLite outbox (durable
tap) until the server confirmed them: when the memory buffer is full they are simply not
held, and are read back from the outbox in order once there is room ("deferred"). The
spill file is only for the rest: messages the *bridge* treats as durable (Redis streams,
Kafka) on channels that are in-memory in the bus.

Order is kept per channel: once anything is spilled (or deferred), new messages of that
kind go to the spill file (or stay in the outbox) too until it is drained. The spill file
is SQLite, like the bus store (one committed, fsynced row per message), and is only
cleared when everything read from it has been sent, so a crash re-sends (receivers drop
the duplicates by id) rather than loses.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat, starmap
from pathlib import Path

from neuralcore.core import PersistenceError, QueueFullError

__all__ = ("OutboundBuffer", "Outgoing", "SpillFile")

logger = logging.getLogger(__name__)


Outgoing = tuple[str, bytes, bytes | None, bool, int]
"""One encoded message waiting to go to the server: ``(channel, data, key, persistent,
seq)``; ``seq`` > 0 marks a message recorded in the bus's outbox (acknowledged by that seq).

A plain tuple of atomic values, not an object: the garbage collector stops tracking such
tuples, so a buffer of many thousand messages costs it nothing (an instance of a class
was ~3 us per message on a busy bus, all in collections).
"""


Refill = Callable[[int, int], list[Outgoing]]


class SpillFile:
    """SQLite file of outbound messages waiting for the server (``channel, data, key``).

    One row per message, in order; each append is its own committed transaction with
    ``synchronous=FULL`` (fsynced), so a crash loses no appended message and never leaves
    a torn record. Rows read with :meth:`read` stay until :meth:`clear` (everything read
    was sent), so a crash re-sends rather than loses (receivers drop duplicates by id).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "spill.db")
    >>> spill = SpillFile(path)
    >>> spill.append(("c", b"x", None, True, 0))
    >>> [data for _, data, _, _, _ in spill.read(10)], len(spill)
    ([b'x'], 0)
    >>> spill.close()
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import sqlite3

        self.path = Path(path)
        self._read_at = 0  # rowid of the last row handed out by read()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS spill (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " channel TEXT NOT NULL, data BLOB NOT NULL, key BLOB)"
            )
            self._count = int(self._db.execute("SELECT COUNT(*) FROM spill").fetchone()[0])
        except sqlite3.Error as err:
            raise PersistenceError(f"cannot open spill file {self.path}: {err}") from err

    def __len__(self) -> int:
        return self._count

    def append(self, item: Outgoing) -> None:
        """Write one message at the end (committed and fsynced before returning)."""
        import sqlite3

        try:
            self._db.execute("INSERT INTO spill (channel, data, key) VALUES (?, ?, ?)", item[:3])
        except sqlite3.Error as err:
            raise PersistenceError(f"cannot write spill file {self.path}: {err}") from err
        self._count += 1

    def read(self, limit: int) -> list[Outgoing]:
        """Take up to ``limit`` messages from the front (the file keeps them until cleared)."""
        rows = self._db.execute(
            "SELECT seq, channel, data, key FROM spill WHERE seq > ? ORDER BY seq LIMIT ?",
            (self._read_at, limit),
        ).fetchall()
        if rows:
            self._read_at = rows[-1][0]
            self._count -= len(rows)
        return [(channel, bytes(data), key, True, 0) for _, channel, data, key in rows]

    def clear(self) -> None:
        """Forget every record (after all of them were sent)."""
        self._db.execute("DELETE FROM spill")
        self._read_at = 0
        self._count = 0

    def close(self) -> None:
        """Close the file (records not yet read stay for the next run)."""
        self._db.close()


class OutboundBuffer:
    """FIFO of :class:`Outgoing` bounded at ``limit`` in memory.

    When full, messages recorded in the bus outbox (``seq`` > 0) are left there and read
    back with ``refill(after_seq, limit)`` later; other persistent messages go to the
    :class:`SpillFile` (or raise :class:`QueueFullError` without one) and fire-and-forget
    ones are dropped.
    """

    def __init__(self, limit: int, spill: SpillFile | None, refill: Refill | None = None) -> None:
        self.limit = limit
        self.spill = spill
        self.refill = refill
        # The memory queue; the runner appends to it directly (put's common case: room,
        # no spill file) in the per-publish fast path.
        self.mem: deque[Outgoing] = deque()
        self._from_spill_unsent = 0
        self._last_seq = 0  # newest outbox message held (or sent)
        self._deferred = 0  # outbox messages not held; 0 = caught up
        self.ready = asyncio.Event()
        if spill is not None and len(spill):
            self.ready.set()

    def __len__(self) -> int:
        spilled = len(self.spill) if self.spill is not None else 0
        return len(self.mem) + spilled + self._deferred

    def put(self, item: Outgoing) -> str:
        """Queue one message; returns ``"memory"``, ``"spilled"``, ``"deferred"`` (left in
        the outbox), ``"dropped"`` or ``"held"`` (already read back from the outbox).

        Runs once per bridged publish; the common case (room, nothing spilled) is one
        append. ``ready`` is set whenever the memory queue is not empty (only
        :meth:`take` clears it, and only once that queue is empty), so only the append
        that makes it non-empty needs to set it.
        """
        if item[4] and self.refill is not None:
            return self._put_recorded(item)
        mem = self.mem
        spill = self.spill
        if len(mem) < self.limit and (spill is None or not len(spill)):
            mem.append(item)
            if len(mem) == 1:
                self.ready.set()
            return "memory"
        return self._put_full(item)

    def _put_full(self, item: Outgoing) -> str:
        """:meth:`put` of a message that is not recorded, when the memory queue is full
        or the spill file is being drained (order: behind what was spilled)."""
        if not item[3]:  # fire-and-forget
            return "dropped"
        if self.spill is None:
            raise QueueFullError(f"bridge buffer full ({self.limit} messages) and no spill_path")
        self.spill.append(item)
        self.ready.set()
        return "spilled"

    def _put_recorded(self, item: Outgoing) -> str:
        seq = item[4]
        if seq <= self._last_seq:
            return "held"  # read back from the outbox before its tap call arrived
        if self._deferred or len(self.mem) >= self.limit:
            self._deferred += 1
            self.ready.set()
            return "deferred"
        self.mem.append(item)
        self._last_seq = seq
        self.ready.set()
        return "memory"

    def take(self, limit: int) -> list[Outgoing]:
        """Pop up to ``limit`` messages, refilling from the outbox / spill file when low."""
        low = max(1, self.limit // 2)  # refill when under half full (limit 1: when empty)
        if self._deferred and self.refill is not None and len(self.mem) < low:
            want = self.limit - len(self.mem)
            back = self.refill(self._last_seq, want)
            if back:
                self._last_seq = back[-1][4]
            self.mem.extend(back)
            self._deferred = max(0, self._deferred - len(back)) if len(back) == want else 0
        if self.spill is not None and len(self.spill) and len(self.mem) < low:
            moved = self.spill.read(self.limit - len(self.mem))
            self._from_spill_unsent += len(moved)
            self.mem.extend(moved)
        mem = self.mem
        if len(mem) <= limit:  # all of it (the common case): no Python loop
            items = list(mem)
            mem.clear()
        else:
            items = list(starmap(mem.popleft, repeat((), limit)))  # popleft() x limit, in C
        if not self.mem and not self._deferred and not (self.spill and len(self.spill)):
            self.ready.clear()
        return items

    def requeue(self, items: Iterable[Outgoing]) -> None:
        """Put unsent messages back at the front, in order."""
        batch = list(items)
        self.mem.extendleft(reversed(batch))
        if batch:
            self.ready.set()

    def persist_rest(self) -> int:
        """At stop: write every unsent persistent message to the spill file, in order.

        The next start with the same ``spill_path`` sends them. Returns how many were kept.
        """
        kept = [i for i in self.mem if not i[4]]  # in place: the runner holds the deque
        self.mem.clear()
        self.mem.extend(kept)
        self._deferred = 0
        if self.spill is None:
            return 0
        rest = [i for i in self.mem if i[3] and not i[4]]  # the outbox keeps the rest
        rest += self.spill.read(len(self.spill))
        self.mem.clear()
        self.spill.clear()
        for item in rest:
            self.spill.append(item)
        return len(rest)

    def sent(self, count: int, *, in_flight: int) -> None:
        """Note ``count`` messages delivered; clear the spill file once all are out."""
        if self.spill is None or not self._from_spill_unsent:
            return
        self._from_spill_unsent = max(0, self._from_spill_unsent - count)
        if not len(self.spill) and not self.mem and in_flight == 0:
            self.spill.clear()
            self._from_spill_unsent = 0
