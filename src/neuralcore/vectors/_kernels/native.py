"""The native kernels: NumKong/SimSIMD and numpy/BLAS, split by shape. Imported when chosen.

"SimSIMD" below means the SIMD library in use: NumKong (its successor, float64
accumulation for float32) when installed, else SimSIMD itself.

Which library serves which shape was decided by measurement on the target machine (see
``neuralcore bench vectors`` and ``docs``):

* one pair and one query against many rows: SimSIMD, one C call with float64 accumulation
  and no temporaries (5-10x less than numpy for one pair, ~3-5x for one-vs-many with norms);
* many against many, cosine and dot: a BLAS matrix product on row-normalised copies
  (SimSIMD ``cdist`` is ~7x slower there);
* many against many, L2: SimSIMD ``cdist`` (exact per pair, where the BLAS expansion
  ``|a|^2 + |b|^2 - 2ab`` loses precision for close vectors).

NaN/inf detection rides on the work already done where possible: a dot product, an L2
distance or a norm is non-finite whenever an input holds NaN or infinity, so the full
element scan runs only when a result is non-finite (it then raises, or, for a finite input
that overflowed, lets the float64 reference formula answer). SimSIMD's cosine maps zero
vectors and NaN/inf to exactly 0, 1 or 2 or a non-finite value, so only results with those
values are checked and recomputed; a test pins this for every SIMD level the CPU offers.

What SimSIMD cannot be trusted with never reaches a caller: it reads a negative- or
zero-stride vector forwards from its first element (wrong values, read out of bounds), so
the one-pair kernels accept its answer only for forward-contiguous vectors (and anything
else is copied first); its float64 squares under- or overflow for components beyond
~1e+-154, so float64 answers stand only when the norms are inside ``[1e-70, 1e70]``, and
other rows are redone scaled by their largest component (:func:`safe_norms`).
"""

from __future__ import annotations

import importlib
import math
import struct
import types
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from neuralcore.core import optional
from neuralcore.errors import InputTypeError
from neuralcore.vectors._kernels.pure import as_methods
from neuralcore.vectors._spec import TOP_K_METRICS, check_flag, check_k, check_metric
from neuralcore.vectors._validate import as_float_array, check_finite, check_same_dim

__all__ = ("SIMD_NAME", "accelerated", "bind", "bind_methods", "prescaled", "safe_norms")

Arr = NDArray[np.floating[Any]]
Names = tuple[str, str]

_ND = np.ndarray
_FAST = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_INPLACE = frozenset(np.dtype(t) for t in ("float16", "float32", "float64"))
# small integer and half-precision inputs are computed in float32 (exact for int8 sums)
_TO_F32 = frozenset(np.dtype(t) for t in ("float16", "int8", "uint8", "int16", "uint16"))
_CDIST = {
    "cosine_similarity": "cosine",
    "cosine_distance": "cosine",
    "dot": "dot",
    "sqeuclidean_distance": "sqeuclidean",
    "euclidean_distance": "euclidean",
}
_SCORE_BLOCK = 1 << 24  # top_k, many queries: at most this many scores held at once


# The SIMD library: NumKong (SimSIMD's successor) when installed, else SimSIMD. NumKong
# accumulates float32 in float64, so norms of float32 vectors cannot underflow or overflow
# (SimSIMD 6 squares float32 in float32: a vector of norm below ~1e-19 gets a wrong cosine).
# Both take the same calls; only the cosine metric's name differs. Bound once: a module
# global is the cheapest lookup on the one-pair path.
def _simd_library() -> tuple[Any, str]:
    try:
        return importlib.import_module("numkong"), "angular"
    except ModuleNotFoundError as err:
        if err.name != "numkong":
            raise
    return importlib.import_module("simsimd"), "cosine"


_SIMD, _COSINE_METRIC = _simd_library()
SIMD_NAME: str = _SIMD.__name__
_CDIST["cosine_similarity"] = _CDIST["cosine_distance"] = _COSINE_METRIC
_ss_cos: Callable[[Arr, Arr], float] = getattr(_SIMD, _COSINE_METRIC)
_ss_dot: Callable[[Arr, Arr], float] = _SIMD.dot
_ss_sq: Callable[[Arr, Arr], float] = _SIMD.sqeuclidean
_ss_cdist: Callable[..., Any] = _SIMD.cdist
_ss_norm: Callable[..., Any] | None = getattr(_SIMD, "norm", None)  # NumKong only


def _simd_cosine_precise() -> bool:
    """Whether SimSIMD's cosine is exact enough here (its portable kernel is not).

    SimSIMD's serial fallback (CPUs without a SIMD kernel) approximates ``1/sqrt`` to ~1e-3;
    there, cosine goes through BLAS instead.
    """
    probe: Arr = np.arange(1.0, 17.0)
    want = float(probe @ probe[::-1] / (probe @ probe))
    for dtype in (np.float32, np.float64):
        x: Arr = probe.astype(dtype)
        y: Arr = x[::-1].copy()
        if abs((1.0 - _ss_cos(x, y)) - want) > 1e-6:
            return False
    return True


_COSINE_SIMD = _simd_cosine_precise()

# NumKong sums float32 in float64: its float32 cosine is right for any finite magnitude.
# SimSIMD 6 squares and sums float32 in float32, so its cosine is wrong once a squared norm
# leaves float32's range (1.0 instead of 0.7071 for norms ~1e-25 or ~1e20): with it, a
# float32 cosine stands only for squared norms inside this range (measured error < 1e-8
# there; ~2e-7 at 1e-38) and 0 or 2 is never trusted.
_F32_WIDE = _COSINE_METRIC == "angular"
_SQ_LO, _SQ_HI = 1e-30, 1e30


def _f32_pair(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are two forward-contiguous 1-D float32 ndarrays."""
    return (
        type(a) is _ND
        and type(b) is _ND
        and a.ndim == b.ndim == 1
        and a.dtype == b.dtype == np.float32
        and a.strides[0] == 4 == b.strides[0]
    )


def _f32_safe(a: Arr, b: Arr) -> bool:
    """Whether SimSIMD's float32 cosine of ``a`` and ``b`` stands: both squared norms (its
    own float32 sums: an overflow shows as inf, an underflow as a tiny value) in range."""
    return _SQ_LO < _ss_dot(a, a) < _SQ_HI and _SQ_LO < _ss_dot(b, b) < _SQ_HI


# The one-pair functions call SimSIMD directly and let it reject what it cannot take (lists,
# strided, big-endian, mixed or unsupported dtypes: it raises, and the general path
# converts). It checks sizes itself, and it answers a ``float`` only for two 1-D vectors (a
# batch gives a tensor, complex input a complex): anything else takes the general path too.
_SS_REJECTS = (ValueError, TypeError, LookupError, AttributeError)


_FLAG = "allow_nonfinite"
_sqrt = math.sqrt
_ALLOW, _THREADS = False, 1  # placeholders: each bound copy of a pair kernel has its own


# The one-pair kernels. Each is written once as a function and once as a method (a leading
# ``self``, unused); :func:`_settled` gives every (allow, threads) setting its own copy
# whose globals hold ``_ALLOW`` and ``_THREADS``. On the happy path a call is one Python
# frame over SimSIMD: the kernel runs first, and only a result that may be wrong (0 or 2
# for cosine, non-finite, or not a float) or an exception goes to the validating path.
#
# Measured in one interleaved run (384-d float32, CPython 3.11): a closure over the
# settings costs ~9 ns per call more than globals (3.11 copies closure cells into every
# frame), a keyword-only ``allow_nonfinite`` ~13 ns more than a defaulted plain parameter
# (3.11 does not specialise calls to functions with keyword-only parameters), on ~210 ns.
# The public objects show the signature as accepted, ``(a, b, allow_nonfinite=False)``
# (``_ops``), and the flag is checked whenever it is given.


def _cosine_similarity(a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    dist = None  # kept if set: a batch tensor is the one-vs-many answer
    try:
        dist = _ss_cos(a, b)
        # Trusted only strictly between 0 and 2 (SimSIMD maps zero vectors and NaN/inf to
        # 0, 1, 2 or a non-finite value: checked per SIMD level by tests) and for two
        # float32 ndarrays read forwards: a stride of exactly 4 bytes (with SimSIMD itself,
        # which squares float32 in float32, also only for squared norms in [1e-30, 1e30]).
        # SimSIMD misreads negative and zero strides (it reads forwards from the first
        # element), float64 squares can under/overflow, and ``bytes`` and other buffers
        # have no or other strides: all of those take the general path, which answers
        # exactly. A batch (a tensor) cannot be compared with a float: TypeError, same.
        if (
            0.0 < dist < 2.0
            and a.strides[0] == 4 == b.strides[0]
            and (_F32_WIDE or _f32_safe(a, b))
        ):
            return 1.0 - dist
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("cosine_similarity", a, b, flag, _THREADS, dist)


def _cosine_distance(a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    dist = None  # kept if set: a batch tensor is the one-vs-many answer
    try:
        dist = _ss_cos(a, b)
        if (
            0.0 < dist < 2.0
            and a.strides[0] == 4 == b.strides[0]
            and (_F32_WIDE or _f32_safe(a, b))
        ):
            return dist
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("cosine_distance", a, b, flag, _THREADS, dist)


def _dot(a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    result = None
    try:
        result = _ss_dot(a, b)
        # finite (NaN/inf shows), a float (not a batch tensor or a complex), and two
        # ndarrays read forwards with one stride (positive: SimSIMD refuses other strides)
        if (
            type(result) is float
            and result - result == 0.0
            and a.strides[0] == b.strides[0] > 0
            and (_F32_WIDE or a.strides[0] != 4 or _SQ_LO < abs(result) < _SQ_HI)
        ):
            return result
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("dot", a, b, flag, _THREADS, result)


def _sqeuclidean_distance(a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    result = None
    try:
        result = _ss_sq(a, b)
        if (
            type(result) is float
            and result - result == 0.0
            and a.strides[0] == b.strides[0] > 0
            and (_F32_WIDE or a.strides[0] != 4 or _SQ_LO < abs(result) < _SQ_HI)
        ):
            return result
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("sqeuclidean_distance", a, b, flag, _THREADS, result)


def _euclidean_distance(a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    result = None
    try:
        result = _ss_sq(a, b)
        # float32 only (stride 4): a float64 square can under/overflow where the distance
        # itself is a normal number; the general path rescales those
        if (
            type(result) is float
            and result - result == 0.0
            and a.strides[0] == 4 == b.strides[0]
            and (_F32_WIDE or _SQ_LO < result < _SQ_HI)
        ):
            return _sqrt(result)
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("euclidean_distance", a, b, flag, _THREADS, result)


def _cosine_similarity_m(self: Any, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    dist = None  # kept if set: a batch tensor is the one-vs-many answer
    try:
        dist = _ss_cos(a, b)
        if (
            0.0 < dist < 2.0
            and a.strides[0] == 4 == b.strides[0]
            and (_F32_WIDE or _f32_safe(a, b))
        ):
            return 1.0 - dist
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("cosine_similarity", a, b, flag, _THREADS, dist)


def _cosine_distance_m(self: Any, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    dist = None  # kept if set: a batch tensor is the one-vs-many answer
    try:
        dist = _ss_cos(a, b)
        if (
            0.0 < dist < 2.0
            and a.strides[0] == 4 == b.strides[0]
            and (_F32_WIDE or _f32_safe(a, b))
        ):
            return dist
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("cosine_distance", a, b, flag, _THREADS, dist)


def _dot_m(self: Any, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    result = None
    try:
        result = _ss_dot(a, b)
        # finite (NaN/inf shows), a float (not a batch tensor or a complex), and two
        # ndarrays read forwards with one stride (positive: SimSIMD refuses other strides)
        if (
            type(result) is float
            and result - result == 0.0
            and a.strides[0] == b.strides[0] > 0
            and (_F32_WIDE or a.strides[0] != 4 or _SQ_LO < abs(result) < _SQ_HI)
        ):
            return result
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("dot", a, b, flag, _THREADS, result)


def _sqeuclidean_distance_m(self: Any, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    result = None
    try:
        result = _ss_sq(a, b)
        if (
            type(result) is float
            and result - result == 0.0
            and a.strides[0] == b.strides[0] > 0
            and (_F32_WIDE or a.strides[0] != 4 or _SQ_LO < abs(result) < _SQ_HI)
        ):
            return result
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("sqeuclidean_distance", a, b, flag, _THREADS, result)


def _euclidean_distance_m(self: Any, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
    if allow_nonfinite is not None:
        check_flag(allow_nonfinite, _FLAG)
    result = None
    try:
        result = _ss_sq(a, b)
        # float32 only (stride 4): a float64 square can under/overflow where the distance
        # itself is a normal number; the general path rescales those
        if (
            type(result) is float
            and result - result == 0.0
            and a.strides[0] == 4 == b.strides[0]
            and (_F32_WIDE or _SQ_LO < result < _SQ_HI)
        ):
            return _sqrt(result)
    except _SS_REJECTS:
        pass
    flag = _ALLOW if allow_nonfinite is None else allow_nonfinite
    return _general("euclidean_distance", a, b, flag, _THREADS, result)


_PAIR_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "cosine_similarity": _cosine_similarity,
    "cosine_distance": _cosine_distance,
    "dot": _dot,
    "euclidean_distance": _euclidean_distance,
    "sqeuclidean_distance": _sqeuclidean_distance,
}
_PAIR_METHODS: dict[str, Callable[..., Any]] = {
    "cosine_similarity": _cosine_similarity_m,
    "cosine_distance": _cosine_distance_m,
    "dot": _dot_m,
    "euclidean_distance": _euclidean_distance_m,
    "sqeuclidean_distance": _sqeuclidean_distance_m,
}


def _settled(
    kernels: dict[str, Callable[..., Any]], allow: bool, threads: int
) -> dict[str, Callable[..., Any]]:
    """Copies of ``kernels`` reading ``_ALLOW``/``_THREADS`` from their own globals.

    The globals are a snapshot of this module's, made once per setting: the kernels read
    only names bound at import. Examples: ``bind(False, 1)["dot"]([1.0], [2.0])`` is 2.0.
    """
    scope = {**globals(), "_ALLOW": allow, "_THREADS": threads}
    out: dict[str, Callable[..., Any]] = {}
    for name, kernel in kernels.items():
        code = kernel.__code__
        copy = types.FunctionType(code, scope, name, kernel.__defaults__)
        copy.__qualname__ = name
        out[name] = copy
    return out


# The compiled glue (``_accel.c``, built when a C compiler is present): the one-pair cosine
# kernels' argument checks in C, over the same SIMD kernel and the same trust window; any
# other call goes to the Python kernel it wraps. Without it, the Python kernels serve alone
# (same answers; one 384-d float32 pair ~1.9x SimSIMD's own call instead of ~0.7x: ~350 ns
# instead of ~135 ns, measured 2026-11-29). Used with NumKong only: with SimSIMD the Python
# kernels also check the float32 norms (see ``_f32_safe``), which the glue does not.
_ACCEL: Any = optional("neuralcore.vectors._kernels._accel")
_GLUED = ("cosine_similarity", "cosine_distance")


def _angular_address() -> int:
    """The address of NumKong's float32 angular kernel (``pointer_to_angular``), or 0.

    ``numkong.angular`` on two 1-D float32 vectors looks up this same kernel in its dispatch
    table and returns its float64 result as a float; the glue calls it at this address,
    skipping the Python argument parsing (~150 ns). Used only when NumKong serves and, at
    load, the kernel at the address answers bit for bit as ``numkong.angular`` on probes
    (lengths 1-64 and 384, zero, NaN and infinite vectors); otherwise the glue calls
    ``numkong.angular`` itself. The kernel is the one NumKong's dispatch picked at import:
    a later ``numkong.disable_capability`` does not change it.
    """
    pointer = getattr(_SIMD, "pointer_to_angular", None)
    if _ACCEL is None or _COSINE_METRIC != "angular" or pointer is None:
        return 0
    if not str(getattr(_SIMD, "__version__", "")).startswith("7."):
        return 0  # the kernel signature (a, b, n, float64 *out) is checked against NumKong 7
    try:
        address = int(pointer("float32"))
        rng = np.random.default_rng(0)
        probes: list[tuple[Arr, Arr]] = []
        for n in (*range(1, 65), 384):
            a, b = rng.standard_normal((2, n)).astype(np.float32)
            probes += [(a, b), (a, a.copy()), (a, -a), (a, np.zeros(n, np.float32))]
        odd = rng.standard_normal(384).astype(np.float32)
        for value in (np.nan, np.inf, -np.inf):
            bad = odd.copy()
            bad[7] = value
            probes.append((bad, odd))
        for a, b in probes:
            want = _ss_cos(a, b)
            got = _ACCEL.call_angular_f32(address, _ND, a, b)
            if type(want) is not float or struct.pack("d", want) != struct.pack("d", got):
                return 0
    except Exception:  # anything unexpected: the glue calls numkong.angular instead
        return 0
    return address


_ANGULAR_ADDRESS = _angular_address()


def accelerated() -> bool:
    """Whether the one-pair cosine kernels run through the compiled glue (``_accel``).

    Examples
    --------
    >>> accelerated() in (True, False)
    True
    """
    return _ACCEL is not None and _COSINE_SIMD and _F32_WIDE


def _glue(kernels: dict[str, Callable[..., Any]], method: bool) -> dict[str, Callable[..., Any]]:
    """``kernels`` with the cosine pair kernels wrapped in the compiled glue, when built."""
    if accelerated():
        for kind in _GLUED:
            python = kernels[kind]
            glued = _ACCEL.PairKernel(
                _ss_cos,
                python,
                _ND,
                _SS_REJECTS,
                kind == "cosine_similarity",
                method,
                _ANGULAR_ADDRESS,
            )
            glued.__name__, glued.__qualname__ = python.__name__, python.__qualname__
            kernels[kind] = glued
    return kernels


def bind(allow: bool, threads: int) -> dict[str, Callable[..., Any]]:
    """The public functions with ``allow_nonfinite``'s default and the thread count fixed.

    The one-pair kernels (see above) cost one Python frame on top of SimSIMD (the cosine
    ones: the compiled glue's checks, when built), the same for the module functions and
    for :class:`VectorOps`.
    """
    functions = _glue(_settled(_PAIR_FUNCTIONS, allow, threads), method=False)

    def normalize(x: Any, *, inplace: bool = False, allow_nonfinite: bool | None = None) -> Any:
        flag = allow if allow_nonfinite is None else check_flag(allow_nonfinite, _FLAG)
        if inplace is not False and inplace is not True:
            inplace = check_flag(inplace, "inplace")
        return _normalize(x, inplace, flag)

    def top_k(
        query: Any, matrix: Any, k: int, *, metric: str = "cosine",
        allow_nonfinite: bool | None = None,
    ) -> Any:  # fmt: skip
        flag = allow if allow_nonfinite is None else check_flag(allow_nonfinite, _FLAG)
        return _top_k(query, matrix, k, metric, flag, threads)

    functions["normalize"], functions["top_k"] = normalize, top_k
    if not _COSINE_SIMD:  # the portable SimSIMD kernel is imprecise: BLAS for every shape
        for kind in ("cosine_similarity", "cosine_distance"):
            functions[kind] = _general_only(kind, allow, threads)
    return functions


def _general_only(kind: str, allow: bool, threads: int) -> Callable[..., Any]:
    def function(a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
        flag = allow if allow_nonfinite is None else check_flag(allow_nonfinite, _FLAG)
        return _general(kind, a, b, flag, threads)

    function.__name__ = kind
    return function


def bind_methods(allow: bool, threads: int) -> dict[str, Callable[..., Any]]:
    """:func:`bind`'s functions as methods (a leading ``self``, unused), for the classes
    :class:`~neuralcore.vectors.VectorOps` makes per setting.

    A method defined on the class is what CPython 3.11 specialises on lookup; a kernel kept
    per instance and shadowing a documented method costs one generic lookup more per call.
    So the one-pair kernels have method twins; the rest call the bound functions (their
    own work dwarfs one frame).
    """
    methods = _glue(_settled(_PAIR_METHODS, allow, threads), method=True)
    if not _COSINE_SIMD:  # imprecise portable SimSIMD cosine: the general path serves
        del methods["cosine_similarity"], methods["cosine_distance"]
    return {**as_methods(bind(allow, threads)), **methods}


def _target(value: Any) -> np.dtype[Any] | None:
    if isinstance(value, _ND) and value.dtype in _TO_F32:
        return np.dtype(np.float32)
    return None


def _arrays(a: Any, b: Any, names: Names, b_ndims: tuple[int, ...] = (1, 2)) -> tuple[Arr, Arr]:
    """Both inputs as contiguous native float arrays of one dtype and one dimension."""
    x = as_float_array(a, name=names[0], allow_nonfinite=True, dtype=_target(a))
    y = as_float_array(b, name=names[1], allow_nonfinite=True, dtype=_target(b))
    # an empty vector against rows of length n (or a matrix, when it is a list ``[]``) is a
    # matrix with no rows; two empty vectors (``[]`` or (0,) arrays) are a pair, as in numpy
    # and in the pure path (``dot([], [])`` is 0.0)
    rows_only = x.ndim == 2 or b_ndims == (2,)  # ``b`` is a matrix here
    if y.ndim == 1 and y.size == 0 and (x.shape[-1] or (type(b) is not _ND and rows_only)):
        y = y.reshape(0, x.shape[-1])
    if x.ndim == 1 and x.size == 0 and (y.shape[-1] or (type(a) is not _ND and y.ndim == 2)):
        x = x.reshape(0, y.shape[-1])
    if y.ndim not in b_ndims:
        as_float_array(y, name=names[1], ndims=b_ndims, allow_nonfinite=True)  # raises
    if x.dtype != y.dtype:
        x, y = x.astype(np.float64), y.astype(np.float64)
    check_same_dim(x, y, names=names)
    return x, y


def _general(kind: str, a: Any, b: Any, allow: bool, threads: int, batch: Any = None) -> Any:
    """Every shape, dtype and stride. ``batch``: what the one-pair kernel already answered.

    SimSIMD broadcasts a vector against a matrix (a tensor of one value per row, computed
    in float64): when it took both inputs as they are (C-contiguous, so read correctly),
    those values are the one-vs-many result, so they are used instead of computing them
    again (after the same checks as a fresh result).
    """
    if type(batch) is float and kind in _PAIR64:  # SimSIMD took two vectors of one dtype
        found = _pair64(kind, a, b, batch)
        if found is not None:
            return found
    names = ("a", "b")
    if type(batch) is float and not _F32_WIDE and _f32_pair(a, b):
        # SimSIMD's float32 sums left float32's range (or 0/2 for cosine): float64 formula
        x64, y64 = a.astype(np.float64)[None, :], b.astype(np.float64)[None, :]
        return float(_fallback(kind, x64, y64, allow, names)[0, 0])
    x, y = _arrays(a, b, names)
    if x.ndim == 2 and y.ndim == 1:
        x, y, names = y, x, ("b", "a")
    if x.ndim == 1 and y.ndim == 1:
        return float(_one_many(kind, x, y[None, :], allow, threads, names)[0])
    if x.ndim == 1:
        done = None
        if batch is not None and type(batch) is not float and {id(x), id(y)} == {id(a), id(b)}:
            done = np.asarray(batch)
            if done.shape != (len(y),):
                done = None
            else:
                done = done.astype(x.dtype)  # a copy: the tensor's buffer is not kept
                if kind == "euclidean_distance":
                    np.sqrt(done, out=done)
        return _one_many(kind, x, y, allow, threads, names, done)
    return _many_many(kind, x, y, allow, threads, names)


# Norms SimSIMD's float64 arithmetic handles: a row norm in this range keeps every square,
# and the product of two squared norms, inside float64's normal range. Rows outside it
# (float64 only: float32 input is summed in float64 and cannot leave it) are redone with
# the row scaled by its largest component first.
_NORM_LO, _NORM_HI = 1e-70, 1e70
_F32_NORM_LO, _F32_NORM_HI = math.sqrt(_SQ_LO), math.sqrt(_SQ_HI)  # SimSIMD's float32 sums
# A float64 L2 distance below this may come from an underflowed square: redone, scaled.
_L2_TINY = 1e-140
_PAIR64 = frozenset({"cosine_similarity", "cosine_distance", "euclidean_distance"})
_F64 = np.dtype(np.float64)


def _pair64(kind: str, a: Any, b: Any, found: float) -> float | None:
    """SimSIMD's answer for two forward-contiguous float64 vectors when it stands, else None.

    Its float64 squares under- or overflow for norms outside ``[1e-70, 1e70]`` (cosine) or
    a distance below ~1e-140 or beyond float64 (L2): the general path rescales those.
    """
    if type(a) is not _ND or type(b) is not _ND or a.dtype != _F64:  # bytes, memoryview...
        return None
    if not a.strides[0] == 8 == b.strides[0]:
        return None
    if kind == "euclidean_distance":
        return _sqrt(found) if _L2_TINY * _L2_TINY < found < math.inf else None
    xx, yy = _ss_dot(a, a), _ss_dot(b, b)
    if not (_NORM_LO**2 < xx < _NORM_HI**2 and _NORM_LO**2 < yy < _NORM_HI**2):
        return None  # also NaN/inf, and zero vectors
    return 1.0 - found if kind == "cosine_similarity" else found


def _check(x: Arr, y: Arr, names: Names) -> None:
    check_finite(x, name=names[0])
    check_finite(y, name=names[1])


def _reference(kind: str, x: Arr, y: Arr) -> Arr:
    """All-pairs float64 formula: edge shapes, non-finite data, extreme magnitudes.

    Cosine and L2 distance are exact for any finite input (rows are rescaled where squares
    would under- or overflow); dot and squared L2 overflow to ``inf`` as the true value
    does. NaN/inf follow IEEE arithmetic: a cosine with a non-finite row is NaN.
    """
    x2, y2 = np.atleast_2d(x).astype(np.float64), np.atleast_2d(y).astype(np.float64)
    result: Arr
    with np.errstate(all="ignore"):
        if kind == "dot":
            result = x2 @ y2.T
        elif kind in ("sqeuclidean_distance", "euclidean_distance"):
            i, j = (part.reshape(-1) for part in np.indices((len(x2), len(y2))))
            result = _pairs(kind, x2[i], y2[j]).reshape(len(x2), len(y2))
        else:
            sim = _reference_cosine(x2, y2)
            result = sim if kind == "cosine_similarity" else 1.0 - sim
    return result.astype(x.dtype)


def _reference_cosine(x: Arr, y: Arr) -> Arr:
    """All-pairs cosine of float64 rows; zero rows give 0, non-finite rows NaN."""
    ux, uy = _unit64(x), _unit64(y)
    sim: Arr = ux @ uy.T
    sim[~np.isfinite(ux).all(axis=1)] = np.nan  # BLAS need not propagate NaN times 0
    sim[:, ~np.isfinite(uy).all(axis=1)] = np.nan
    return sim


def _unit64(x: Arr) -> Arr:
    """float64 rows at unit length (zero rows stay zero; NaN/inf rows hold a NaN)."""
    x, norms = prescaled(x, _safe_norms(x))
    with np.errstate(all="ignore"):
        return cast(Arr, x / np.where(norms == 0.0, 1.0, norms)[:, None])


def _pairs(kind: str, x: Arr, y: Arr) -> Arr:
    """(Squared) L2 distance of each row of ``x`` to the same row of ``y``, in float64.

    The euclidean distance is taken on rows scaled by the pair's largest component, so it
    is exact whenever it is finite (the square may not be); NaN/inf follow IEEE.
    """
    with np.errstate(all="ignore"):
        if kind == "sqeuclidean_distance":
            diff = x - y
            return cast(Arr, np.einsum("ij,ij->i", diff, diff))
        top = np.maximum(np.abs(x).max(axis=1, initial=0.0), np.abs(y).max(axis=1, initial=0.0))
        scale = np.where((top > 0.0) & np.isfinite(top), top, 1.0)
        diff = x / scale[:, None] - y / scale[:, None]
        return cast(Arr, np.sqrt(np.einsum("ij,ij->i", diff, diff)) * scale)


def prescaled(x: Arr, norms: NDArray[np.float64]) -> tuple[Arr, NDArray[np.float64]]:
    """``x`` (rows) and ``norms``, with every non-zero row whose norm is outside
    ``[1e-70, 1e70]`` divided by its largest magnitude first (and its norm taken again).

    Dividing a row by its norm is exact only when the norm is a normal float64: a subnormal
    norm (float64 rows below ~1e-308) keeps a few bits, and one beyond float64 is ``inf``.
    After this the norms to divide by are in ``[1, sqrt(dim)]``. NaN/inf rows are kept as
    they are (their norm stays NaN/inf), zero rows too. Only such rows are copied.

    Examples
    --------
    >>> rows, norms = prescaled(np.array([[1e-320, 2e-320, 3e-320]]), np.array([3.7e-320]))
    >>> float(np.linalg.norm(rows[0] / norms[0]))
    1.0
    """
    odd = np.flatnonzero(~((norms > _NORM_LO) & (norms < _NORM_HI)) & (norms != 0.0))
    if not len(odd):
        return x, norms
    rows2 = np.atleast_2d(x)
    flat = np.atleast_1d(norms)
    out, outn = rows2.copy(), flat.copy()
    out[odd] = _rescaled(rows2[odd])
    outn[odd] = _row_norms(np.ascontiguousarray(out[odd]))
    return out.reshape(x.shape), outn.reshape(norms.shape)


def _rescaled(x: Arr) -> Arr:
    """Rows divided by their largest magnitude, so huge finite rows do not overflow norms."""
    top = np.abs(x).max(axis=1, keepdims=True, initial=0.0)
    return cast(Arr, np.divide(x, top, out=x.copy(), where=(top > 0) & np.isfinite(top)))


def _fallback(kind: str, x: Arr, y: Arr, allow: bool, names: Names) -> Arr:
    if not allow:
        _check(x, y, names)
    return _reference(kind, x, y)


def _cdist(x: Arr, y: Arr, metric: str, threads: int) -> Arr:
    out = "float32" if x.dtype == np.float32 else "float64"
    rows = x.reshape(1, -1) if x.ndim == 1 else x  # NumKong's 1-D path is ~2x slower
    if metric == "euclidean" and out == "float64":
        # NumKong 7.8's float64 euclidean cdist answers ~4e-8 for about one identical pair in
        # six (its square root is approximate); its squared distance is exact: root that
        squared: Arr = np.asarray(
            _ss_cdist(rows, y, metric="sqeuclidean", out_dtype=out, threads=threads)
        )
        return cast(Arr, np.sqrt(squared, out=squared))
    result = _ss_cdist(rows, y, metric=metric, out_dtype=out, threads=threads)
    return np.asarray(result)


def _one_many(
    kind: str, q: Arr, m: Arr, allow: bool, threads: int, names: Names, done: Arr | None = None
) -> Arr:
    if m.shape[0] == 0 or m.shape[1] == 0:
        return _fallback(kind, q, m, allow, names).reshape(-1)
    if kind.startswith("cosine") and not _COSINE_SIMD:
        return _many_many(kind, q[None, :], m, allow, threads, names).reshape(-1)
    result = _cdist(q, m, _CDIST[kind], threads).reshape(-1) if done is None else done
    if kind.startswith("cosine"):
        return _cosine_rows(kind, result, q, m, allow, names)
    return _checked(kind, result[None, :], q[None, :], m, allow, names).reshape(-1)


def _checked(kind: str, result: Arr, x: Arr, y: Arr, allow: bool, names: Names) -> Arr:
    """Dot/L2 results (all pairs of ``x`` and ``y`` rows) with the doubtful pairs redone.

    A dot product or an L2 distance is non-finite whenever an input holds NaN or infinity,
    so the element scan runs only then (it raises unless ``allow``); the pairs are redone
    in float64 with IEEE semantics (SimSIMD answers NaN where ``inf - 1`` squared is inf)
    and, for euclidean distance, exactly where a square overflowed or underflowed.
    """
    bad = ~np.isfinite(result)
    if kind == "euclidean_distance" and x.dtype == np.float64:
        bad |= result < _L2_TINY
    if not bad.any():
        return result
    i, j = np.nonzero(bad)
    if not allow and not (np.isfinite(x[i]).all() and np.isfinite(y[j]).all()):
        _check(x, y, names)
    if kind != "dot":
        result[i, j] = _pairs(kind, x[i].astype(np.float64), y[j].astype(np.float64))
    return result


def _cosine_rows(kind: str, dist: Arr, q: Arr, m: Arr, allow: bool, names: Names) -> Arr:
    """Redo in float64 the rows SimSIMD may have got wrong, checking them for NaN/inf.

    SimSIMD answers a zero row with exactly 1 (similarity 0, right as it is), two zero
    vectors with 0, and NaN/inf input with 0, 2 or a non-finite value; for float32 only
    rows at 0 or 2 or non-finite are looked at again: the check is a pass over the results,
    not over the matrix (a NaN makes ``min``/``max`` NaN, so it fails the fast test).
    float64 squares can under- or overflow inside SimSIMD: rows whose norm (or the query's)
    is outside ``[1e-70, 1e70]`` are redone too.
    """
    wide = q.dtype == np.float64
    exact32 = not wide and _F32_WIDE  # NumKong's float32: float64 sums
    if exact32 and dist.min() > 0.0 and dist.max() < 2.0:
        return 1.0 - dist if kind == "cosine_similarity" else dist
    odd = ~((dist > 0.0) & (dist < 2.0))
    if not exact32:
        # float64 (any library) or SimSIMD's float32 sums: squares can leave the range
        low, high = (_NORM_LO, _NORM_HI) if wide else (_F32_NORM_LO, _F32_NORM_HI)
        if not low < float(_row_norms(q)) < high:
            odd[:] = True
        else:
            norms = _row_norms(m)
            odd |= ~((norms > low) & (norms < high))
    idx = np.flatnonzero(odd)
    if len(idx):
        rows = m[idx]
        finite = bool(np.isfinite(q).all()) and bool(np.isfinite(rows).all())
        if not allow and not finite:
            _check(q, m, names)
        if finite and exact32 and q.any():  # NumKong float32: 0 or 2 (non-zero row) is exact
            idx = idx[~(np.isfinite(dist[idx]) & rows.any(axis=1))]
        if len(idx):
            dist[idx] = _reference("cosine_distance", q, m[idx]).reshape(-1)
    return 1.0 - dist if kind == "cosine_similarity" else dist


def _unit_rows(x: Arr) -> Arr | None:
    """Rows scaled to unit length; norms in float64 (rescaled where squares would leave
    float64's range), so no finite row under- or overflows; None for non-finite norms."""
    norms = _safe_norms(x)
    if not np.isfinite(norms).all():
        return None
    x, norms = prescaled(x, norms)  # float64 rows of subnormal norm: divided exactly
    norms[norms == 0] = 1.0
    if x.dtype == np.float32 and norms.min() > 1e-37 and norms.max() < 1e37:
        # each 1/norm is a normal float32: scale in float32 (no float64 temporary)
        scaled: Arr = x * (1.0 / norms).astype(np.float32)[:, None]
        return scaled
    return cast(Arr, (x / norms[:, None]).astype(x.dtype, copy=False))


def _many_many(kind: str, x: Arr, y: Arr, allow: bool, threads: int, names: Names) -> Arr:
    if not (x.shape[0] and y.shape[0] and x.shape[1]):
        return _fallback(kind, x, y, allow, names)
    if kind.startswith("cosine"):
        xn, yn = _unit_rows(x), _unit_rows(y)
        if xn is None or yn is None:
            return _fallback(kind, x, y, allow, names)
        sim = xn @ yn.T
        return sim if kind == "cosine_similarity" else 1.0 - sim
    result = x @ y.T if kind == "dot" else _cdist(x, y, _CDIST[kind], threads)
    return _checked(kind, result, x, y, allow, names)


def _normalize(x: Any, inplace: bool, allow_nonfinite: bool) -> Any:
    """Scale each vector (row) to unit L2 norm; zero vectors stay zero."""
    if (
        not inplace
        and type(x) is _ND
        and x.ndim == 1
        and x.dtype in _FAST
        and x.strides[0] == x.itemsize  # SimSIMD misreads negative or zero strides
    ):
        try:
            square = _ss_dot(x, x)
        except _SS_REJECTS:
            pass
        else:
            # SimSIMD may square float32 in float32: outside this range the general path
            # takes the norm in float64 instead
            if 1e-30 < square < 1e30:
                return np.multiply(x, 1.0 / math.sqrt(square))
    arr = _inplace_target(x) if inplace else as_float_array(x, name="x", allow_nonfinite=True)
    norms = _safe_norms(arr)
    if not allow_nonfinite and not np.isfinite(norms).all():
        check_finite(arr, name="x")  # raises, unless a huge finite row overflowed
    # rows of subnormal or overflowing norm: scaled by their largest component first
    src, norms = prescaled(arr, norms)
    norms = np.where(norms == 0.0, 1.0, norms)[..., None]
    with np.errstate(all="ignore"):
        if inplace:
            np.divide(src, norms, out=arr, casting="same_kind")
            return arr
        return (src / norms).astype(arr.dtype)


def _row_norms(arr: Arr) -> NDArray[np.float64]:
    """Norms of the rows (or of the vector) in float64; NumKong's SIMD norm for matrices."""
    flags = arr.flags  # NumKong refuses an unaligned buffer ("=f")
    if (
        _ss_norm is not None
        and arr.ndim == 2
        and arr.dtype in _FAST
        and flags.c_contiguous
        and flags.aligned
    ):
        return np.asarray(_ss_norm(arr, axis=1), dtype=np.float64)
    with np.errstate(all="ignore"):
        squares = np.einsum("...i,...i->...", arr, arr, dtype=np.float64, casting="unsafe")
        return cast("NDArray[np.float64]", np.sqrt(squares))  # a string: no typing at run time


def safe_norms(arr: Arr) -> NDArray[np.float64]:
    """Exact float64 norms of the rows (or the vector) of any finite input.

    The sum of squares runs first; only rows whose norm falls outside ``[1e-70, 1e70]``
    (where a square may have under- or overflowed: zero rows, float64 extremes) are redone
    scaled by their largest component. NaN/inf rows keep their NaN/inf norm; a norm beyond
    float64's range is ``inf``.
    """
    norms = np.array(_row_norms(arr), dtype=np.float64, ndmin=1)
    bad = np.flatnonzero(~((norms > _NORM_LO) & (norms < _NORM_HI)))
    if len(bad):
        rows = np.atleast_2d(arr)[bad].astype(np.float64)
        top = np.abs(rows).max(axis=1, initial=0.0)
        fine = np.isfinite(top) & (top > 0.0)
        scaled = rows[fine] / top[fine, None]
        with np.errstate(over="ignore"):
            norms[bad[fine]] = top[fine] * np.sqrt(np.einsum("ij,ij->i", scaled, scaled))
    return norms.reshape(arr.shape[:-1])


_safe_norms = safe_norms


def _inplace_target(x: Any) -> Arr:
    if not (isinstance(x, _ND) and x.dtype in _INPLACE and x.ndim in (1, 2)):
        kind = type(x).__name__
        what = f"{kind} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}".strip()
        raise InputTypeError(f"inplace=True needs a 1-D or 2-D float16/32/64 ndarray, got {what}")
    if not x.flags.writeable:
        raise InputTypeError("inplace=True needs a writeable array, got a read-only one")
    return x


def _best(scores: Arr, k: int, higher: bool) -> NDArray[np.int64]:
    """Indices of the ``k`` best scores along the last axis, best first, ties by index."""
    n = scores.shape[-1]
    k = min(k, n)
    key = np.negative(scores) if higher else scores
    key = np.where(np.isnan(key), np.inf, key)  # NaN ranks last
    if k < n:
        part = np.argpartition(key, k - 1, axis=-1)[..., :k] if k else key[..., :0]
    else:
        part = np.broadcast_to(np.arange(n), key.shape)
    part = part.astype(np.int64)
    order = np.lexsort((part, np.take_along_axis(key, part, axis=-1)), axis=-1)
    return np.take_along_axis(part, order, axis=-1)


def _top_k(
    query: Any, matrix: Any, k: int, metric: str, allow_nonfinite: bool, threads: int
) -> Any:
    """Indices and scores of the ``k`` best rows of ``matrix`` for each query, best first."""
    check_metric(metric)
    check_k(k)
    names = ("query", "matrix")
    q, m = _arrays(query, matrix, names, b_ndims=(2,))
    kind, higher = TOP_K_METRICS[metric]
    if q.ndim == 1:
        scores = _one_many(kind, q, m, allow_nonfinite, threads, names)
        best = _best(scores, k, higher)
        return best, scores[best]
    step = max(1, _SCORE_BLOCK // max(1, m.shape[0]))
    parts = []
    for start in range(0, max(1, q.shape[0]), step):
        block = _many_many(kind, q[start : start + step], m, allow_nonfinite, threads, names)
        best = _best(block, k, higher)
        parts.append((best, np.take_along_axis(block, best, axis=-1)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
