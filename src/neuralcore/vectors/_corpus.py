"""A reusable, growable set of stored vectors for many queries: :class:`Corpus`.

Rows are normalised once, when added (norms in float64, so no finite row under- or
overflows), and kept unit length in float32 (or float16 / int8 at half / a quarter of the
memory), with each row's original norm beside them. A query then costs one BLAS
matrix-vector (or matrix-matrix) product and a scale: no per-call row norms, which is
what makes repeated queries against the same stored embeddings cheap.

One query against a float32 corpus larger than the caches (over 32 MiB of rows) is
scored by the SIMD library's ``cdist`` on ``threads`` threads: it streams the rows ~2.5x
faster than OpenBLAS's matrix-vector product there (measured on the two-core target:
6.3 vs 15.4 ms for 100,000 x 384), while inside the caches BLAS is ~5x faster (10,000
rows: 0.12 vs 0.63 ms). Several queries go to BLAS's matrix-matrix product, on BLAS's
own threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from neuralcore.core._cpu import usable_cores
from neuralcore.errors import ConfigError, DimensionMismatchError, InvalidInputError
from neuralcore.vectors._kernels.native import _SIMD, prescaled, safe_norms
from neuralcore.vectors._spec import MAX_THREADS, check_k
from neuralcore.vectors._validate import as_float_array

__all__ = ("Corpus", "StorageType")

StorageType = Literal["f32", "f16", "i8"]
Scores = NDArray[np.floating[Any]]

_STORE: dict[str, np.dtype[Any]] = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "i8": np.dtype(np.int8),
}
_I8_SCALE = 127.0
_MAX_DIM = 1 << 20
_STREAM_BYTES = 1 << 25  # float32 rows beyond this: one query streams them through cdist
_ss_dot: Callable[[Any, Any], float] = _SIMD.dot
_ss_cdist: Callable[..., Any] = _SIMD.cdist
# NumKong's row norms (float64 accumulation); SimSIMD has none: numpy's einsum then
_nk_norm: Callable[..., Any] | None = getattr(_SIMD, "norm", None)
_ND = np.ndarray
_F32 = np.dtype(np.float32)


def _aligned(rows: int, dim: int, dtype: np.dtype[Any]) -> NDArray[Any]:
    """An empty ``(rows, dim)`` array starting on a 64-byte boundary (a cache line: SIMD
    loads and BLAS's packing of the stored rows never straddle one at a row's start)."""
    size = rows * dim * dtype.itemsize
    buffer = np.empty(size + 64, dtype=np.uint8)
    start = -buffer.ctypes.data % 64
    return buffer[start : start + size].view(dtype).reshape(rows, dim)


def _unit_f64(rows: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Unit rows and original norms, in float64; rows of huge or subnormal norm are divided
    by their largest component first (dividing by such a norm is inexact or overflows)."""
    x = rows.astype(np.float64, copy=False)
    norms = safe_norms(x)  # exact for tiny float64 rows too (rescaled where squares underflow)
    scaled, inner = prescaled(x, norms)
    return scaled / np.where(inner > 0, inner, 1.0)[:, None], norms


def _unit_f32(rows: NDArray[Any]) -> tuple[NDArray[np.float32], NDArray[np.float64]] | None:
    """float32 rows scaled to unit length in float32, norms taken in float64 (one pass each).

    None when a scale does not fit float32 as a normal number (rows of norm below ~3e-39
    or above ~8e37): the float64 path answers those.
    """
    if rows.dtype != _F32:
        return None
    norms = _row_norms(rows)
    with np.errstate(divide="ignore"):
        inverse = np.where(norms > 0, 1.0 / norms, 0.0)
    if not (np.isfinite(norms).all() and norms.max(initial=0.0) < 8e37):
        return None
    if inverse.max(initial=0.0) >= 3e38:
        return None
    return rows * inverse.astype(np.float32)[:, None], norms


def _row_norms(rows: NDArray[np.float32]) -> NDArray[np.float64]:
    """L2 norm of each float32 row, accumulated in float64 (NumKong: ~4x numpy's einsum)."""
    if _nk_norm is not None and rows.flags.c_contiguous:
        norms: NDArray[np.float64] = np.asarray(_nk_norm(rows, axis=1), dtype=np.float64)
    else:
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    return norms


class Corpus:
    """Stored vectors, kept normalised, answering cosine, dot and top-k for queries.

    Parameters
    ----------
    rows : array_like, optional
        Initial ``(n, dim)`` rows (or one ``(dim,)`` row).
    dim : int, optional
        Vector length; needed only when ``rows`` is omitted (else taken from ``rows``).
    dtype : {"f32", "f16", "i8"}
        Storage of the unit rows: float32 (default), float16 (half the memory, ~1e-3
        relative error) or int8 (a quarter, ~1e-2 absolute error on cosine; the query is
        quantised too).
    threads : int, optional
        Threads for the float16/int8 scans (SIMD library); float32 uses BLAS's threads
        (default: usable cores).

    Raises
    ------
    ConfigError
        Unknown ``dtype``, bad ``threads`` or ``dim``.
    DimensionMismatchError, NonFiniteError, InputTypeError
        Bad rows, as in :func:`~neuralcore.vectors.cosine_similarity`.

    Notes
    -----
    A zero row scores 0 for cosine and dot, as in :func:`cosine_similarity`. Scores are
    float32 (float64 for ``dot``, which scales by the stored norms). ``add`` and the
    queries may be called from several threads; an ``add`` is atomic to queries.

    Examples
    --------
    >>> corpus = Corpus([[3.0, 4.0], [1.0, 0.0]])
    >>> corpus.add([[0.0, 2.0]])
    >>> len(corpus), [round(float(s), 3) for s in corpus.cosine([0.0, 1.0])]
    (3, [0.8, 0.0, 1.0])
    >>> idx, scores = corpus.top_k([0.0, 1.0], 2)
    >>> idx.tolist(), [round(float(s), 3) for s in corpus.dot([0.0, 1.0])]
    ([2, 0], [4.0, 0.0, 2.0])
    """

    def __init__(
        self,
        rows: Any = None,
        *,
        dim: int | None = None,
        dtype: StorageType = "f32",
        threads: int | None = None,
    ) -> None:
        if not isinstance(dtype, str) or dtype not in _STORE:
            raise ConfigError("dtype", dtype, f"expected one of {sorted(_STORE)}")
        workers = usable_cores() if threads is None else threads
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError("threads", threads, "expected an int >= 1")
        if workers > MAX_THREADS:
            raise ConfigError("threads", threads, f"expected an int <= {MAX_THREADS}")
        self._dtype, self._threads = dtype, workers
        self._lock = threading.Lock()
        first = None if rows is None else self._rows(rows, dim)
        width = dim if first is None else first.shape[1]
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= _MAX_DIM:
            raise ConfigError("dim", width, f"expected an int in [1, {_MAX_DIM}] (or rows)")
        self._dim = width
        # the one-query fast path's checks, precomputed: a float32 (dim,) query, and the
        # row count past which the SIMD library streams the rows instead of BLAS
        self._shape = (width,)
        self._fast_dtype = _F32 if dtype == "f32" else None
        self._stream_rows = _STREAM_BYTES // (4 * width)
        self._unit: NDArray[Any] = _aligned(0, width, _STORE[dtype])
        self._norms: NDArray[np.float64] = np.empty(0, dtype=np.float64)
        self._n = 0
        if first is not None:
            self._append(first)

    # -- storage -------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Vector length."""
        return self._dim

    @property
    def dtype(self) -> str:
        """Storage type of the unit rows: ``"f32"``, ``"f16"`` or ``"i8"``."""
        return self._dtype

    @property
    def nbytes(self) -> int:
        """Bytes of the stored rows and norms (capacity included)."""
        return int(self._unit.nbytes + self._norms.nbytes)

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Corpus(len={self._n}, dim={self._dim}, dtype={self._dtype!r})"

    def _rows(self, rows: Any, dim: int | None) -> NDArray[Any]:
        array = as_float_array(rows, name="rows")
        array = array.reshape(1, -1) if array.ndim == 1 else array
        want = getattr(self, "_dim", dim)
        if want is not None and array.shape[1] != want:
            raise DimensionMismatchError(
                f"rows have dimension {array.shape[1]} (shape {array.shape}), corpus has {want}"
            )
        return array

    def add(self, rows: Any) -> None:
        """Append ``(n, dim)`` rows (or one ``(dim,)`` row); they get the next indices.

        Raises
        ------
        DimensionMismatchError
            Wrong vector length.
        NonFiniteError
            NaN or infinity in ``rows``.
        """
        self._append(self._rows(rows, None))

    def _append(self, rows: NDArray[Any]) -> None:
        unit, norms = _unit_f64(rows)
        stored = self._encode(unit)
        with self._lock:
            n, extra = self._n, len(rows)
            if n + extra > len(self._unit):
                size = max(n + extra, 2 * len(self._unit), 64)
                grown = _aligned(size, self._dim, self._unit.dtype)
                grown[:n] = self._unit[:n]
                grown_norms = np.empty(size, dtype=np.float64)
                grown_norms[:n] = self._norms[:n]
                self._unit, self._norms = grown, grown_norms
            self._unit[n : n + extra] = stored
            self._norms[n : n + extra] = norms
            self._n = n + extra

    def _encode(self, unit: NDArray[np.float64]) -> NDArray[Any]:
        if self._dtype == "i8":
            return np.rint(unit * _I8_SCALE).astype(np.int8)
        return unit.astype(_STORE[self._dtype])

    def _snapshot(self) -> tuple[NDArray[Any], NDArray[np.float64]]:
        with self._lock:
            return self._unit[: self._n], self._norms[: self._n]

    # -- queries -------------------------------------------------------------------------

    def cosine(self, query: Any) -> Scores:
        """Cosine similarity of ``query`` (1-D, or 2-D: one row per query) to every row.

        Returns
        -------
        ndarray
            float32, ``(len(self),)`` for one query, ``(n_queries, len(self))`` for several.

        Examples
        --------
        >>> Corpus([[1.0, 0.0]]).cosine([[2.0, 0.0], [0.0, 1.0]]).tolist()
        [[1.0], [0.0]]
        """
        fast = self._raw(query)
        if fast is not None:
            scores, inverse = fast
            scores *= inverse
            return scores
        unit, _ = self._snapshot()
        q, _, single = self._query(query)
        out = self._scores(unit, q)
        return out[0] if single else out

    def _raw(self, query: Any) -> tuple[Scores, float] | None:
        """The stored unit rows times ``query`` and ``1/|query|``, when ``query`` can be used
        as it is (one finite float32 vector, float32 storage); else None.

        BLAS scores rows that fit the caches; beyond :data:`_STREAM_BYTES` the SIMD library
        streams them on ``threads`` threads. No lock: :meth:`add` writes rows before it
        publishes the new count, and the count is read first.
        """
        if (
            type(query) is not _ND
            or query.shape != self._shape
            or query.dtype != self._fast_dtype
            or query.strides[0] != query.itemsize  # SimSIMD misreads negative/zero strides
            or not query.flags.aligned  # SimSIMD refuses an unaligned buffer ("=f")
        ):
            return None
        square = _ss_dot(query, query)  # float32 squares: safe only in this range
        if not 1e-30 < square < 1e30:
            return None
        n = self._n
        unit = self._unit[:n]
        if n <= self._stream_rows:
            raw: Scores = unit @ query
        else:
            found = _ss_cdist(query[None, :], unit, metric="dot", out_dtype="float32",
                              threads=self._threads)  # fmt: skip
            raw = np.asarray(found).reshape(-1)
        return raw, 1.0 / math.sqrt(square)

    def dot(self, query: Any) -> Scores:
        """Inner product of ``query`` with every row as added (float64; shapes as cosine).

        Examples
        --------
        >>> [round(float(s), 5) for s in Corpus([[3.0, 4.0]]).dot([1.0, 1.0])]
        [7.0]
        """
        unit, norms = self._snapshot()
        q, qnorm, single = self._query(query)
        sims = self._scores(unit, q).astype(np.float64)
        with np.errstate(over="ignore"):
            out = cast(Scores, sims * norms * qnorm[:, None])
        return out[0] if single else out

    def top_k(
        self, query: Any, k: int, *, metric: Literal["cosine", "ip"] = "cosine"
    ) -> tuple[NDArray[np.int64], Scores]:
        """Indices and scores of the ``k`` best rows, best first (ties to the lower index).

        Parameters
        ----------
        query : array_like
            One query (1-D) or several (2-D).
        k : int
            How many; ``k > len(self)`` returns every row.
        metric : {"cosine", "ip"}
            Rank by cosine similarity or by inner product with the rows as added.

        Returns
        -------
        (indices, scores)
            1-D each for one query, ``(n_queries, min(k, len))`` for several.

        Examples
        --------
        >>> Corpus([[1.0, 0.0], [0.6, 0.8]]).top_k([0.0, 1.0], 1)[0].tolist()
        [1]
        """
        if metric not in ("cosine", "ip"):
            raise InvalidInputError(f"metric must be 'cosine' or 'ip', got {metric!r}")
        k = check_k(k)
        if metric == "cosine":
            fast = self._raw(query)
            if fast is not None:  # rank the raw products; scale only the k kept (same order)
                idx, best = _best(fast[0], min(k, len(fast[0])))
                best *= fast[1]
                return idx, best
            scores = self.cosine(query)
        else:
            scores = self.dot(query)
        return _best(scores, min(k, scores.shape[-1]))

    def _query(self, query: Any) -> tuple[NDArray[Any], NDArray[np.float64], bool]:
        """Query rows as unit vectors in the storage's type, their norms, and if 1-D."""
        array = as_float_array(query, name="query")
        rows = array.reshape(1, -1) if array.ndim == 1 else array
        if rows.shape[1] != self._dim:
            raise DimensionMismatchError(
                f"query has dimension {rows.shape[1]} (shape {array.shape}), corpus has {self._dim}"
            )
        fast = _unit_f32(rows) if self._dtype == "f32" else None
        if fast is not None:
            return fast[0], fast[1], array.ndim == 1
        unit, norms = _unit_f64(rows)
        if self._dtype == "i8":
            return np.rint(unit * _I8_SCALE).astype(np.int8), norms, array.ndim == 1
        kind = np.float16 if self._dtype == "f16" else np.float32
        return unit.astype(kind), norms, array.ndim == 1

    def _scores(self, unit: NDArray[Any], q: NDArray[Any]) -> Scores:
        """Cosine scores of unit queries ``q`` (2-D) against the stored unit rows."""
        if not len(unit):
            out: Scores = np.zeros((len(q), 0), dtype=np.float32)
        elif self._dtype == "f32":
            out = q @ unit.T
        else:
            raw = _SIMD.cdist(q, unit, metric="dot", out_dtype="float32", threads=self._threads)
            out = np.asarray(raw)
            if self._dtype == "i8":
                out *= np.float32(1.0 / (_I8_SCALE * _I8_SCALE))
        return out


def _best(scores: Scores, take: int) -> tuple[NDArray[np.int64], Scores]:
    """The ``take`` highest scores along the last axis, best first, ties to lower index."""
    n = scores.shape[-1]
    if take == 0:  # k=0 asks for nothing, as top_k() answers it
        part = np.empty((*scores.shape[:-1], 0), dtype=np.int64)
    elif take < n:
        part = np.argpartition(scores, n - take, axis=-1)[..., n - take :]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape)
    part = part.astype(np.int64)
    vals = np.take_along_axis(scores, part, axis=-1)
    order = np.lexsort((part, -vals), axis=-1)
    return np.take_along_axis(part, order, axis=-1), np.take_along_axis(vals, order, axis=-1)
