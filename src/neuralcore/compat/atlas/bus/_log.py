"""ATLAS's persistence file, kept in ATLAS's own format: the ``ncb_messages`` table.

ATLAS's bus appends every message of a ``persistent`` channel to a SQLite table
(``channel, seq, msg_id, ts, priority, data``; ``data`` is the message dict in the
channel's codec: msgpack or JSON, optionally zlib-compressed) and reads it back only for
``replay_on_register``; queued messages are not redelivered after a restart. The adapter
keeps that contract and that file: an existing ATLAS persistence file opens as it is (no
migration step), a file written through the adapter opens under ATLAS's own bus again
(``NEURALCORE_COMPAT=off``), and restarts redeliver nothing, as in ATLAS.

Appends are batched: one transaction per event-loop turn in a worker thread, where ATLAS
opens a connection per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from neuralcore.core._errors import PersistenceError, SerializationError

__all__ = ("AtlasLog", "decode", "encode")

logger = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ncb_messages (channel TEXT NOT NULL, "
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL, ts REAL NOT NULL, "
    "priority INTEGER NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_ncb_channel_seq ON ncb_messages(channel, seq)",
    "CREATE INDEX IF NOT EXISTS idx_ncb_channel_ts ON ncb_messages(channel, ts)",
)


def _msgpack() -> Any | None:
    try:
        return importlib.import_module("msgpack")
    except ImportError:
        return None


def encode(obj: Any, serializer: str = "msgpack", compress: bool = False, level: int = 3) -> bytes:
    """A message dict as ATLAS's codec writes it (msgpack falls back to JSON without it).

    Examples
    --------
    >>> decode(encode({"a": 1}, "json", compress=True), "json", compress=True)
    {'a': 1}
    """
    mp = _msgpack() if serializer.lower() == "msgpack" else None
    try:
        if mp is not None:
            raw: bytes = mp.packb(obj, use_bin_type=True)
        else:
            raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise SerializationError(f"cannot encode message for the ATLAS log: {err}") from err
    return zlib.compress(raw, level) if compress else raw


def decode(data: bytes, serializer: str = "msgpack", compress: bool = False) -> Any:
    """Read back what :func:`encode` (or ATLAS's own codec) wrote."""
    try:
        raw = zlib.decompress(data) if compress else data
        mp = _msgpack() if serializer.lower() == "msgpack" else None
        if mp is not None:
            return mp.unpackb(raw, raw=False)
        return json.loads(raw.decode("utf-8"))
    except (ValueError, zlib.error) as err:
        raise SerializationError(f"cannot decode a message of the ATLAS log: {err}") from err


Row = tuple[str, str, float, int, bytes]


class AtlasLog:
    """Append-only message log in ATLAS's table; the bus's one owner of its file.

    Examples
    --------
    >>> import asyncio, tempfile, os
    >>> async def main(path):
    ...     log = AtlasLog(path)
    ...     log.append(("c", "id1", 1.0, 5, encode({"id": "id1"})))
    ...     await log.flush()
    ...     return await log.replay("c", after_seq=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     rows = asyncio.run(main(os.path.join(d, "ncb.db")))
    >>> [(seq, decode(blob)) for seq, blob in rows]
    [(1, {'id': 'id1'})]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._pending: list[Row] = []
        self._flushing: asyncio.Task[None] | None = None
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self._ready:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path)
            if not self._ready:
                for statement in _SCHEMA:
                    con.execute(statement)
                con.commit()
                self._ready = True
        except sqlite3.Error as err:
            raise PersistenceError(
                f"cannot open ATLAS persistence file {self.path}: {err}"
            ) from err
        return con

    def append(self, row: Row) -> None:
        """Queue one ``(channel, msg_id, ts, priority, data)`` row; written on the next turn
        of the event loop (or by :meth:`flush`)."""
        self._pending.append(row)
        if self._flushing is None:
            with contextlib.suppress(RuntimeError):  # no running loop: flush() writes it
                self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await self._write_pending()
        finally:
            self._flushing = None
        if self._pending:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _write_pending(self) -> None:
        rows, self._pending = self._pending, []
        if rows:
            try:
                await asyncio.to_thread(self._insert, rows)
            except PersistenceError:  # as in ATLAS: logged, publishing goes on
                logger.exception("ATLAS log append of %d message(s) failed", len(rows))

    def _insert(self, rows: list[Row]) -> None:
        con = self._connect()
        try:
            with con:
                con.executemany(
                    "INSERT INTO ncb_messages(channel, msg_id, ts, priority, data) "
                    "VALUES(?,?,?,?,?)",
                    rows,
                )
        except sqlite3.Error as err:
            raise PersistenceError(f"append to {self.path} failed: {err}") from err
        finally:
            con.close()

    async def flush(self) -> None:
        """Write everything appended so far."""
        task = self._flushing
        if task is not None:
            await task
        await self._write_pending()

    async def replay(
        self, channel: str, after_seq: int, limit: int = 5000
    ) -> list[tuple[int, bytes]]:
        """Rows of ``channel`` after ``after_seq``, oldest first (ATLAS's replay query)."""
        await self.flush()

        def _select() -> list[tuple[int, bytes]]:
            con = self._connect()
            try:
                cur = con.execute(
                    "SELECT seq, data FROM ncb_messages WHERE channel=? AND seq>? "
                    "ORDER BY seq ASC LIMIT ?",
                    (channel, after_seq, limit),
                )
                return [(int(seq), bytes(blob)) for seq, blob in cur.fetchall()]
            except sqlite3.Error as err:
                raise PersistenceError(f"replay from {self.path} failed: {err}") from err
            finally:
                con.close()

        return await asyncio.to_thread(_select)
