"""hnswlib engine behind :class:`~neuralcore.vectors.HNSWIndex`.

The only module that imports ``hnswlib``, and only when an index is created or loaded.
Keys are hnswlib labels. Removal uses ``mark_deleted``; new keys reuse deleted slots
(``allow_replace_deleted``), but updates of live keys go through the plain path because
hnswlib's replace path would leave the old copy of a live key in the graph.
Vectors arrive prepared (float32, unit length for cosine, where hnswlib's ``ip`` space
gives ``1 - dot`` = cosine distance).
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neuralcore.core._errors import IndexFileError
from neuralcore.core._optional import require
from neuralcore.vectors.hnsw._exact import ExactEngine, top_k
from neuralcore.vectors.hnsw._filter import KeyFilter

__all__ = ("NativeEngine", "check_blob", "hnswlib_version")

_SPACES = {"cosine": "ip", "ip": "ip", "l2": "l2"}
# saveIndex header: 6 x size_t, int maxlevel, uint entry point, 3 x size_t, double, size_t
_BLOB_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
_EXACT = 2048  # filter key lists up to this size are searched exactly


def _hnswlib() -> Any:
    return require("hnswlib", extra="vectors")


def hnswlib_version() -> str:
    """Installed hnswlib version, or ``""`` when it is missing (never imports it).

    Examples
    --------
    >>> isinstance(hnswlib_version(), str)
    True
    """
    from importlib import metadata

    try:
        return metadata.version("hnswlib")
    except metadata.PackageNotFoundError:
        return ""


def check_blob(path: Path, blob: memoryview, *, dim: int, m: int, count: int) -> None:
    """Check an hnswlib ``saveIndex`` blob's header against the metadata before loading it.

    Raises
    ------
    IndexFileError
        the header disagrees with ``dim``/``m``/``count`` or the blob is too short.
    """
    if blob.nbytes < _BLOB_HEADER.size:
        raise IndexFileError(f"{path}: hnswlib section is truncated ({blob.nbytes} bytes)")
    fields = _BLOB_HEADER.unpack_from(blob, 0)
    off0, max_el, n, per_el, label_off, data_off, _, entry, _, max_m0, blob_m = fields[:11]
    links0 = max_m0 * 4 + 4
    expected = (0, data_off + dim * 4 + 8, data_off + dim * 4, links0, 2 * m, m)
    if (off0, per_el, label_off, data_off, max_m0, blob_m) != expected or n > max_el:
        raise IndexFileError(f"{path}: hnswlib section header does not match the metadata")
    if n < count or (n and entry >= n) or blob.nbytes < _BLOB_HEADER.size + n * (per_el + 4):
        raise IndexFileError(f"{path}: hnswlib section is inconsistent or truncated")


class NativeEngine:
    """An ``hnswlib.Index`` plus the set of live keys (hnswlib keeps deleted labels).

    Examples
    --------
    >>> e = NativeEngine(2, "l2", m=8, ef_construction=32, ef_search=16, threads=1)
    >>> e.add(np.array([5]), np.array([[3.0, 4.0]], dtype=np.float32))
    >>> e.search(np.zeros((1, 2), dtype=np.float32), 1, None, 16)[1].tolist()
    [[5.0]]
    """

    def __init__(
        self, dim: int, metric: str, *, m: int, ef_construction: int, ef_search: int, threads: int
    ) -> None:
        self.dim, self.metric, self.threads = dim, metric, threads
        self._index = _hnswlib().Index(space=_SPACES[metric], dim=dim)
        self._index.init_index(
            1024, M=m, ef_construction=ef_construction, allow_replace_deleted=True
        )
        self._ef = ef_search
        self._index.set_ef(ef_search)
        self._live: set[int] = set()
        self._deleted: set[int] = set()  # labels possibly still marked deleted in hnswlib

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: int) -> bool:
        return key in self._live

    @property
    def ef_search(self) -> int:
        """Default query-time ``ef``."""
        return self._ef

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef = value
        self._index.set_ef(value)

    def nbytes(self) -> int:
        """Bytes of hnswlib's graph and vectors (its serialised size, ~ its memory)."""
        return int(self._index.index_file_size())

    def add(self, keys: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Insert new keys (reusing deleted slots) and overwrite existing ones."""
        known = np.fromiter((self._revive(k) for k in keys.tolist()), bool, len(keys))
        fresh = ~known
        self._reserve(int(fresh.sum()))
        if known.any():
            self._index.add_items(vectors[known], keys[known], num_threads=self.threads)
        if fresh.any():
            self._index.add_items(
                vectors[fresh], keys[fresh], num_threads=self.threads, replace_deleted=True
            )
        self._live.update(keys.tolist())

    def _revive(self, key: int) -> bool:
        """True when hnswlib holds ``key`` (live, or deleted and now unmarked)."""
        if key in self._live:
            return True
        if key not in self._deleted:
            return False
        self._deleted.discard(key)
        try:
            self._index.unmark_deleted(key)
        except RuntimeError:  # its slot was reused by another key
            return False
        return True

    def _reserve(self, extra: int) -> None:
        need = self._index.element_count + extra
        if need > self._index.max_elements:
            self._index.resize_index(max(need, 2 * self._index.max_elements))

    def remove(self, keys: NDArray[np.int64]) -> None:
        """Mark ``keys`` (all live) deleted."""
        for key in keys.tolist():
            self._index.mark_deleted(key)
            self._live.discard(key)
            self._deleted.add(key)

    def get(self, key: int) -> NDArray[np.float32]:
        """The stored vector of live ``key``."""
        return np.asarray(self._index.get_items([key], return_type="numpy")[0], dtype=np.float32)

    def live(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Live keys ascending and their vectors, for saving."""
        keys = np.array(sorted(self._live), dtype=np.int64)
        if not len(keys):
            return keys, np.empty((0, self.dim), dtype=np.float32)
        vecs = self._index.get_items(keys, return_type="numpy")
        return keys, np.ascontiguousarray(vecs, dtype=np.float32)

    def search(
        self, queries: NDArray[np.float32], k: int, allowed: KeyFilter | None, ef: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Approximate ``k`` nearest keys per query, padded with -1/inf.

        ``ef`` other than :attr:`ef_search` is set for this call only: the caller must
        hold the index exclusively then (hnswlib has no per-query ``ef``).
        """
        take = min(k, len(self._live))
        if take == 0 or not len(queries):
            return top_k(np.empty((len(queries), 0), np.float32), np.empty(0, np.int64), k)
        if allowed is not None and allowed.allowed is not None and len(allowed.allowed) <= _EXACT:
            return self._exact_subset(queries, k, allowed.allowed)
        default = self._ef
        try:
            self._set_ef(ef)
            return self._search_graph(queries, take, k, allowed)
        finally:
            self._set_ef(default)

    def _set_ef(self, ef: int) -> None:
        if int(self._index.ef) != ef:
            self._index.set_ef(ef)

    def _search_graph(
        self, queries: NDArray[np.float32], take: int, k: int, allowed: KeyFilter | None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        if allowed is None:
            with contextlib.suppress(RuntimeError):  # too few reachable: per-query below
                return self._pad(*self._query(queries, take, None), k)
        rows = [self._pad(*self._query_one(q, take, allowed), k) for q in queries]
        return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])

    def _exact_subset(
        self, queries: NDArray[np.float32], k: int, allowed: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """A selective key list: exact distances to those keys beat a filtered graph walk."""
        keys = np.array([key for key in allowed.tolist() if key in self._live], dtype=np.int64)
        vecs = self._index.get_items(keys, return_type="numpy") if len(keys) else None
        subset = ExactEngine(self.dim, self.metric, np.dtype(np.float32), keys=keys, vectors=vecs)
        return subset.search(queries, k, None)

    def _query(
        self, queries: NDArray[np.float32], k: int, allowed: KeyFilter | None
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        threads = 1 if len(queries) == 1 or allowed is not None else self.threads
        labels, dists = self._index.knn_query(queries, k=k, num_threads=threads, filter=allowed)
        return labels, dists

    def _query_one(
        self, query: NDArray[np.float32], k: int, allowed: KeyFilter | None
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        """One query; when fewer than ``k`` are reachable, binary-search the largest ``k``."""
        best = (np.empty((1, 0), np.uint64), np.empty((1, 0), np.float32))
        low, high = 1, k
        while low <= high:
            mid = (low + high) // 2
            try:
                best = self._query(query[None, :], mid, allowed)
            except RuntimeError:  # hnswlib: fewer than mid results
                high = mid - 1
            else:
                low = mid + 1
        return best

    def _pad(
        self, labels: NDArray[np.uint64], dists: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        keys = labels.view(np.int64)  # labels are < 2**63: same bits
        found = np.asarray(dists, dtype=np.float32)
        if self.metric != "ip":  # rounding can dip below 0; l2 comes back squared
            np.maximum(found, np.float32(0), out=found)
        if self.metric == "l2":
            np.sqrt(found, out=found)
        if labels.shape[1] == k:
            return keys, found
        out_keys = np.full((len(labels), k), -1, dtype=np.int64)
        out_dists = np.full((len(labels), k), np.inf, dtype=np.float32)
        out_keys[:, : labels.shape[1]] = keys
        out_dists[:, : labels.shape[1]] = found
        return out_keys, out_dists

    def save_blob(self, directory: Path) -> Path:
        """Write hnswlib's own binary to a temporary file in ``directory``; return its path."""
        fd, tmp = tempfile.mkstemp(prefix=".hnswlib.", suffix=".tmp", dir=directory)
        os.close(fd)
        self._index.save_index(tmp)
        return Path(tmp)

    @classmethod
    def from_blob(
        cls,
        blob: memoryview,
        live: NDArray[np.int64],
        *,
        dim: int,
        metric: str,
        threads: int,
        ef_search: int,
    ) -> NativeEngine:
        """Load an hnswlib blob (already validated) whose live keys are ``live``."""
        engine = cls.__new__(cls)
        engine.dim, engine.metric, engine.threads = dim, metric, threads
        engine._index = _hnswlib().Index(space=_SPACES[metric], dim=dim)
        fd, tmp = tempfile.mkstemp(prefix=".hnswlib.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
            engine._index.load_index(tmp, allow_replace_deleted=True)
        finally:
            os.unlink(tmp)
        engine.ef_search = ef_search
        engine._live = set(live.tolist())
        engine._deleted = set(np.asarray(engine._index.get_ids_list()).tolist()) - engine._live
        return engine
