"""FAISS HNSW engine behind :class:`~neuralcore.vectors.HNSWIndex` (``faiss-cpu`` wheels).

The only module that imports ``faiss``, and only when an index is created or loaded.
FAISS was chosen by measurement (``neuralcore bench vectors``): as fast as hnswlib per
query, ships wheels for every supported Python with runtime SIMD dispatch (no compiler,
no ``-march=native``), stores float16/bfloat16/8-bit codes, takes a per-call ``efSearch`` and an
id selector (no global state touched by a search), and reads a graph zero-copy from a
memory buffer, which is what lets :meth:`HNSWIndex.view` search the mapped file.

FAISS's HNSW cannot delete, so the engine keeps one label per graph row (``-1`` once the
row is removed or superseded by an update) and searches with a selector that skips dead
rows; deleted rows still route searches, as tombstones do in hnswlib.
Vectors arrive prepared (float32, unit length for cosine, where inner product is cosine).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neuralcore.core._optional import require
from neuralcore.vectors.hnsw._exact import ExactEngine, top_k
from neuralcore.vectors.hnsw._filter import KeyFilter

__all__ = ("FaissEngine", "faiss_version", "new_faiss_index")

_EXACT = 2048  # filter key lists up to this size are searched exactly
_OMP_LOCK = threading.Lock()  # FAISS's thread count is process-wide state
_ZERO, _ONE = np.float32(0), np.float32(1)


def _faiss() -> Any:
    return require("faiss", extra="vectors")


def faiss_version() -> str:
    """Installed faiss-cpu version, or ``""`` when it is missing (never imports it).

    Examples
    --------
    >>> isinstance(faiss_version(), str)
    True
    """
    from importlib import metadata

    for dist in ("faiss-cpu", "faiss"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


def new_faiss_index(dim: int, metric: str, dtype: str, m: int, ef_construction: int) -> Any:
    """An empty ``IndexHNSWFlat`` (f32) or ``IndexHNSWSQ`` (f16/bf16/8-bit codes)."""
    faiss = _faiss()
    kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if dtype == "f32":
        index = faiss.IndexHNSWFlat(dim, m, kind)
    else:
        sq = faiss.ScalarQuantizer
        qt = {"f16": sq.QT_fp16, "bf16": sq.QT_bf16, "i8": sq.QT_8bit}[dtype]
        index = faiss.IndexHNSWSQ(dim, qt, m, kind)
    index.hnsw.efConstruction = ef_construction
    return index


def _is_8bit(index: Any) -> bool:
    """Whether ``index`` stores 8-bit scalar codes (``IndexHNSWSQ`` with ``QT_8bit``)."""
    faiss = _faiss()
    storage = getattr(index, "storage", None)
    if storage is None:
        return False
    sq = getattr(faiss.downcast_index(storage), "sq", None)
    return sq is not None and int(sq.qtype) == int(faiss.ScalarQuantizer.QT_8bit)


def i8_floor(dim: int) -> float:
    """The least half-range of each dimension's 8-bit codes: 3 standard deviations of a
    component of a random unit vector, at most 1 (no unit-vector component exceeds it).

    Examples
    --------
    >>> i8_floor(384) == 3 / math.sqrt(384), i8_floor(4)
    (True, 1.0)
    """
    return min(1.0, 3.0 / math.sqrt(dim))


def _train_ranges(index: Any, vectors: NDArray[np.float32]) -> None:
    """Fix the 8-bit ranges from the first rows added (unit vectors: cosine only).

    Each dimension's range spans those rows and at least ``+-i8_floor(dim)``, so a small
    first batch still gets a usable range; later values beyond it are clamped by FAISS.
    """
    floor = np.full((1, vectors.shape[1]), i8_floor(vectors.shape[1]), dtype=np.float32)
    index.train(np.ascontiguousarray(np.concatenate([vectors, floor, -floor])))


class FaissEngine:
    """A FAISS HNSW index, the key of each of its rows, and a key -> row map.

    Examples
    --------
    >>> index = new_faiss_index(2, "l2", "f32", 8, 32)
    >>> e = FaissEngine(index, 2, "l2", ef_search=16, threads=1)
    >>> e.add(np.array([5]), np.array([[3.0, 4.0]], dtype=np.float32))
    >>> e.search(np.zeros((1, 2), dtype=np.float32), 1, None, 16)[1].tolist()
    [[5.0]]
    """

    def __init__(
        self,
        index: Any,
        dim: int,
        metric: str,
        *,
        ef_search: int,
        threads: int,
        labels: NDArray[np.int64] | None = None,
        keepalive: object = None,
    ) -> None:
        self.dim, self.metric, self.threads, self.ef_search = dim, metric, threads, ef_search
        self._index = index
        self._keepalive = keepalive  # the buffer a zero-copy index reads from
        rows = int(index.ntotal)
        self._labels = labels if labels is not None else np.empty(0, dtype=np.int64)
        self._rows: dict[int, int] | None = None  # built on first need (views: lazily)
        self._dead = int(np.count_nonzero(self._labels[:rows] < 0))
        self._selector: Any = None
        # SearchParametersHNSW per beam for unfiltered searches (with the live-row
        # selector): a search only reads them, so concurrent searches share one. Made on
        # first use and dropped whenever the selector changes (add, remove, close).
        self._params: dict[int, Any] = {}
        self._swig_ptr: Callable[[Any], Any] = _faiss().swig_ptr
        # cosine over 8-bit codes: a decoded row is not unit length (FAISS decodes each code
        # at its bin's centre: a stored [1, 0, 0] reads back as [1.0039, 0, 0]), so scores
        # are divided by the decoded row's norm, as the exact engine does
        self._unit_codes = metric == "cosine" and _is_8bit(index)

    # -- bookkeeping ---------------------------------------------------------------------

    def _map(self) -> dict[int, int]:
        if self._rows is None:
            labels = self._labels[: self._index.ntotal]
            live = np.flatnonzero(labels >= 0)
            self._rows = dict(zip(labels[live].tolist(), live.tolist(), strict=True))
        return self._rows

    def __len__(self) -> int:
        return int(self._index.ntotal) - self._dead

    @property
    def dead(self) -> int:
        """Graph rows whose key was removed or updated (skipped by searches)."""
        return self._dead

    def __contains__(self, key: int) -> bool:
        return key in self._map()

    def nbytes(self) -> int:
        """Bytes of FAISS's graph and codes (its serialised size, ~ its memory)."""
        index, rows = self._index, int(self._index.ntotal)
        links = index.hnsw.neighbors.size() * 4 + (rows + 1) * 8 + rows * 4
        return int(links + index.storage.sa_code_size() * rows + self._labels.nbytes)

    def _live_selector(self) -> Any:
        """An ``IDSelectorBitmap`` over live rows, or None when no row is dead."""
        if not self._dead:
            return None
        if self._selector is None:
            faiss = _faiss()
            live = self._labels[: self._index.ntotal] >= 0
            bits = np.packbits(live, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(live), faiss.swig_ptr(bits))
            selector.referenced = bits  # keep the bitmap alive with the selector
            self._selector = selector
        return self._selector

    def _with_threads(self, call: Callable[[], Any]) -> Any:
        faiss = _faiss()
        with _OMP_LOCK:
            faiss.omp_set_num_threads(self.threads)
            return call()

    # -- mutation ------------------------------------------------------------------------

    def add(self, keys: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Insert ``keys`` (unique in the batch); an existing key's old row goes dead."""
        rows = self._map()
        old = [rows[k] for k in keys.tolist() if k in rows]
        start = int(self._index.ntotal)
        if not self._index.is_trained:  # 8-bit codes: ranges fixed by the first rows
            _train_ranges(self._index, vectors)
        self._with_threads(lambda: self._index.add(np.ascontiguousarray(vectors)))
        labels = np.empty(start + len(keys), dtype=np.int64)
        labels[:start] = self._labels[:start]
        labels[start:] = keys
        if old:
            labels[old] = -1
        self._labels = labels
        rows.update(zip(keys.tolist(), range(start, start + len(keys)), strict=True))
        self._dead += len(old)
        self._selector, self._params = None, {}

    def remove(self, keys: NDArray[np.int64]) -> None:
        """Mark ``keys`` (all live) dead."""
        rows = self._map()
        for key in keys.tolist():
            self._labels[rows.pop(key)] = -1
        self._dead += len(keys)
        self._selector, self._params = None, {}

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: int) -> NDArray[np.float32]:
        """The stored vector of live ``key`` (decoded to float32)."""
        return np.asarray(self._index.reconstruct(self._map()[key]), dtype=np.float32)

    def live(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Live keys ascending and their vectors."""
        labels = self._labels[: self._index.ntotal]
        rows = np.flatnonzero(labels >= 0)
        order = np.argsort(labels[rows], kind="stable")
        rows = rows[order]
        if not len(rows):
            return rows.astype(np.int64), np.empty((0, self.dim), dtype=np.float32)
        vecs = self._index.reconstruct_batch(rows.astype(np.int64))
        return labels[rows].copy(), np.ascontiguousarray(vecs, dtype=np.float32)

    def search(
        self, queries: NDArray[np.float32], k: int, allowed: KeyFilter | None, ef: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Approximate ``k`` nearest keys per query, padded with -1/inf.

        ``queries`` arrive prepared (C-contiguous float32 rows of ``dim``), so FAISS's C++
        search is called directly with the output arrays, skipping its Python wrapper's
        checks and copies; an unfiltered search reuses its beam's parameters.
        """
        index = self._index
        take = min(k, int(index.ntotal) - self._dead)
        queries = np.ascontiguousarray(queries, dtype=np.float32)  # no copy when prepared
        n = len(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim:  # FAISS would read past it
            raise ValueError(f"queries must be (n, {self.dim}), got {queries.shape}")
        if take == 0 or not n:
            return top_k(np.empty((n, 0), np.float32), np.empty(0, np.int64), k)
        beam = max(ef, take)
        if allowed is None:
            params = self._params.get(beam)
            if params is None:
                params = self._new_params(beam, self._live_selector())
                if len(self._params) >= 64:  # callers varying ef: keep the table small
                    self._params = {}
                self._params[beam] = params
        elif allowed.allowed is not None and len(allowed.allowed) <= _EXACT:
            return self._exact_subset(queries, k, allowed.allowed)
        else:
            params = self._new_params(beam, self._selector_for(allowed))
        dists = np.empty((n, take), dtype=np.float32)
        rows = np.empty((n, take), dtype=np.int64)
        ptr = self._swig_ptr
        if n == 1:  # one query runs on the calling thread whatever the thread count
            index.search_c(1, ptr(queries), take, ptr(dists), ptr(rows), params)
        else:
            self._with_threads(
                lambda: index.search_c(n, ptr(queries), take, ptr(dists), ptr(rows), params)
            )
        if allowed is not None:
            allowed.check()
        if self._unit_codes:
            self._as_cosine(rows, dists)
        return self._pad(rows, dists, k)

    def _as_cosine(self, rows: NDArray[np.int64], dists: NDArray[np.float32]) -> None:
        """Inner products with 8-bit rows divided by each decoded row's norm (in place),
        each query's results sorted again (best first, misses last)."""
        found = rows >= 0
        ids = rows[found]
        if not len(ids):
            return
        vecs = np.asarray(self._index.reconstruct_batch(ids), dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", vecs, vecs))
        dists[found] = (dists[found] / np.where(norms > 0.0, norms, 1.0)).astype(np.float32)
        dists[~found] = -np.inf
        order = np.argsort(-dists, axis=1, kind="stable")
        rows[:] = np.take_along_axis(rows, order, axis=1)
        dists[:] = np.take_along_axis(dists, order, axis=1)

    @staticmethod
    def _new_params(beam: int, selector: Any) -> Any:
        params = _faiss().SearchParametersHNSW()
        params.efSearch = beam
        if selector is not None:
            params.sel = selector  # FAISS's wrapper keeps the selector alive with params
        return params

    def _selector_for(self, allowed: KeyFilter | None) -> Any:
        if allowed is None:
            return self._live_selector()
        faiss = _faiss()
        labels = self._labels[: self._index.ntotal]
        if allowed.allowed is not None:  # a large key list: one bitmap over the rows
            ok = np.isin(labels, allowed.allowed) & (labels >= 0)
            bits = np.packbits(ok, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(ok), faiss.swig_ptr(bits))
            selector.referenced = bits
            return selector
        table = labels.tolist()

        def member(row: int) -> bool:
            key = table[row]
            return key >= 0 and allowed(key)

        return faiss.PyCallbackIDSelector(member)

    def _exact_subset(
        self, queries: NDArray[np.float32], k: int, allowed: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """A selective key list: exact distances to those keys beat a filtered graph walk."""
        rows = self._map()
        keys = np.array([key for key in allowed.tolist() if key in rows], dtype=np.int64)
        vecs = None
        if len(keys):
            ids = np.array([rows[key] for key in keys.tolist()], dtype=np.int64)
            vecs = np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)
            if self._unit_codes:  # 8-bit rows decode a little off unit length
                norms = np.sqrt(np.einsum("ij,ij->i", vecs, vecs, dtype=np.float64))
                vecs = (vecs / np.where(norms > 0.0, norms, 1.0)[:, None]).astype(np.float32)
        subset = ExactEngine(self.dim, self.metric, "f32", keys=keys, vectors=vecs)
        return subset.search(queries, k, None)

    def _pad(
        self, rows: NDArray[np.int64], dists: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        # FAISS returns each query's results best first and its misses (-1) last (its heap
        # reorder), so the last column tells whether all k were found; one query: a scalar
        n = len(rows)
        full = rows.item(-1) >= 0 if n == 1 else rows[:, -1].min() >= 0
        if rows.shape[1] == k and full:
            # ``dists`` is this search's own float32 output: converted in place
            if self.metric == "l2":  # FAISS returns squared L2; rounding can dip below 0
                np.sqrt(np.maximum(dists, _ZERO, out=dists), out=dists)
            else:  # distance 1 - dot; for cosine at least 0 (dot can round above 1)
                # one query: its best (largest) dot is first; only above 1 is a clamp due
                clamp = self.metric == "cosine" and (n > 1 or dists.item(0) > 1.0)
                np.subtract(_ONE, dists, out=dists)
                if clamp:
                    np.maximum(dists, _ZERO, out=dists)
            return self._labels[rows], dists
        found = rows >= 0
        keys = np.where(found, self._labels[np.where(found, rows, 0)], -1)
        if self.metric == "l2":  # FAISS returns squared L2; rounding can dip below 0
            out = np.sqrt(np.maximum(dists, np.float32(0)))
        else:  # inner product of unit (cosine) or raw (ip) vectors: distance 1 - dot
            out = np.float32(1) - dists
            if self.metric == "cosine":
                np.maximum(out, np.float32(0), out=out)
        out = np.where(found, out, np.float32(np.inf)).astype(np.float32)
        if rows.shape[1] == k:
            return keys.astype(np.int64), out
        pad_keys = np.full((len(rows), k), -1, dtype=np.int64)
        pad_dists = np.full((len(rows), k), np.inf, dtype=np.float32)
        pad_keys[:, : rows.shape[1]] = keys
        pad_dists[:, : rows.shape[1]] = out
        return pad_keys, pad_dists

    def serialize(self) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
        """FAISS's own bytes for the graph and codes, and the label of each row."""
        blob = _faiss().serialize_index(self._index)
        return blob, self._labels[: self._index.ntotal]

    def close(self) -> None:
        """Drop the FAISS index (before the buffer it may read from is unmapped)."""
        self._index = new_faiss_index(self.dim, self.metric, "f32", 4, 8)
        self._labels = np.empty(0, dtype=np.int64)
        self._rows, self._dead, self._selector, self._keepalive = {}, 0, None, None
        self._params = {}
