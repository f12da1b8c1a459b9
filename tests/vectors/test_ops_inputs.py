"""Bad and unusual input for every vector function, on both backends."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from vector_oracle import KINDS, needs_native, oracle

from neuralcore import vectors
from neuralcore.core import (
    ConfigError,
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    NonFiniteError,
)
from neuralcore.vectors import VectorOps

DISTANCES = (
    "cosine_similarity",
    "cosine_distance",
    "dot",
    "euclidean_distance",
    "sqeuclidean_distance",
)
RNG = np.random.default_rng(7)
A = RNG.standard_normal(8)
M = RNG.standard_normal((5, 8))


def _ref_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", DISTANCES)
@pytest.mark.parametrize(("a", "b"), [(A, M[:, :3]), (A[:3], A), (M, M[:, :4])])
def test_dimension_mismatch_names_both_shapes(
    vector_ops: VectorOps, name: str, a: Any, b: Any
) -> None:
    with pytest.raises(DimensionMismatchError) as err:
        getattr(vector_ops, name)(a, b)
    assert str(a.shape) in str(err.value)
    assert str(b.shape) in str(err.value)


@pytest.mark.parametrize("name", ["cosine_similarity", "cosine_distance"])
def test_zero_vectors_give_cosine_zero_never_nan(vector_ops: VectorOps, name: str) -> None:
    z = np.zeros(8)
    want = 0.0 if name == "cosine_similarity" else 1.0
    fn = getattr(vector_ops, name)
    assert fn(z, z) == want
    assert fn(z, A) == want
    got = np.asarray(fn(np.stack([z, A]), np.stack([z, A, z])), dtype=float)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got[0], [want] * 3)
    np.testing.assert_allclose(
        got[1], [want, 1.0 - want * 0 if want == 0 else 0.0, want], atol=1e-6
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@needs_native
def test_zero_vectors_native_fast_path(dtype: type) -> None:
    ops = VectorOps(backend="native")
    z = np.zeros(384, dtype)
    assert ops.cosine_similarity(z, z) == 0.0
    assert ops.cosine_distance(z, np.ones(384, dtype)) == 1.0
    assert np.asarray(ops.cosine_similarity(z, np.zeros((3, 384), dtype))).tolist() == [0.0] * 3


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", DISTANCES)
@pytest.mark.parametrize("where", ["a", "b-row"])
def test_nonfinite_raises_by_default(
    vector_ops: VectorOps, bad: float, name: str, where: str
) -> None:
    a, m = A.copy(), M.copy()
    if where == "a":
        a[2] = bad
    else:
        m[3, 1] = bad
    fn = getattr(vector_ops, name)
    with pytest.raises(NonFiniteError, match="allow_nonfinite"):
        fn(a, m)
    with pytest.raises(NonFiniteError):
        fn(a, m[3] if where == "b-row" else m[0])
    with pytest.raises(NonFiniteError):
        fn(m if where == "b-row" else np.stack([a, a]), M)


def test_nonfinite_in_top_k_and_normalize(vector_ops: VectorOps) -> None:
    m = M.copy()
    m[1, 1] = math.nan
    with pytest.raises(NonFiniteError, match="matrix"):
        vector_ops.top_k(A, m, 2)
    with pytest.raises(NonFiniteError, match="x"):
        vector_ops.normalize(m)


@pytest.mark.parametrize("name", DISTANCES)
def test_allow_nonfinite_propagates_nan(vector_ops: VectorOps, name: str) -> None:
    a = A.copy()
    a[0] = math.nan
    fn = getattr(vector_ops, name)
    assert math.isnan(fn(a, A, allow_nonfinite=True))
    rows = np.asarray(fn(a, M, allow_nonfinite=True), dtype=float)
    assert np.isnan(rows).all()
    ops = VectorOps(backend=vector_ops.backend, allow_nonfinite=True)  # the instance default
    assert math.isnan(getattr(ops, name)(A, a))


def test_allow_nonfinite_nan_ranks_last_in_top_k(vector_ops: VectorOps) -> None:
    m = M.copy()
    m[0, 0] = math.nan
    idx, scores = vector_ops.top_k(A, m, 5, allow_nonfinite=True)
    assert int(np.asarray(idx)[-1]) == 0
    assert math.isnan(float(np.asarray(scores)[-1]))


def test_overflowing_finite_input_is_not_an_error(vector_ops: VectorOps) -> None:
    big = np.full(4, 1e200)
    assert vector_ops.dot(big, big) == math.inf
    assert vector_ops.cosine_similarity(big, big) == pytest.approx(1.0)
    assert vector_ops.cosine_similarity(big, -big) == pytest.approx(-1.0)
    assert [float(v) for v in vector_ops.normalize(big)] == pytest.approx([0.5] * 4)


@pytest.mark.parametrize("name", DISTANCES)
def test_empty_matrix_gives_empty_result(vector_ops: VectorOps, name: str) -> None:
    fn = getattr(vector_ops, name)
    assert np.asarray(fn(A, np.zeros((0, 8)))).size == 0
    assert np.asarray(fn(np.zeros((0, 8)), M)).size == 0
    assert np.asarray(fn(A, [])).size == 0


def test_empty_matrix_top_k(vector_ops: VectorOps) -> None:
    idx, scores = vector_ops.top_k(A, np.zeros((0, 8)), 3)
    assert len(idx) == len(scores) == 0


@pytest.mark.parametrize(
    "bad",
    [
        np.array(["a", "b"]),
        np.array([object(), object()], dtype=object),
        "ab",
        ["x", "y"],
        [1.0, None],
        [[1.0, 2.0], [3.0]],
        np.array([1 + 2j, 3j]),
        [True, False],
    ],
)
def test_non_numeric_input_raises_type_error(vector_ops: VectorOps, bad: Any) -> None:
    with pytest.raises(InputTypeError):
        vector_ops.dot(bad, [1.0, 2.0])
    with pytest.raises(TypeError):  # InputTypeError is also a TypeError
        vector_ops.top_k([1.0, 2.0], [bad, bad] if isinstance(bad, list) else bad, 1)


def test_three_dimensional_input_is_rejected(vector_ops: VectorOps) -> None:
    with pytest.raises(DimensionMismatchError):
        vector_ops.dot(np.zeros((2, 2, 2)), np.zeros(2))


@pytest.mark.parametrize("name", DISTANCES)
def test_non_contiguous_and_big_endian_arrays(vector_ops: VectorOps, name: str) -> None:
    wide = RNG.standard_normal((6, 16))
    strided, rows = wide[:, ::2], wide[::2, ::2]  # every other column: not contiguous
    fn = getattr(vector_ops, name)
    want = np.asarray(fn(np.ascontiguousarray(strided[0]), np.ascontiguousarray(rows)))
    # atol: a distance of a row to itself is 0 give or take one float64 rounding of the
    # cosine (2.2e-16); rtol alone fails on which of the two a path lands (RNG draws vary
    # with the test order under xdist)
    np.testing.assert_allclose(np.asarray(fn(strided[0], rows)), want, rtol=1e-12, atol=1e-15)
    swapped = np.ascontiguousarray(rows).astype(">f8")
    np.testing.assert_allclose(np.asarray(fn(strided[0], swapped)), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        np.asarray(fn(strided[0].astype(">f4"), rows.astype(">f4"))), want, rtol=1e-5, atol=1e-5
    )


def test_k_larger_than_n_returns_all_rows(vector_ops: VectorOps) -> None:
    idx, scores = vector_ops.top_k(A, M, 50)
    assert sorted(int(i) for i in idx) == list(range(5))
    assert list(np.asarray(scores)) == sorted(np.asarray(scores), reverse=True)


def test_top_k_ties_go_to_lower_index(vector_ops: VectorOps) -> None:
    m = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    idx, _ = vector_ops.top_k([1.0, 0.0], m, 4)
    assert [int(i) for i in idx] == [1, 3, 0, 2]


def test_top_k_many_queries_shape(vector_ops: VectorOps) -> None:
    idx, scores = vector_ops.top_k(M[:3], M, 2, metric="l2")
    assert np.asarray(idx).shape == np.asarray(scores).shape == (3, 2)
    assert [int(row[0]) for row in idx] == [0, 1, 2]  # each row's nearest is itself


@pytest.mark.parametrize(
    ("k", "metric", "error"),
    [
        (-1, "cosine", InvalidInputError),
        (1, "hamming", InvalidInputError),
        (1.5, "cosine", InputTypeError),
    ],
)
def test_top_k_bad_arguments(vector_ops: VectorOps, k: Any, metric: Any, error: type) -> None:
    with pytest.raises(error):
        vector_ops.top_k(A, M, k, metric=metric)


def test_top_k_matrix_must_be_2d(vector_ops: VectorOps) -> None:
    with pytest.raises(DimensionMismatchError, match="matrix"):
        vector_ops.top_k(A, A, 1)


@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.uint8])
def test_small_dtypes_are_accepted(vector_ops: VectorOps, dtype: type) -> None:
    a = np.array([1, 2, 3, 4], dtype=dtype)
    m = np.array([[4, 3, 2, 1], [1, 2, 3, 4]], dtype=dtype)
    a64, m64 = a.astype(np.float64), m.astype(np.float64)
    np.testing.assert_allclose(np.asarray(vector_ops.dot(a, m), dtype=float), m64 @ a64, rtol=1e-3)
    assert vector_ops.cosine_similarity(a, m[1]) == pytest.approx(_ref_cos(a64, m64[1]), rel=1e-5)


@needs_native
def test_native_keeps_float32_and_float64() -> None:
    ops = VectorOps(backend="native")
    for dtype in (np.float32, np.float64):
        m = M.astype(dtype)
        assert ops.cosine_similarity(m[0], m).dtype == dtype
        assert ops.dot(m, m).dtype == dtype
        assert ops.normalize(m).dtype == dtype
        assert ops.top_k(m[0], m, 2)[1].dtype == dtype
    mixed = ops.dot(M[0].astype(np.float32), M)
    assert mixed.dtype == np.float64


def test_lists_and_arrays_give_the_same_answer(vector_ops: VectorOps) -> None:
    from_lists = np.asarray(vector_ops.cosine_similarity(A.tolist(), M.tolist()))
    from_arrays = np.asarray(vector_ops.cosine_similarity(A, M))
    np.testing.assert_allclose(from_lists, from_arrays, rtol=1e-12)
    assert vector_ops.dot(tuple(A), tuple(A)) == pytest.approx(float(A @ A))
    assert vector_ops.dot(2 * np.ones(3, np.int64), [1, 2, 3]) == 12.0


def test_matrix_vector_order_does_not_matter(vector_ops: VectorOps) -> None:
    one = np.asarray(vector_ops.euclidean_distance(A, M))
    other = np.asarray(vector_ops.euclidean_distance(M, A))
    np.testing.assert_allclose(one, other, rtol=1e-12)


@needs_native
def test_normalize_inplace_native() -> None:
    ops = VectorOps(backend="native")
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    assert ops.normalize(x, inplace=True) is x
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    with pytest.raises(InputTypeError):
        ops.normalize([3.0, 4.0], inplace=True)
    frozen = np.ones(3)
    frozen.flags.writeable = False
    with pytest.raises(InputTypeError, match="read-only"):
        ops.normalize(frozen, inplace=True)


def test_normalize_inplace_python() -> None:
    ops = VectorOps(backend="python")
    x = [[3.0, 4.0], [0.0, 0.0]]
    row = x[0]
    assert ops.normalize(x, inplace=True) is x
    assert x[0] is row
    assert x == [[0.6, 0.8], [0.0, 0.0]]
    with pytest.raises(InputTypeError):
        ops.normalize((3.0, 4.0), inplace=True)


def test_normalize_does_not_modify_input(vector_ops: VectorOps) -> None:
    x = np.array([3.0, 4.0])
    out = vector_ops.normalize(x)
    assert x.tolist() == [3.0, 4.0]
    assert [float(v) for v in out] == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_count_is_a_config_error(threads: Any) -> None:
    with pytest.raises(ConfigError, match="threads"):
        VectorOps(threads=threads)


def test_bad_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="backend"):
        VectorOps(backend="gpu")  # type: ignore[arg-type]


def test_complex_input_is_refused(vector_ops: VectorOps) -> None:
    z = np.ones(4, dtype=np.complex128)
    for name in ("dot", "cosine_similarity", "euclidean_distance"):
        with pytest.raises(InputTypeError):
            getattr(vector_ops, name)(z, z)


@needs_native
def test_backends_agree_on_two_empty_lists() -> None:
    # two empty vectors, as numpy reads ``[]`` (numpy.dot([], []) is 0.0), on both backends
    for name in ("dot", "cosine_similarity", "euclidean_distance"):
        native = getattr(VectorOps(backend="native"), name)([], [])
        pure = getattr(VectorOps(backend="python"), name)([], [])
        assert native == pure == 0.0, name
        assert type(native) is type(pure) is float, name


def test_integers_beyond_float64_are_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="too large for float64"):
        VectorOps(backend="python").dot([10**400, 1], [1, 1])


@needs_native
def test_normalize_inplace_refuses_long_double() -> None:
    x = np.ones(4, dtype=np.longdouble)
    with pytest.raises(InputTypeError, match="float16/32/64"):
        VectorOps(backend="native").normalize(x, inplace=True)


def test_top_k_accepts_numpy_integer_k(vector_ops: VectorOps) -> None:
    idx, _ = vector_ops.top_k([1.0, 0.0], [[0.0, 1.0], [1.0, 0.0]], np.int64(1))
    assert [int(i) for i in idx] == [1]


@needs_native
@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vector_against_matrix_reuses_the_broadcast_answer(name: str, dtype: type) -> None:
    """One vector against a matrix, either order, through the public functions (where the
    pair kernel's broadcast answer is reused): exact on zero rows, checked for NaN."""
    rng = np.random.default_rng(3)
    q, m = rng.standard_normal(24).astype(dtype), rng.standard_normal((40, 24)).astype(dtype)
    m[5] = 0.0
    m[6] = q  # a duplicate: cosine distance exactly 0
    fn = getattr(vectors, name)
    want = oracle(name, q, m)[0]
    tol = 1e-5 if dtype is np.float32 else 1e-12
    for got in (fn(q, m), fn(m, q)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    m[9, 3] = np.nan
    with pytest.raises(NonFiniteError):
        fn(q, m)
    assert np.isnan(fn(q, m, allow_nonfinite=True)[9])


@pytest.mark.parametrize(
    "name",
    ["cosine_similarity", "cosine_distance", "dot", "sqeuclidean_distance", "euclidean_distance"],
)
@pytest.mark.parametrize("pair", [(b"ab", b"ba"), ("ab", "ba")], ids=["bytes", "str"])
def test_bytes_and_str_pairs_are_refused_by_every_pair_function(
    vector_ops: VectorOps, name: str, pair: tuple[Any, Any]
) -> None:
    """A float32 blob read from a database must not be scored as a vector of its bytes."""
    a, b = pair
    with pytest.raises(InputTypeError, match=r"bytes|str"):
        getattr(vector_ops, name)(a, b)
    with pytest.raises(InputTypeError, match=r"bytes|str"):
        getattr(vectors, name)(a, b)
    with pytest.raises(InputTypeError):
        getattr(vector_ops, name)(a, np.frombuffer(b"ab", dtype=np.uint8))
