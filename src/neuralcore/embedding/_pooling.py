"""Token vectors -> one vector per text, and the output forms (dims, dtype)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ("OutputDtype", "finalize", "l2_normalize", "pool")

OutputDtype = Literal["float32", "float16", "int8", "binary"]


def pool(hidden: NDArray[np.float32], mask: NDArray[np.int64], mode: str) -> NDArray[np.float32]:
    """Pool ``(batch, seq, dim)`` token vectors with a ``(batch, seq)`` attention mask.

    ``mean`` averages the unmasked tokens, ``cls`` takes the first token, ``max`` the
    element-wise maximum of unmasked tokens, ``last`` the last unmasked token.

    Examples
    --------
    >>> h = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    >>> m = np.array([[1, 1, 0]])
    >>> pool(h, m, "mean").tolist()
    [[2.0, 3.0, 4.0, 5.0]]
    >>> pool(h, m, "last").tolist()
    [[4.0, 5.0, 6.0, 7.0]]
    """
    if mode == "cls":
        return np.ascontiguousarray(hidden[:, 0], dtype=np.float32)
    if mode == "last":
        last = np.maximum(mask.sum(axis=1) - 1, 0)
        return np.ascontiguousarray(hidden[np.arange(len(hidden)), last], dtype=np.float32)
    keep = mask[:, :, None].astype(bool)
    if mode == "max":
        maxed: NDArray[np.float32] = np.where(keep, hidden, -np.inf).max(axis=1).astype(np.float32)
        return maxed
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1).astype(np.float32)
    summed = np.einsum("bsd,bs->bd", hidden, mask.astype(np.float32))
    mean: NDArray[np.float32] = (summed / counts).astype(np.float32)
    return mean


def l2_normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (zero rows stay zero).

    Examples
    --------
    >>> l2_normalize(np.array([[3.0, 4.0]], dtype=np.float32)).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    scaled: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return scaled


def finalize(
    vectors: NDArray[np.float32], *, dims: int | None, normalize: bool, dtype: OutputDtype
) -> NDArray[np.generic]:
    """Truncate to ``dims`` (matryoshka), renormalise, and convert to the output dtype.

    ``int8`` maps [-1, 1] to [-127, 127]; ``binary`` packs the signs, 8 dims per byte.

    Examples
    --------
    >>> v = np.array([[0.6, -0.8]], dtype=np.float32)
    >>> finalize(v, dims=None, normalize=True, dtype="int8").tolist()
    [[76, -102]]
    >>> finalize(v, dims=1, normalize=True, dtype="float32").tolist()
    [[1.0]]
    """
    if dims is not None and dims < vectors.shape[1]:
        vectors = vectors[:, :dims]
        if normalize:
            vectors = l2_normalize(vectors)
    if dtype == "float16":
        return vectors.astype(np.float16)
    if dtype == "int8":
        scaled: NDArray[np.int8] = np.clip(np.rint(vectors * 127.0), -127, 127).astype(np.int8)
        return scaled
    if dtype == "binary":
        packed: NDArray[np.uint8] = np.packbits(vectors > 0, axis=1)
        return packed
    return np.ascontiguousarray(vectors, dtype=np.float32)
