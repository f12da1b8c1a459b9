"""Exact brute-force engine behind :class:`~neuralcore.vectors.HNSWIndex` (numpy only).

Used when FAISS is missing or ``backend="python"``, for views of exact-engine files, and
for small filtered searches. Rows ``[0, len)`` are always live: removal moves the last row
into the hole, so searches never skip tombstones. Vectors arrive already prepared by the
front class (float32, unit length for cosine); storage may be float16, bfloat16 (kept
as the upper 16 bits of each float32, rounded to nearest even) or, for cosine only, int8
(each component of the unit vector times 127, rounded).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from neuralcore.vectors.hnsw._filter import KeyFilter

__all__ = ("STORAGE", "ExactEngine", "decode", "encode", "top_k")

# storage name -> numpy dtype of the stored array (bf16 is held as uint16 bit patterns)
STORAGE: dict[str, np.dtype[Any]] = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(np.uint16),
    "i8": np.dtype(np.int8),
}
_I8_SCALE = 127.0  # int8 storage holds unit-vector components (|x| <= 1) times this


def encode(vectors: NDArray[np.float32], storage: str) -> NDArray[Any]:
    """float32 rows in the storage type (bf16: round to nearest even).

    Examples
    --------
    >>> decode(encode(np.array([[1.0, 3.14159]], np.float32), "bf16")).tolist()
    [[1.0, 3.140625]]
    """
    if storage == "i8":
        codes: NDArray[np.int8] = np.rint(np.clip(vectors, -1.0, 1.0) * _I8_SCALE).astype(np.int8)
        return codes
    if storage != "bf16":
        return vectors.astype(STORAGE[storage])
    bits = np.ascontiguousarray(vectors, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def decode(stored: NDArray[Any]) -> NDArray[np.float32]:
    """Stored rows back as float32."""
    if stored.dtype == np.uint16:
        return (stored.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if stored.dtype == np.int8:
        return stored.astype(np.float32) * np.float32(1.0 / _I8_SCALE)
    return stored if stored.dtype == np.float32 else stored.astype(np.float32)


_BLOCK = 1 << 24  # score-matrix elements per block: caps temporary memory at 64 MiB


def top_k(
    dists: NDArray[np.float32], keys: NDArray[np.int64], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Best ``k`` per row of ``dists`` (ascending), padded with key -1 / distance inf.

    Examples
    --------
    >>> d = np.array([[0.5, 0.1, 0.9]], dtype=np.float32)
    >>> top_k(d, np.array([7, 8, 9]), 4)[0].tolist()
    [[8, 7, 9, -1]]
    """
    n_rows, n_cols = dists.shape
    out_keys = np.full((n_rows, k), -1, dtype=np.int64)
    out_dists = np.full((n_rows, k), np.inf, dtype=np.float32)
    take = min(k, n_cols)
    if take == 0:
        return out_keys, out_dists
    part = np.argpartition(dists, take - 1, axis=1)[:, :take] if take < n_cols else None
    cand = part if part is not None else np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    cand_d = np.take_along_axis(dists, cand, axis=1)
    order = np.argsort(cand_d, axis=1, kind="stable")
    out_dists[:, :take] = np.take_along_axis(cand_d, order, axis=1)
    out_keys[:, :take] = keys[np.take_along_axis(cand, order, axis=1)]
    out_keys[~np.isfinite(out_dists)] = -1
    return out_keys, out_dists


class ExactEngine:
    """Brute-force store: a growable matrix, its keys, and a key -> row map.

    With ``sorted_keys=True`` (read-only views over a file) no map is built: keys are
    looked up by binary search in the (memory-mapped) key array.

    Examples
    --------
    >>> e = ExactEngine(2, "l2", "f32")
    >>> e.add(np.array([5]), np.array([[3.0, 4.0]], dtype=np.float32))
    >>> e.search(np.zeros((1, 2), dtype=np.float32), 1, None)[1].tolist()
    [[5.0]]
    """

    def __init__(
        self,
        dim: int,
        metric: str,
        storage: str,
        *,
        keys: NDArray[np.int64] | None = None,
        vectors: NDArray[Any] | None = None,
        sorted_keys: bool = False,
    ) -> None:
        self.dim, self.metric, self.storage = dim, metric, storage
        self.dtype = STORAGE[storage]
        self._keys = keys if keys is not None else np.empty(0, dtype=np.int64)
        self._vecs = vectors if vectors is not None else np.empty((0, dim), dtype=self.dtype)
        self._count = len(self._keys)
        self._rows: dict[int, int] | None = None
        if not sorted_keys:
            self._rows = {int(key): row for row, key in enumerate(self._keys.tolist())}

    def __len__(self) -> int:
        return self._count

    def nbytes(self) -> int:
        """Bytes of the key and vector arrays (capacity included; mapped for views)."""
        return int(self._keys.nbytes + self._vecs.nbytes)

    def row_of(self, key: int) -> int:
        """Row holding ``key``, or -1."""
        if self._rows is not None:
            return self._rows.get(key, -1)
        row = int(np.searchsorted(self._keys[: self._count], key))
        return row if row < self._count and int(self._keys[row]) == key else -1

    def _grow(self, extra: int) -> None:
        need = self._count + extra
        if need <= len(self._keys):
            return
        size = max(need, 2 * len(self._keys), 1024)
        keys = np.empty(size, dtype=np.int64)
        vecs = np.empty((size, self.dim), dtype=self.dtype)
        keys[: self._count] = self._keys[: self._count]
        vecs[: self._count] = self._vecs[: self._count]
        self._keys, self._vecs = keys, vecs

    def add(self, keys: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Insert or overwrite ``keys`` (unique within the batch)."""
        if self._rows is None:
            raise TypeError("this exact engine is read-only")
        self._grow(len(keys))
        for key, vec in zip(keys.tolist(), encode(vectors, self.storage), strict=True):
            row = self._rows.setdefault(key, self._count)
            if row == self._count:
                self._keys[row] = key
                self._count += 1
            self._vecs[row] = vec

    def remove(self, keys: NDArray[np.int64]) -> None:
        """Delete ``keys`` (all present) by moving the last row into each hole."""
        if self._rows is None:
            raise TypeError("this exact engine is read-only")
        for key in keys.tolist():
            row = self._rows.pop(key)
            last = self._count - 1
            if row != last:
                moved = int(self._keys[last])
                self._keys[row], self._vecs[row] = moved, self._vecs[last]
                self._rows[moved] = row
            self._count = last

    def get(self, key: int) -> NDArray[np.float32]:
        """The stored vector of ``key`` as float32 (the caller checked it exists)."""
        row = self.row_of(key)
        found: NDArray[np.float32] = decode(self._vecs[row : row + 1])[0].copy()
        return found

    def live(self) -> tuple[NDArray[np.int64], NDArray[Any]]:
        """Keys in ascending order and their vectors (copies), for saving."""
        order = np.argsort(self._keys[: self._count], kind="stable")
        return self._keys[order], decode(self._vecs[order])

    def search(
        self, queries: NDArray[np.float32], k: int, allowed: KeyFilter | None, ef: int = 0
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Exact ``k`` nearest keys per query, optionally restricted by ``allowed``.

        ``ef`` is accepted for a common engine signature and ignored (search is exact).
        """
        keys, vecs = self._keys[: self._count], self._vecs[: self._count]
        if allowed is not None:
            mask = allowed.mask(keys)
            keys, vecs = keys[mask], vecs[mask]
        step = max(1, _BLOCK // max(1, len(keys)))
        parts = [
            top_k(self._distances(queries[i : i + step], vecs), keys, k)
            for i in range(0, len(queries), step)
        ] or [top_k(np.empty((0, len(keys)), dtype=np.float32), keys, k)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _distances(self, queries: NDArray[np.float32], vecs: NDArray[Any]) -> NDArray[np.float32]:
        mat = decode(vecs)
        if self.metric == "cosine" and self.storage == "i8":
            # 8-bit codes of a unit vector are a little off unit length: score each row by
            # its direction (cosine), as the FAISS engine does
            norms = np.sqrt(np.einsum("ij,ij->i", mat, mat, dtype=np.float64))
            mat = (mat / np.where(norms > 0.0, norms, 1.0)[:, None]).astype(np.float32)
        dots = queries @ mat.T
        if self.metric == "ip":
            return np.asarray(1.0 - dots, dtype=np.float32)
        if self.metric == "cosine":  # rounding can dip below 0
            return np.asarray(np.maximum(1.0 - dots, 0.0), dtype=np.float32)
        sq = (
            np.einsum("ij,ij->i", mat, mat)[None, :]
            + np.einsum("ij,ij->i", queries, queries)[:, None]
        )
        return np.asarray(np.sqrt(np.maximum(sq - 2.0 * dots, 0.0)), dtype=np.float32)
