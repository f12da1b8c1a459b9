"""Argument checks for :class:`~neuralcore.vectors.HNSWIndex`: keys, vectors, queries.

Keys are integers in ``[0, 2**63)``: -1 is reserved for padding in search results.
Vectors become C-contiguous float32; for cosine they are scaled to unit length here,
once, so both engines store and compare the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neuralcore.errors import DimensionMismatchError, InputTypeError, InvalidInputError
from neuralcore.vectors._spec import show
from neuralcore.vectors._validate import as_float_array

__all__ = ("prepare_key", "prepare_keys", "prepare_vectors")

_MAX_KEY = 2**63 - 1


def prepare_key(key: object) -> int:
    """One key as a Python int, or raise naming it.

    Examples
    --------
    >>> prepare_key(np.int32(7))
    7
    """
    if isinstance(key, bool) or not isinstance(key, int | np.integer):
        raise InputTypeError(f"key must be an integer, got {show(key)}")
    if not 0 <= int(key) <= _MAX_KEY:
        raise InvalidInputError(f"key must be in [0, 2**63), got {key}")
    return int(key)


def prepare_keys(keys: object, *, name: str = "keys") -> NDArray[np.int64]:
    """A 1-D array of unique int64 keys (a scalar key becomes one element).

    Examples
    --------
    >>> prepare_keys([3, 1]).tolist()
    [3, 1]
    >>> prepare_keys([1, 1])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    neuralcore.errors.InvalidInputError: keys has duplicate key 1
    """
    if isinstance(keys, int | np.integer) and not isinstance(keys, bool):
        return np.array([prepare_key(keys)], dtype=np.int64)
    try:
        array = np.asarray(keys)
    except (ValueError, TypeError, UnicodeError) as err:  # ragged lists, undecodable bytes
        raise InputTypeError(f"{name} must be a 1-D list of integers, got {show(keys)}") from err
    if array.size and array.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must be integers, got dtype {array.dtype}")
    if array.ndim != 1:
        raise DimensionMismatchError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size and (int(array.min()) < 0 or int(array.max()) > _MAX_KEY):
        bad = array[(array < 0) | (array > _MAX_KEY)][0]
        raise InvalidInputError(f"{name} must be in [0, 2**63) (-1 marks padding), got {bad}")
    out = array.astype(np.int64)
    uniq, counts = np.unique(out, return_counts=True)
    if len(uniq) != len(out):
        raise InvalidInputError(f"{name} has duplicate key {uniq[counts > 1][0]}")
    return out


_F32_MAX = float(np.finfo(np.float32).max)
_F32 = np.dtype(np.float32)
_SQUARE_LOW, _SQUARE_HIGH = 1e-74, 1e74  # squared norms whose 1/norm is a normal float32
_DOT64: list[Callable[[Any, Any], Any]] = []  # bound on first use


def _dot64() -> Callable[[Any, Any], Any]:
    """An inner product of float32 vectors summed in float64: NumKong's ``dot`` (0.2 us;
    imported on first use), or numpy on float64 copies when NumKong is not installed.

    Examples
    --------
    >>> row = np.array([3.0, 4.0], dtype=np.float32)
    >>> float(_dot64()(row, row))
    25.0
    """
    if not _DOT64:
        kernel: Callable[[Any, Any], Any] = _numpy_dot64
        try:
            from numkong import dot

            kernel = dot
        except ImportError:
            pass
        _DOT64.append(kernel)
    return _DOT64[0]


def _numpy_dot64(a: Any, b: Any) -> Any:
    return np.dot(a.astype(np.float64), b.astype(np.float64))


_F16_MAX = float(np.finfo(np.float16).max)


def prepare_vectors(
    vectors: object, *, dim: int, metric: str, name: str = "vectors", storage: str = "f32"
) -> tuple[NDArray[np.float32], bool]:
    """2-D float32 rows of length ``dim`` (unit length for cosine) and whether input was 1-D.

    Norms are taken in float64 (huge rows rescaled first), so any finite non-zero row
    normalises faithfully. For ``ip``/``l2`` the values themselves are stored and compared
    in float32: a value beyond float32's range (or float16's, with ``storage="f16"``), or
    so large that a distance could overflow float32 (above ``sqrt(3.4e38 / dim) / 2``,
    about 4.7e17 at 384 dimensions), is refused, in rows and in queries alike.

    Examples
    --------
    >>> prepare_vectors([3.0, 4.0], dim=2, metric="cosine")[0].tolist()
    [[0.6000000238418579, 0.800000011920929]]
    >>> rows, _ = prepare_vectors([[1e20, 1e20]], dim=2, metric="cosine")
    >>> [round(v, 4) for v in rows[0].tolist()]
    [0.7071, 0.7071]
    """
    if (
        metric == "cosine"
        and type(vectors) is np.ndarray
        and vectors.dtype == _F32
        and vectors.shape == (dim,)
        and vectors.flags.c_contiguous
        and vectors.flags.aligned  # NumKong refuses an unaligned buffer ("=f")
    ):  # one float32 query, the common search: ~1.5 us instead of ~10
        square = float(_dot64()(vectors, vectors))  # float64: no under/overflow; NaN shows
        if _SQUARE_LOW < square < _SQUARE_HIGH:  # 1/norm is a normal float32: as in _unit
            scale = np.float32(1.0 / math.sqrt(square))
            return np.multiply(vectors, scale).reshape(1, dim), True
    array = as_float_array(vectors, name=name)
    single = array.ndim == 1
    rows = array.reshape(1, -1) if single else array
    if rows.shape[1] != dim:
        raise DimensionMismatchError(
            f"{name} have dimension {rows.shape[1]} (shape {array.shape}), the index has {dim}"
        )
    if metric == "cosine":
        return _unit(rows, name), single
    top = _F16_MAX if storage == "f16" else _F32_MAX
    # the engines compute distances in float32: keep every |a - b|^2 and a.b of two rows
    # within its range (dim * (2 * bound)^2 = max), or a search answers inf or "no result"
    bound = min(top, math.sqrt(_F32_MAX / max(dim, 1)) / 2.0)
    if rows.size and not float(np.abs(rows).max()) <= bound:
        where = np.argwhere(~(np.abs(rows) <= bound))[0]
        value, at = rows[tuple(where)], tuple(int(i) for i in where)
        if not abs(value) <= top:
            kind = "float16" if storage == "f16" else "float32"
            raise InvalidInputError(f"{name} value {value:g} at {at} does not fit {kind} storage "
                                    f"(max {top:g})")  # fmt: skip
        raise InvalidInputError(
            f"{name} value {value:g} at {at} is too large for a faithful {metric} search: "
            f"float32 distances at dim {dim} overflow beyond {bound:.4g}"
        )
    out = np.ascontiguousarray(rows, dtype=np.float32)
    if storage in ("f16", "bf16") and out.size:
        _check_faithful(out, storage, name)
    return out, single


# A row stored in float16/bfloat16 keeps ~3 (bf16: ~2) significant digits; one whose stored
# copy is further than this from it, relative to its norm (values below float16's range
# flush to 0: [1e-30, 0, 1e-30] would be stored as a zero vector), is refused.
_FAITHFUL = 1e-2


def _check_faithful(rows: NDArray[np.float32], storage: str, name: str) -> None:
    """Refuse rows that ``storage`` (``"f16"``/``"bf16"``) cannot hold faithfully."""
    from neuralcore.vectors.hnsw._exact import decode, encode

    wide = rows.astype(np.float64)
    stored = decode(encode(rows, storage)).astype(np.float64)
    error = np.sqrt(np.einsum("ij,ij->i", wide - stored, wide - stored))
    norms = np.sqrt(np.einsum("ij,ij->i", wide, wide))
    bad = np.flatnonzero(error > _FAITHFUL * norms)
    if len(bad):
        row = int(bad[0])
        top = float(np.abs(wide[row]).max())
        kind = "float16" if storage == "f16" else "bfloat16"
        raise InvalidInputError(
            f"{name} row {row} (largest value {top:g}) cannot be stored faithfully as {kind}: "
            f"it would read back {float(error[row] / norms[row]):.3g} of its norm off "
            f"(values below {kind}'s range become 0); use dtype='f32' or scale the data"
        )


def _unit(rows: NDArray[Any], name: str) -> NDArray[np.float32]:
    if rows.dtype == np.float32 and rows.flags.c_contiguous and len(rows):
        # float64 sums of float32 squares cannot under- or overflow: scale in float32 when
        # every row's 1/norm is a normal float32 (norms in [1e-37, 1e37])
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
        if norms.min() > 1e-37 and norms.max() < 1e37:
            scale = (1.0 / norms).astype(np.float32)
            unit: NDArray[np.float32] = np.multiply(rows, scale[:, None])
            return unit
    x = rows.astype(np.float64, copy=False)
    top = np.abs(x).max(axis=1, initial=0.0) if len(x) else np.zeros(0)
    if len(top) and not top.all():
        raise InvalidInputError(
            f"{name} row {int(np.argmin(top))} has zero length: cosine distance is undefined"
        )
    scaled = x / top[:, None]  # largest component 1: the norm cannot under- or overflow
    norms = np.sqrt(np.einsum("ij,ij->i", scaled, scaled))
    return np.ascontiguousarray(scaled / norms[:, None], dtype=np.float32)
