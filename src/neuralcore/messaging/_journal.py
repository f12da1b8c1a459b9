"""The journal: the only owner of the SQLite file and of the codec at rest.

Everything that writes or reads stored messages goes through :class:`Journal`: persist
(encode, checksum, group commit), restore (decode, verify, count attempts, set aside what
cannot be read), acknowledgements, delivery-attempt marks, dead letters and the durable
taps' outbox. The bus and its channels never see SQLite or the codec's bytes.
"""

from __future__ import annotations

import logging
import time
import weakref
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from neuralcore.core import InvalidInputError, SerializationError
from neuralcore.messaging._message import Message, Tracker

if TYPE_CHECKING:
    from neuralcore.messaging._codec import Codec
    from neuralcore.messaging._config import BusConfig
    from neuralcore.messaging._store import Commit, SQLiteStore

__all__ = ("Journal", "Restored", "safe_text")

logger = logging.getLogger(__name__)
_crc32 = zlib.crc32
RESTORE_SUBSCRIBER = "<restore>"
"""``subscriber`` of dead letters made while restoring (unreadable or exhausted rows)."""

Done = Callable[[Tracker, Message], None]


def safe_text(text: str) -> str:
    """``text`` with lone surrogates escaped, so it can be stored, logged and encoded.

    Examples
    --------
    >>> safe_text("ok"), safe_text("bad-\\udcff")
    ('ok', 'bad-\\\\udcff')
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable_text(what: str, text: str) -> None:
    """Raise ``SerializationError`` when ``text`` cannot be stored as UTF-8."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SerializationError(
                f"{what} {safe_text(text)!r} holds a lone surrogate; it cannot be stored"
            ) from None


class Restored(NamedTuple):
    """What :meth:`Journal.restore` read back for one channel.

    Attributes
    ----------
    messages : list of Message
        Unacknowledged messages to replay, in order (each with its tracker).
    exhausted : list of (Message, str)
        Messages whose stored attempts reached ``max_attempts`` (the process stopped
        during each of them): to dead-letter, with the error text.
    keys : list of (str, str, float)
        Live idempotency keys ``(key, msg_id, expiry)``.
    dead : list of (Message, str, str, float)
        Stored dead letters ``(message, error, subscriber, timestamp)``.
    set_aside : int
        Rows that could not be read and were moved to the dead letters.
    """

    messages: list[Message]
    exhausted: list[tuple[Message, str]]
    keys: list[tuple[str, str, float]]
    dead: list[tuple[Message, str, str, float]]
    set_aside: int


class Journal:
    """Durable record of persistent channels (one SQLite file, one writer thread).

    Parameters
    ----------
    path : str
        The SQLite file.
    config : BusConfig
        Durability, retention, corruption policy, commit timeout and size limits.
    codec : callable
        Returns the bus codec (chosen lazily, on first use).
    """

    def __init__(self, path: str, config: BusConfig, codec: Callable[[], Codec]) -> None:
        from neuralcore.messaging._store import SQLiteStore  # sqlite3 only when used

        self._codec = codec
        self._max_size = config.max_message_size
        self.timeout = config.commit_timeout
        self.store: SQLiteStore = SQLiteStore(
            path,
            durability=config.durability,
            retention_seconds=config.retention_seconds,
            retention_count=config.retention_count,
            on_corrupt=config.on_corrupt,
        )
        self.path = str(self.store.path)

    def bind(self, owner: object) -> None:
        """Close the file when ``owner`` is garbage collected (or at interpreter exit)."""
        weakref.finalize(owner, self.store.close)

    def close(self) -> None:
        """Commit what is queued, stop the writer, release the file and its lock."""
        self.store.close(self.timeout)

    # -- writing --------------------------------------------------------------------------

    def persist(
        self,
        channel: str,
        msgs: Sequence[Message],
        done: Done,
        *,
        keys: Sequence[tuple[str, str, float]] = (),
        outbox: Callable[[int], list[tuple[int, str]]] | None = None,
    ) -> Commit:
        """Encode ``msgs`` (``SerializationError`` before anything is written), give each
        a tracker with its row number, and join the writer thread's next group commit."""
        rows, out = self._rows(channel, msgs, done, outbox)
        for key, msg_id, expiry in keys:
            self.store.remember_key(channel, key, msg_id, expiry)
        return self.store.insert(rows, out)

    async def persist_async(
        self,
        channel: str,
        msgs: Sequence[Message],
        done: Done,
        *,
        keys: Sequence[tuple[str, str, float]] = (),
        outbox: Callable[[int], list[tuple[int, str]]] | None = None,
    ) -> None:
        """:meth:`persist` and wait, from an event loop (see :meth:`persist_soon`)."""
        await self.persist_soon(channel, msgs, done, keys=keys, outbox=outbox)

    def persist_soon(
        self,
        channel: str,
        msgs: Sequence[Message],
        done: Done,
        *,
        keys: Sequence[tuple[str, str, float]] = (),
        outbox: Callable[[int], list[tuple[int, str]]] | None = None,
    ) -> Awaitable[None]:
        """Encode and join a commit now; the result is awaited for durability: with
        ``durability="process"`` the loop's own group commit (one per loop turn, a plain
        future: no coroutine per message), else the writer thread's."""
        rows, out = self._rows(channel, msgs, done, outbox)
        store = self.store
        if store.inline:
            key_rows = (
                [(channel, key, msg_id, expiry) for key, msg_id, expiry in keys] if keys else []
            )
            return store.insert_soon(rows, out, key_rows, self.timeout)
        for key, msg_id, expiry in keys:
            store.remember_key(channel, key, msg_id, expiry)
        return store.insert(rows, out).wait_async(self.timeout)

    def _rows(
        self,
        channel: str,
        msgs: Sequence[Message],
        done: Done,
        outbox: Callable[[int], list[tuple[int, str]]] | None,
    ) -> tuple[list[tuple[int, str, str, int, float, bytes, int]], list[tuple[int, str]] | None]:
        encode = self._codec().encode
        if len(msgs) == 1:  # the common case (one publish), without the loops
            msg = msgs[0]
            if type(msg._id) is str:
                storable_text("message id", msg.id)
            blob = encode(msg)  # SerializationError before a row number is taken
            seq = self.store.reserve(1)
            tracker = msg._tracker
            if tracker is None:
                tracker = msg._tracker = Tracker(seq, done)
            else:
                tracker.seq = seq
            if outbox is not None:  # tapped: a bridge sends these bytes (see Tracker.wire)
                tracker.wire = blob
            row = (seq, channel, msg.id, msg.priority, msg.timestamp, blob, _crc32(blob))
            return [row], outbox(seq) if outbox is not None else None
        blobs = []
        for msg in msgs:
            mid = msg._id
            if type(mid) is str:
                storable_text("message id", mid)
            blobs.append(encode(msg))
        store = self.store
        first = store.reserve(len(blobs))
        rows = []
        for i, (msg, blob) in enumerate(zip(msgs, blobs, strict=True)):
            rows.append(
                (first + i, channel, msg.id, msg.priority, msg.timestamp, blob, _crc32(blob))
            )
            tracker = msg._tracker
            if tracker is None:
                tracker = msg._tracker = Tracker(first + i, done)
            else:
                tracker.seq = first + i
            if outbox is not None:
                tracker.wire = blob
        return rows, outbox(first) if outbox is not None else None

    def reserve_none(self) -> int:
        """The last row number used so far."""
        return self.store.reserve(0) - 1

    def ack(self, seq: int) -> None:
        """Subscribers are done with row ``seq`` (rides the next commit)."""
        self.store.ack([seq])

    def mark(self, tracker: Tracker, attempt: int, *, wake: bool) -> Commit:
        """Record that delivery attempt ``attempt`` of a stored message starts (``wake``:
        commit now rather than with the next write)."""
        tracker.marked = attempt
        assert tracker.seq is not None
        return self.store.mark(tracker.seq, attempt, wake=wake)

    def dead_letter(self, channel: str, msg: Message, subscriber: str, error: str) -> None:
        """Record a dead letter of a persistent channel (rides the next commit)."""
        try:
            data = self._codec().encode(msg)
        except SerializationError as err:
            logger.error("dead letter %s of %r cannot be encoded: %s", msg.id, channel, err)
            return
        self.store.dead_letter(
            (channel, msg.id, time.time(), safe_text(subscriber), safe_text(error), data)
        )

    def forwarded(self, tap: str, seqs: list[int]) -> None:
        """A durable tap forwarded these rows."""
        if seqs:
            self.store.forwarded(tap, seqs)

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        self.store.flush(self.timeout)

    # -- reading --------------------------------------------------------------------------

    def decode(self, seq: int, data: bytes, crc: int | None) -> Message:
        """Decode a stored row with the codec that wrote it (JSON rows start with ``[``).

        Raises ``SerializationError`` when the checksum or the decoding fails.
        """
        if crc is not None and _crc32(data) != crc:
            raise SerializationError(f"row {seq} fails its checksum (stored bytes changed)")
        from neuralcore.messaging._codec import JsonCodec

        codec = self._codec()
        if data[:1] == b"[" and codec.name != "json":
            codec = JsonCodec(max_size=self._max_size)
        return codec.decode(data)

    def restore(self, channel: str, max_attempts: int, done: Done) -> Restored:
        """Read back one channel: replayable messages, exhausted ones, keys, dead letters.

        A row that cannot be decoded (or fails its checksum) is moved to the dead letters
        with a log line, and the rest of the channel replays.
        """
        messages: list[Message] = []
        exhausted: list[tuple[Message, str]] = []
        aside = 0
        for seq, data, attempts, crc in self.store.unacked(channel):
            try:
                msg = self.decode(seq, data, crc)
            except SerializationError as err:
                aside += 1
                self._set_aside(channel, seq, data, err)
                continue
            tracker = msg._tracker = Tracker(seq, done)
            tracker.marked = attempts
            tracker.replayed = True
            msg.attempt = attempts + 1
            if attempts >= max_attempts:
                text = (
                    f"ProcessExit: the process stopped during delivery attempt {attempts} "
                    f"of {max_attempts} (crash or kill)"
                )
                exhausted.append((msg, text))
            else:
                messages.append(msg)
        dead = [
            (self._dead_message(channel, mid, data), error, subscriber, ts)
            for mid, subscriber, error, ts, data in self.store.dead_letters(channel)
        ]
        return Restored(messages, exhausted, self.store.keys(channel), dead, aside)

    def exhausted(self, channel: str, msg: Message, error: str) -> None:
        """Move an exhausted restored message to the dead letters (one transaction)."""
        tracker = msg._tracker
        assert tracker is not None
        assert tracker.seq is not None
        data = self._codec().encode(msg)
        row = (channel, msg.id, time.time(), RESTORE_SUBSCRIBER, error, data)
        self.store.set_aside(tracker.seq, row)

    def outbox_counts(self) -> list[tuple[str, str, int]]:
        """``(tap, channel, count)`` of the messages waiting in durable taps' outboxes."""
        return self.store.outbox_counts()

    def outbox(self, tap: str, after: int, limit: int, done: Done) -> list[Message]:
        """Recorded messages of durable tap ``tap`` after row ``after`` (unreadable rows
        are logged and skipped: they stay recorded)."""
        out = []
        json = self._codec().name == "json"
        for seq, data, crc in self.store.outbox(tap, after=after, limit=limit):
            same = json or data[:1] != b"["  # not a JSON row read by a MessagePack bus
            try:
                msg = self.decode(seq, data, crc)
            except SerializationError as err:
                logger.error("outbox row %d of tap %r in %s skipped: %s", seq, tap, self.path, err)
                continue
            tracker = msg._tracker = Tracker(seq, done)
            if same:  # written by this codec: what a bridge sends (no second encode)
                tracker.wire = bytes(data)
            out.append(msg)
        return out

    def _set_aside(self, channel: str, seq: int, data: bytes, err: Exception) -> None:
        text = f"{type(err).__name__}: {safe_text(str(err))}"
        logger.error(
            "channel %r: stored message row %d in %s cannot be read (%s); moved to the dead "
            "letters, the rest of the channel replays",
            channel, seq, self.path, text,
        )  # fmt: skip
        self.store.set_aside(
            seq, (channel, f"row-{seq}", time.time(), RESTORE_SUBSCRIBER, text, data)
        )

    def _dead_message(self, channel: str, msg_id: str, data: bytes) -> Message:
        """A stored dead letter's message; raw bytes as payload when it cannot be read."""
        try:
            return self.decode(0, data, None)
        except SerializationError:
            return Message(channel, data, id=msg_id)


def check_priority_range(priority: int) -> None:
    """Priorities are stored as signed 64-bit integers."""
    if not -(2**63) <= priority < 2**63:
        raise InvalidInputError(f"priority {priority} is outside the signed 64-bit range")


def describe(err: BaseException) -> str:
    """``Type: text`` of an error, safe to store and log."""
    return safe_text(f"{type(err).__name__}: {err}")
