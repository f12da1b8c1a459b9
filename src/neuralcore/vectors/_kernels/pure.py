"""The pure-Python kernels: stdlib only, lists in, lists out.

This is the fallback when numpy/SimSIMD are missing (or ``NEURALCORE_BACKEND=python``) and
the baseline of ``neuralcore bench vectors``. Every function has the signature of its twin in
:mod:`neuralcore.vectors._native`; sums are taken in float64.

A value with a ``shape`` attribute (a numpy array) keeps its number of dimensions; a plain
empty list ``[]`` is read as a matrix with no rows, so ``cosine_similarity(v, [])`` is ``[]``.
"""

from __future__ import annotations

import heapq
import math
import numbers
import operator
import sys
from collections.abc import Callable, Sequence
from typing import Any

from neuralcore.errors import (
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    NonFiniteError,
)
from neuralcore.vectors._spec import TOP_K_METRICS, check_flag, check_k, check_metric

__all__ = ("as_methods", "bind", "bind_methods")

Vec = list[float]
Mat = list[list[float]]


def _dot(a: Vec, b: Vec) -> float:
    return float(sum(map(operator.mul, a, b)))


def _sq(a: Vec, b: Vec) -> float:
    return sum((x - y) * (x - y) for x, y in zip(a, b, strict=True))


# Norms in this range keep every square, and the product of two norms, inside float64's
# normal range; outside it a vector is scaled by its largest component first, so cosine,
# normalize and L2 distance are exact for any finite input.
_NORM_LO, _NORM_HI = 1e-140, 1e140


def _norm(row: Vec) -> float:
    """The exact L2 norm of ``row`` (``inf`` beyond float64; NaN/inf as IEEE gives)."""
    norm = math.sqrt(_dot(row, row))
    if _NORM_LO < norm < _NORM_HI or norm != norm:
        return norm
    top = max(map(abs, row), default=0.0)
    if not 0.0 < top < math.inf:
        return norm  # a zero row, or an infinite component
    scaled = [v / top for v in row]
    return top * math.sqrt(_dot(scaled, scaled))


def _cos(a: Vec, b: Vec) -> float:
    return _cos_known(a, b, _norm(a), _norm(b))


def _cos_known(a: Vec, b: Vec, na: float, nb: float) -> float:
    """Cosine of ``a`` and ``b`` given their exact norms."""
    if _NORM_LO < na < _NORM_HI and _NORM_LO < nb < _NORM_HI:
        return _dot(a, b) / (na * nb)  # no square or product can leave float64's range
    finite = math.isfinite(na) and math.isfinite(nb)
    if not finite and not (all(map(math.isfinite, a)) and all(map(math.isfinite, b))):
        return math.nan  # NaN or inf in an input (allowed): inf/inf, as numpy gives
    if na == 0.0 or nb == 0.0:
        return 0.0  # a zero vector has no direction: similarity 0, never NaN
    sa, sb = _scaled(a), _scaled(b)  # largest component 1: nothing under- or overflows
    return _dot(sa, sb) / (_norm(sa) * _norm(sb))


def _scaled(row: Vec) -> Vec:
    top = max(map(abs, row))
    return [v / top for v in row] if 0.0 < top < math.inf else row


def _cos_distance(a: Vec, b: Vec) -> float:
    return 1.0 - _cos(a, b)


def _euclidean(a: Vec, b: Vec) -> float:
    square = _sq(a, b)
    if 1e-280 < square < math.inf or square != square:
        return math.sqrt(square)
    # the square overflowed or may have underflowed: scale by the largest component
    top = max(max(map(abs, a), default=0.0), max(map(abs, b), default=0.0))
    if not 0.0 < top < math.inf:
        return math.sqrt(square)
    return top * math.sqrt(_sq([v / top for v in a], [v / top for v in b]))


_PAIR: dict[str, Callable[[Vec, Vec], float]] = {
    "cosine_similarity": _cos,
    "cosine_distance": _cos_distance,
    "dot": _dot,
    "sqeuclidean_distance": _sq,
    "euclidean_distance": _euclidean,
}


def _number(value: Any, name: str) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if getattr(value, "ndim", None) == 0 and getattr(value, "dtype", None) is not None:
        # a 0-d numpy array: a number, as numpy (the native backend) reads it
        if value.dtype.kind in "fiu":
            return float(value)
        raise InputTypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must hold real numbers, got {type(value).__name__}")
    return float(value)


def _is_vector(value: Any) -> bool:
    if isinstance(value, str | bytes):
        return False
    return isinstance(value, Sequence) or getattr(value, "ndim", 0) >= 1


def _row(value: Any, name: str) -> Vec:
    try:
        return _floats(value, name)
    except OverflowError:  # an int too large for a float64
        big = next((v for v in value if isinstance(v, int) and abs(v) > 2**1023), 0)
        shown = f"{str(big)[:20]}... ({len(str(big))} digits)"
        raise InvalidInputError(f"{name} holds an integer too large for float64: {shown}") from None


def _floats(value: Any, name: str) -> Vec:
    if not _is_vector(value):
        raise InputTypeError(f"{name} must be a sequence of numbers, got {type(value).__name__}")
    kinds = set(map(type, value))  # one C-level pass decides the common all-float case
    if kinds <= {float}:
        return value if isinstance(value, list) else list(value)
    if kinds <= {float, int}:
        return list(map(float, value))
    return [_number(v, name) for v in value]


def _parse(value: Any, name: str, allow_nonfinite: bool) -> tuple[int, Any]:
    """Return ``(ndim, data)`` with data a list (1-D) or list of equal-length lists (2-D)."""
    if isinstance(value, str | bytes):  # np.bytes_ too (it has a shape)
        raise InputTypeError(f"{name} must be a sequence of numbers, got {type(value).__name__}")
    masked = sys.modules.get("numpy.ma")
    if masked is not None and isinstance(value, masked.MaskedArray):
        value = value.data  # its values, mask ignored: as the native backend (numpy) reads it
    if hasattr(value, "tolist") and hasattr(value, "shape"):
        kind = getattr(getattr(value, "dtype", None), "kind", "f")
        if kind not in "fiu":  # object, structured, bool, complex arrays: as numpy's path
            raise InputTypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        shape = tuple(value.shape)
        if len(shape) not in (1, 2):
            raise DimensionMismatchError(f"{name} must be 1-D or 2-D, got shape {shape}")
        if not shape[0]:
            return len(shape), []
        value = value.tolist()
    if not _is_vector(value):
        raise InputTypeError(f"{name} must be a sequence of numbers, got {type(value).__name__}")
    if not value:
        return 2, []
    data: Any
    if not _is_vector(value[0]):
        ndim, data = 1, _row(value, name)
        rows: Mat = [data]
    else:
        ndim, data = 2, [_row(r, name) for r in value]
        rows = data
        if len({len(r) for r in rows}) > 1:
            lengths = sorted({len(r) for r in rows})
            raise InputTypeError(f"{name} is not rectangular: row lengths {lengths}")
    if not allow_nonfinite and not math.isfinite(sum(map(sum, rows))):
        _check_finite(rows, name, ndim)  # the sum is non-finite if any element is (or overflow)
    return ndim, data


def _check_finite(rows: Mat, name: str, ndim: int) -> None:
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if not math.isfinite(v):
                where = (i, j) if ndim == 2 else (j,)
                raise NonFiniteError(
                    f"{name} contains NaN or infinity at index {where}; "
                    "pass allow_nonfinite=True to compute anyway"
                )


def _shape(ndim: int, data: Any) -> tuple[int, ...]:
    if ndim == 1:
        return (len(data),)
    return (len(data), len(data[0]) if data else 0)


def _check_dims(na: int, a: Any, nb: int, b: Any, names: tuple[str, str]) -> None:
    da, db = _shape(na, a), _shape(nb, b)
    if da[-1] != db[-1] and not (na == 2 and not a) and not (nb == 2 and not b):
        raise DimensionMismatchError(
            f"dimension mismatch: {names[0]} has shape {da}, {names[1]} has shape {db}"
        )


def _apply(kind: str, a: Any, b: Any, allow_nonfinite: bool) -> Any:
    na, x = _parse(a, "a", allow_nonfinite)
    nb, y = _parse(b, "b", allow_nonfinite)
    if not x and not y and _flat(a) and _flat(b):
        na = nb = 1  # ``[]`` with ``[]`` or a (0,) array: two empty vectors, as numpy reads them
    return _apply_parsed(kind, na, x, nb, y, ("a", "b"))


def _flat(value: Any) -> bool:
    """Whether an empty input is 1-D: a sequence with no items, or a (0,) array."""
    return len(getattr(value, "shape", (0,))) == 1


def _apply_parsed(kind: str, na: int, x: Any, nb: int, y: Any, names: tuple[str, str]) -> Any:
    _check_dims(na, x, nb, y, names)
    if na == 1 and nb == 1:
        return _PAIR[kind](x, y)
    table = _table(kind, [x] if na == 1 else x, [y] if nb == 1 else y)
    if na == 1:
        return table[0]
    return [row[0] for row in table] if nb == 1 else table


def _table(kind: str, xs: Mat, ys: Mat) -> Mat:
    """All pairs; cosine computes each row's norm once instead of once per pair."""
    if not kind.startswith("cosine"):
        pair = _PAIR[kind]
        return [[pair(r, s) for s in ys] for r in xs]
    nx, ny = list(map(_norm, xs)), list(map(_norm, ys))
    sims = [
        [_cos_known(r, s, p, q) for s, q in zip(ys, ny, strict=True)]
        for r, p in zip(xs, nx, strict=True)
    ]
    if kind == "cosine_similarity":
        return sims
    return [[1.0 - v for v in row] for row in sims]


def cosine_similarity(a: Any, b: Any, allow_nonfinite: bool, threads: int) -> Any:
    """Cosine similarity; zero vectors give 0.0."""
    return _apply("cosine_similarity", a, b, allow_nonfinite)


def cosine_distance(a: Any, b: Any, allow_nonfinite: bool, threads: int) -> Any:
    """``1 - cosine_similarity``."""
    return _apply("cosine_distance", a, b, allow_nonfinite)


def dot(a: Any, b: Any, allow_nonfinite: bool, threads: int) -> Any:
    """Inner product."""
    return _apply("dot", a, b, allow_nonfinite)


def euclidean_distance(a: Any, b: Any, allow_nonfinite: bool, threads: int) -> Any:
    """L2 distance."""
    return _apply("euclidean_distance", a, b, allow_nonfinite)


def sqeuclidean_distance(a: Any, b: Any, allow_nonfinite: bool, threads: int) -> Any:
    """Squared L2 distance."""
    return _apply("sqeuclidean_distance", a, b, allow_nonfinite)


def _unit(row: Vec) -> Vec:
    norm = _norm(row)
    if norm and not _NORM_LO < norm < _NORM_HI:
        # a norm beyond float64 (or inf allowed), or a subnormal one (a few bits only):
        # divide by the largest component first, so the norm divided by is in [1, sqrt(n)]
        row = _scaled(row)
        norm = _norm(row)
    return [v / norm for v in row] if norm else list(row)


def normalize(x: Any, inplace: bool, allow_nonfinite: bool) -> Any:
    """Scale each vector (row) to unit L2 norm; zero vectors stay zero."""
    ndim, data = _parse(x, "x", allow_nonfinite)
    result = _unit(data) if ndim == 1 else [_unit(r) for r in data]
    if not inplace:
        return result
    if not isinstance(x, list) or (ndim == 2 and not all(isinstance(r, list) for r in x)):
        raise InputTypeError(f"inplace=True needs a list (of lists), got {type(x).__name__}")
    if ndim == 1:
        x[:] = result
    else:
        for row, new in zip(x, result, strict=True):
            row[:] = new
    return x


def _ranked(scores: Vec, k: int, higher_is_better: bool) -> tuple[list[int], Vec]:
    sign = -1.0 if higher_is_better else 1.0

    def key(i: int) -> tuple[float, int]:
        s = scores[i]
        return (math.inf if s != s else sign * s, i)  # NaN ranks last

    best = heapq.nsmallest(k, range(len(scores)), key=key)
    return best, [scores[i] for i in best]


def top_k(query: Any, matrix: Any, k: int, metric: str, allow_nonfinite: bool, threads: int) -> Any:
    """Indices and scores of the ``k`` best rows of ``matrix`` for each query, best first."""
    check_metric(metric)
    check_k(k)
    nq, q = _parse(query, "query", allow_nonfinite)
    nm, m = _parse(matrix, "matrix", allow_nonfinite)
    if nm != 2:
        raise DimensionMismatchError(f"matrix must be 2-D, got shape {_shape(nm, m)}")
    kind, higher = TOP_K_METRICS[metric]
    scores = _apply_parsed(kind, nq, q, nm, m, ("query", "matrix"))
    if nq == 1:
        return _ranked(scores, k, higher)
    pairs = [_ranked(row, k, higher) for row in scores]
    return [p[0] for p in pairs], [p[1] for p in pairs]


_KINDS = (
    "cosine_similarity",
    "cosine_distance",
    "dot",
    "euclidean_distance",
    "sqeuclidean_distance",
)


_FLAG = "allow_nonfinite"


def bind(allow: bool, threads: int) -> dict[str, Callable[..., Any]]:
    """The public functions with ``allow_nonfinite``'s default fixed (``threads`` unused)."""

    def pair(kind: str) -> Callable[..., Any]:
        def function(a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
            flag = allow if allow_nonfinite is None else check_flag(allow_nonfinite, _FLAG)
            return _apply(kind, a, b, flag)

        function.__name__ = kind
        return function

    def normalize_(x: Any, *, inplace: bool = False, allow_nonfinite: bool | None = None) -> Any:
        flag = allow if allow_nonfinite is None else check_flag(allow_nonfinite, _FLAG)
        if inplace is not False and inplace is not True:
            inplace = check_flag(inplace, "inplace")
        return normalize(x, inplace, flag)

    def top_k_(
        query: Any, matrix: Any, k: int, *, metric: str = "cosine",
        allow_nonfinite: bool | None = None,
    ) -> Any:  # fmt: skip
        flag = allow if allow_nonfinite is None else check_flag(allow_nonfinite, _FLAG)
        return top_k(query, matrix, k, metric, flag, threads)

    return {**{kind: pair(kind) for kind in _KINDS}, "normalize": normalize_, "top_k": top_k_}


def bind_methods(allow: bool, threads: int) -> dict[str, Callable[..., Any]]:
    """:func:`bind`'s functions as methods that ignore ``self``."""
    return as_methods(bind(allow, threads))


def as_methods(functions: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Each function as a method that ignores ``self`` (one frame more per call)."""

    def method(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        call.__name__ = function.__name__
        return call

    return {name: method(function) for name, function in functions.items()}
