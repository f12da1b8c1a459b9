"""Input checks shared by the vector kernels and the HNSW index (numpy path).

Every public vector function funnels its arguments through :func:`as_float_array` so bad
input fails the same way everywhere: a clear :class:`~neuralcore.errors.NeuralcoreError` subclass
naming the argument and the offending shape or dtype.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neuralcore.errors import (
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    NonFiniteError,
)

__all__ = ("as_float_array", "check_finite", "check_same_dim")

_FLOAT_KINDS = {np.dtype(np.float32), np.dtype(np.float64)}


def as_float_array(
    value: Any,
    *,
    name: str,
    ndims: tuple[int, ...] = (1, 2),
    allow_nonfinite: bool = False,
    dtype: np.dtype[Any] | None = None,
) -> NDArray[np.floating[Any]]:
    """Return ``value`` as a C-contiguous, aligned, native-endian float32/float64 array.

    float32/float64 arrays that are already contiguous, aligned and native pass through
    without a copy; lists, tuples and integer/float16 arrays are converted (to float64, or
    ``dtype``).

    Raises
    ------
    InputTypeError
        object, string, bool or complex data.
    InvalidInputError
        wrong number of dimensions (``DimensionMismatchError``) or NaN/inf
        (``NonFiniteError``) unless ``allow_nonfinite``.

    Examples
    --------
    >>> as_float_array([1, 2], name="a").dtype
    dtype('float64')
    """
    array = _to_numpy(value, name)
    if array.ndim not in ndims:
        wanted = " or ".join(f"{n}-D" for n in ndims)
        raise DimensionMismatchError(f"{name} must be {wanted}, got shape {array.shape}")
    target = dtype or (array.dtype if array.dtype in _FLOAT_KINDS else np.dtype(np.float64))
    if array.dtype.byteorder not in ("=", "|") or array.dtype != target:
        array = array.astype(target.newbyteorder("="))
    array = np.ascontiguousarray(array)
    if not array.flags.aligned:  # at an odd address: NumKong/SimSIMD refuse its buffer
        array = array.copy()
    if not allow_nonfinite:
        check_finite(array, name=name)
    return array


def _to_numpy(value: Any, name: str) -> NDArray[Any]:
    if isinstance(value, (str, bytes)):
        raise InputTypeError(f"{name} must be numeric vectors, got {type(value).__name__}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise InputTypeError(f"{name} is not a rectangular numeric array: {err}") from err
    if array.dtype == object and not isinstance(value, np.ndarray):
        array = _real_objects(array, name)  # a list of Fractions, Decimals...: as stdlib's
    if array.dtype.kind not in "fiu":
        kind = array.dtype
        raise InputTypeError(f"{name} must hold real numbers, got dtype {kind}")
    return array


def _real_objects(array: NDArray[Any], name: str) -> NDArray[Any]:
    """A sequence of real numbers numpy keeps as objects (``Fraction``...) as float64.

    The stdlib backend reads any ``numbers.Real`` (not ``bool``) as ``float(x)``; so does
    this one, for sequences (an object *ndarray* is refused by both).
    """
    items = array.ravel().tolist()
    if not items or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in items
    ):
        return array  # refused by the caller, naming the dtype
    try:
        return np.array([float(v) for v in items], dtype=np.float64).reshape(array.shape)
    except OverflowError as err:
        raise InvalidInputError(f"{name} holds a number too large for float64: {err}") from None


def check_finite(array: NDArray[Any], *, name: str) -> None:
    """Raise :class:`NonFiniteError` naming ``name`` when ``array`` has NaN or inf."""
    if array.size and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        where = tuple(int(i) for i in bad)
        raise NonFiniteError(
            f"{name} contains NaN or infinity at index {where}; "
            "pass allow_nonfinite=True to compute anyway"
        )


def check_same_dim(a: NDArray[Any], b: NDArray[Any], *, names: tuple[str, str] = ("a", "b")) -> int:
    """Return the shared vector dimension or raise naming both shapes.

    Examples
    --------
    >>> check_same_dim(np.zeros(3), np.zeros((2, 3)))
    3
    """
    if a.shape[-1] != b.shape[-1]:
        raise DimensionMismatchError(
            f"dimension mismatch: {names[0]} has shape {a.shape}, {names[1]} has shape {b.shape}"
        )
    return int(a.shape[-1])
