"""Embedding cache: content hash -> vector, in-memory LRU with optional TTL and SQLite file.

Semantics follow ATLAS's ``EmbeddingCache``: entries expire ``ttl`` seconds after they were
stored, the memory tier evicts least-recently-used entries beyond ``max_entries``, and
:meth:`EmbeddingCache.stats` reports hits, misses and the hit rate. Vectors are stored as
raw float32 bytes (no pickle).
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import os
import reprlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from neuralcore.errors import ConfigError, InputTypeError, PersistenceError

__all__ = ("CacheStats", "EmbeddingCache")

logger = logging.getLogger(__name__)


class CacheStats(NamedTuple):
    """Counters of an :class:`EmbeddingCache`.

    Attributes
    ----------
    hits, misses : int
        Lookups that found / did not find a live entry.
    size : int
        Entries held in memory now.
    evictions : int
        Entries dropped by the LRU size limit.
    expired : int
        Entries dropped because their TTL passed.
    hit_rate : float
        ``hits / (hits + misses)``, 0.0 before any lookup.
    damaged : int
        Stored rows that could not be used (NULL, truncated, wrong length, all zeros,
        non-finite, a norm beyond float32, not unit length where ``unit_norm`` was asked,
        stored in the future): each is dropped, logged and counted as a miss.

    Examples
    --------
    >>> CacheStats(3, 1, 4, 0, 0, 0.75).hit_rate
    0.75
    """

    hits: int
    misses: int
    size: int
    evictions: int
    expired: int
    hit_rate: float
    damaged: int = 0


class EmbeddingCache:
    """Thread-safe LRU cache of embedding vectors keyed by content hash.

    Parameters
    ----------
    max_entries : int
        Memory tier size limit (LRU eviction beyond it).
    ttl : float, optional
        Seconds an entry stays valid; None keeps entries until evicted.
    path : path, optional
        SQLite file backing the memory tier (survives restarts; shared by processes).
    clock : callable
        Time source, for tests.

    Raises
    ------
    ConfigError
        a setting of the wrong type or out of range, naming it and its value.

    Examples
    --------
    >>> cache = EmbeddingCache(max_entries=2)
    >>> key = EmbeddingCache.key("model", "hello")
    >>> cache.get(key) is None
    True
    >>> cache.put(key, np.ones(3, dtype=np.float32))
    >>> cache.get(key).tolist()
    [1.0, 1.0, 1.0]
    >>> cache.stats().hit_rate
    0.5
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float | None = None,
        path: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError("max_entries", max_entries, "expected an int >= 1")
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, numbers.Real) or not ttl > 0
        ):
            raise ConfigError("ttl", ttl, "expected None or a number of seconds > 0")
        if path is not None:
            _check_path(path)
        if not callable(clock):
            raise ConfigError("clock", clock, "expected a callable returning seconds")
        self.max_entries, self.ttl = max_entries, ttl
        self._clock = time.time if path is not None and clock is time.monotonic else clock
        self._memory: OrderedDict[str, tuple[float, NDArray[np.float32]]] = OrderedDict()
        self._lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "evictions": 0, "expired": 0, "damaged": 0}
        self._db = _open_db(Path(path)) if path is not None else None

    @staticmethod
    def key(model: str, text: str) -> str:
        """Cache key of ``text`` embedded by ``model`` (sha256 of both).

        Examples
        --------
        >>> len(EmbeddingCache.key("m", "t"))
        64
        """
        data = f"{model}\0{text}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(data).hexdigest()

    def get(
        self, key: str, dimension: int | None = None, *, unit_norm: bool = False
    ) -> NDArray[np.float32] | None:
        """The live vector for ``key``, or None (counted as a miss).

        A stored row that is not a usable vector is dropped, logged and counted in
        ``stats().damaged``: NULL, a byte count that is not a whole number of float32,
        not ``dimension`` values when given, all zeros, NaN or infinity, a norm that
        over- or underflows float32 (as 1e30 or 1e-40 in every component would), a norm
        not within 1e-3 of 1 when ``unit_norm`` is true (vectors of a normalising
        model), or a ``stored_at`` more than a minute ahead of the clock (it would never
        expire).

        Examples
        --------
        >>> cache = EmbeddingCache()
        >>> cache.put("k", np.full(4, 0.5, dtype=np.float32))
        >>> cache.get("k", 4, unit_norm=True).tolist()
        [0.5, 0.5, 0.5, 0.5]
        >>> cache.put("k", np.full(4, 2.0, dtype=np.float32))
        >>> cache.get("k", 4, unit_norm=True) is None, cache.stats().damaged
        (True, 1)
        """
        _check_key(key)
        with self._lock:
            found: _Entry | None = self._memory.get(key)
            if found is None and self._db is not None:
                found = _db_get(self._db, key)
            entry: tuple[float, NDArray[np.float32]] | None = None
            if found is not None:
                reason = _damage(found, dimension, unit_norm=unit_norm, now=self._clock())
                if reason is None and found[1] is not None:
                    entry = (found[0], found[1])
                else:
                    logger.warning(
                        "embedding cache: dropped damaged entry %s: %s", key[:16], reason
                    )
                    self._drop(key)
                    self._counts["damaged"] += 1
            if entry is not None and self._is_expired(entry[0]):
                self._drop(key)
                self._counts["expired"] += 1
                entry = None
            if entry is None:
                self._counts["misses"] += 1
                return None
            self._memory[key] = entry
            self._memory.move_to_end(key)
            self._evict()
            self._counts["hits"] += 1
            return entry[1].copy()

    def put(self, key: str, vector: NDArray[np.floating]) -> None:
        """Store ``vector`` (as float32) under ``key``.

        Raises
        ------
        InputTypeError
            ``key`` is not a str, or ``vector`` is not an array of real numbers.
        """
        _check_key(key)
        stored = _as_row(vector)
        now = self._clock()
        with self._lock:
            self._memory[key] = (now, stored)
            self._memory.move_to_end(key)
            self._evict()
            if self._db is not None:
                sql = "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)"
                _db_write(self._db, sql, (key, now, stored.tobytes()))

    def stats(self) -> CacheStats:
        """Current counters (see :class:`CacheStats`)."""
        with self._lock:
            c = self._counts
            total = c["hits"] + c["misses"]
            rate = c["hits"] / total if total else 0.0
            size = len(self._memory)
            return CacheStats(
                c["hits"], c["misses"], size, c["evictions"], c["expired"], rate, c["damaged"]
            )

    def clear(self) -> None:
        """Drop every entry (and the SQLite rows); counters are kept."""
        with self._lock:
            self._memory.clear()
            if self._db is not None:
                _db_write(self._db, "DELETE FROM vectors", ())

    def close(self) -> None:
        """Close the SQLite file, if any."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __len__(self) -> int:
        return len(self._memory)

    def _is_expired(self, stored_at: float) -> bool:
        return self.ttl is not None and self._clock() - stored_at > self.ttl

    def _evict(self) -> None:
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)
            self._counts["evictions"] += 1

    def _drop(self, key: str) -> None:
        self._memory.pop(key, None)
        if self._db is not None:
            _db_write(self._db, "DELETE FROM vectors WHERE key = ?", (key,))


_Entry = tuple[float, NDArray[np.float32] | None]

# A row whose squared norm leaves float32's normal range cannot be used in float32 maths
# (np.linalg.norm of 1e30 in every component is inf, of 1e-40 is 0).
_SQUARE_LOW = float(np.finfo(np.float32).tiny)
_SQUARE_HIGH = float(np.finfo(np.float32).max)
# A normalised float32 row has a norm within ~1e-6 of 1 (rounding of each component,
# summed in float64): 1e-3 never trips on a round trip and catches a damaged row.
_UNIT_TOLERANCE = 1e-3
# Processes sharing a cache file may disagree a little on the time; a row stored further
# ahead than this is damaged (with a TTL it would never expire).
_CLOCK_SKEW = 60.0


def _damage(
    entry: _Entry, dimension: int | None, *, unit_norm: bool = False, now: float | None = None
) -> str | None:
    """Why a stored entry is unusable, or None when it is a good vector.

    Examples
    --------
    >>> _damage((0.0, np.full(3, 1e30, dtype=np.float32)), 3)
    'its norm (1.732e+30) is beyond float32 range'
    >>> _damage((0.0, np.array([0.6, 0.8], dtype=np.float32)), 2, unit_norm=True) is None
    True
    >>> _damage((1e300, np.ones(2, dtype=np.float32)), 2, now=0.0)
    'it was stored at 1e+300, in the future (now 0)'
    """
    stored_at, vector = entry
    if vector is None:
        return "the row is NULL or not a whole number of float32 values"
    if not math.isfinite(stored_at):
        return "its timestamp is not a number"
    if now is not None and stored_at > now + _CLOCK_SKEW:
        return f"it was stored at {stored_at:.15g}, in the future (now {now:.15g})"
    if vector.size == 0 or (dimension is not None and vector.size != dimension):
        return f"{vector.size} values, expected {dimension}"
    wide = vector.astype(np.float64)
    square = float(wide @ wide)
    if not math.isfinite(square):  # float32 squares summed in float64 cannot overflow
        return "it holds NaN or infinity"
    if square == 0.0:
        return "it is all zeros"
    if not _SQUARE_LOW <= square <= _SQUARE_HIGH:
        side = "beyond" if square > _SQUARE_HIGH else "below"
        return f"its norm ({math.sqrt(square):.4g}) is {side} float32 range"
    if unit_norm and not abs(math.sqrt(square) - 1.0) <= _UNIT_TOLERANCE:
        return f"its norm is {math.sqrt(square):.6g}, expected 1 (a normalised vector)"
    return None


def _check_path(path: object) -> None:
    """Refuse a path that is not a str/path-like of str, or that holds a NUL byte."""
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not isinstance(text, str):
        raise ConfigError("path", path, "expected None, a str or a path-like object")
    if "\0" in text:
        raise ConfigError("path", path, "a file path cannot contain a NUL byte")


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise InputTypeError(f"cache key must be a str, got {type(key).__name__}")


def _as_row(vector: object) -> NDArray[np.float32]:
    """``vector`` flattened to float32, or an error naming it (real numbers only)."""
    try:
        array = np.asarray(vector)
    except (TypeError, ValueError) as err:  # a ragged nesting
        raise InputTypeError(f"cache vector must be an array of numbers: {err}") from None
    if array.dtype.kind not in "iuf":
        shown = reprlib.repr(vector)
        raise InputTypeError(
            f"cache vector must hold real numbers, got dtype {array.dtype}: {shown}"
        )
    return np.array(array, dtype=np.float32).reshape(-1)


def _db_get(db: sqlite3.Connection, key: str) -> _Entry | None:
    try:
        row = db.execute("SELECT stored_at, vector FROM vectors WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error as err:
        raise PersistenceError(f"embedding cache file read failed: {err}") from err
    if row is None:
        return None
    blob, stored_at = row[1], row[0]
    try:
        when = float(stored_at)
    except (TypeError, ValueError):
        when = float("nan")
    if not isinstance(blob, bytes) or len(blob) % 4:
        return when, None
    return when, np.frombuffer(blob, dtype=np.float32).copy()


def _db_write(db: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> None:
    try:
        with db:
            db.execute(sql, params)
    except sqlite3.Error as err:
        raise PersistenceError(f"embedding cache file write failed: {err}") from err


def _open_db(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), check_same_thread=False)
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors"
                " (key TEXT PRIMARY KEY, stored_at REAL, vector BLOB)"
            )
    except (sqlite3.Error, OSError) as err:
        raise PersistenceError(f"cannot open embedding cache file {path}: {err}") from err
    return db
