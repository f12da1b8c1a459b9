"""Property tests: every vector function, both backends, against a float64 numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from vector_oracle import KINDS, VECTOR_BACKENDS, as_input, expected_shape, oracle, tolerance

from neuralcore.vectors import VectorOps

SETTINGS = settings(max_examples=100, deadline=None)
DTYPES = st.sampled_from([np.float32, np.float64])
# Zeros (so zero vectors) and magnitudes 1e-6 (2**-20)..1e3 of either sign. Smaller components are
# left out on purpose: their squares leave float32's normal range, and SIMD kernels that
# square in float32 lose precision there (a documented limit, not a tested promise).
ELEMENTS = st.just(0.0) | st.builds(
    lambda sign, v: sign * v, st.sampled_from([-1.0, 1.0]), st.floats(2**-20, 1e3, width=32)
)


@st.composite
def operands(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two inputs sharing a last dimension: vector/vector, vector/matrix, matrix/matrix."""
    dtype, dim = draw(DTYPES), draw(st.integers(1, 24))
    shapes = [(dim,), (draw(st.integers(0, 5)), dim)]
    sa, sb = draw(st.sampled_from(shapes)), draw(st.sampled_from(shapes))
    if len(sa) == 2 and len(sb) == 2:
        sb = (draw(st.integers(0, 5)), dim)
    a = draw(hnp.arrays(dtype, sa, elements=ELEMENTS))
    return a, draw(hnp.arrays(dtype, sb, elements=ELEMENTS))


def _check(kind: str, result: object, a: np.ndarray, b: np.ndarray) -> None:
    got = np.asarray(result, dtype=np.float64)
    shape = expected_shape(a, b)
    if 0 in shape and got.size == 0:
        return  # an empty list cannot say how many dimensions it had
    assert got.shape == shape
    want = oracle(kind, a, b).reshape(shape) if shape else oracle(kind, a, b)[0, 0]
    allowed = tolerance(kind, a, b).reshape(shape) if shape else tolerance(kind, a, b)[0, 0]
    if a.ndim == 2 and b.ndim == 1:  # one value per row of a
        want = oracle(kind, a, b)[:, 0]
        allowed = tolerance(kind, a, b)[:, 0]
    np.testing.assert_array_less(np.abs(got - want), allowed + 1e-5 * np.abs(want))


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(pair=operands())
def test_distance_matches_oracle(
    backend: str, kind: str, pair: tuple[np.ndarray, np.ndarray]
) -> None:
    a, b = pair
    ops = VectorOps(backend=backend)
    result = getattr(ops, kind)(as_input(backend, a), as_input(backend, b))
    if a.ndim == 1 and b.ndim == 1:
        assert isinstance(result, float)
    _check(kind, result, a, b)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@SETTINGS
@given(
    x=hnp.arrays(DTYPES, hnp.array_shapes(min_dims=1, max_dims=2, max_side=12), elements=ELEMENTS)
)
def test_normalize_matches_oracle(backend: str, x: np.ndarray) -> None:
    result = np.asarray(VectorOps(backend=backend).normalize(as_input(backend, x)))
    x64 = np.atleast_2d(x.astype(np.float64))
    norms = np.linalg.norm(x64, axis=1, keepdims=True)
    want = np.divide(x64, norms, out=np.zeros_like(x64), where=norms > 0).reshape(x.shape)
    assert result.shape == x.shape
    np.testing.assert_allclose(result, want, rtol=1e-5, atol=1e-6)


@st.composite
def search_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, str]:
    dtype, dim, n = draw(DTYPES), draw(st.integers(1, 16)), draw(st.integers(0, 40))
    qshape = draw(st.sampled_from([(dim,), (draw(st.integers(1, 4)), dim)]))
    query = draw(hnp.arrays(dtype, qshape, elements=ELEMENTS))
    matrix = draw(hnp.arrays(dtype, (n, dim), elements=ELEMENTS))
    return query, matrix, draw(st.integers(0, 50)), draw(st.sampled_from(["cosine", "ip", "l2"]))


_METRIC_KIND = {"cosine": "cosine_similarity", "ip": "dot", "l2": "euclidean_distance"}


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@SETTINGS
@given(case=search_case())
def test_top_k_matches_oracle(backend: str, case: tuple[np.ndarray, np.ndarray, int, str]) -> None:
    query, matrix, k, metric = case
    ops = VectorOps(backend=backend)
    idx, scores = ops.top_k(as_input(backend, query), as_input(backend, matrix), k, metric=metric)
    full = oracle(_METRIC_KIND[metric], query, matrix)  # (n_queries, n)
    slack = tolerance(_METRIC_KIND[metric], query, matrix) + 1e-5 * np.abs(full)
    for row, (got_idx, got_scores) in enumerate(
        zip(np.atleast_2d(idx), np.atleast_2d(scores), strict=True)
    ):
        want = np.sort(full[row])[::-1] if metric != "l2" else np.sort(full[row])
        got_idx = np.asarray(got_idx, dtype=np.int64)
        assert len(got_idx) == min(k, matrix.shape[0]) == len(set(got_idx.tolist()))
        # the returned scores are the true scores of the returned rows ...
        np.testing.assert_array_less(np.abs(full[row][got_idx] - got_scores), slack[row][got_idx])
        # ... and they are the k best, in order (ties may pick either row)
        np.testing.assert_array_less(
            np.abs(np.asarray(got_scores) - want[: len(got_idx)]),
            slack[row].max(initial=0.0) + 1e-12,
        )


# Magnitudes: the same operands scaled by 10**e, e in [-30, 30]. Cosine and normalize are
# scale-free, so they must match the unscaled oracle in float32 and float64 alike (norms are
# taken in float64 wherever a float32 square would under- or overflow). Dot and L2 scale
# with the inputs, so they are checked in float64 (float32 cannot hold 1e-60 or 1e66).
SCALES = st.integers(-30, 30).map(lambda e: 10.0**e)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("kind", ["cosine_similarity", "cosine_distance"])
@SETTINGS
@given(pair=operands(), scale_a=SCALES, scale_b=SCALES)
def test_cosine_is_exact_at_every_magnitude(
    backend: str, kind: str, pair: tuple[np.ndarray, np.ndarray], scale_a: float, scale_b: float
) -> None:
    a, b = pair
    sa, sb = (a * a.dtype.type(scale_a)), (b * b.dtype.type(scale_b))
    result = getattr(VectorOps(backend=backend), kind)(as_input(backend, sa), as_input(backend, sb))
    _check(kind, result, a, b)  # the oracle of the unscaled operands


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("kind", ["dot", "euclidean_distance", "sqeuclidean_distance"])
@SETTINGS
@given(pair=operands(), scale=SCALES)
def test_scaled_distances_match_oracle_in_float64(
    backend: str, kind: str, pair: tuple[np.ndarray, np.ndarray], scale: float
) -> None:
    a, b = (x.astype(np.float64) * scale for x in pair)
    result = getattr(VectorOps(backend=backend), kind)(as_input(backend, a), as_input(backend, b))
    _check(kind, result, a, b)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@SETTINGS
@given(
    x=hnp.arrays(DTYPES, hnp.array_shapes(min_dims=1, max_dims=2, max_side=12), elements=ELEMENTS),
    scale=SCALES,
)
def test_normalize_is_exact_at_every_magnitude(backend: str, x: np.ndarray, scale: float) -> None:
    result = np.asarray(
        VectorOps(backend=backend).normalize(as_input(backend, x * x.dtype.type(scale)))
    )
    x64 = np.atleast_2d(x.astype(np.float64))
    norms = np.linalg.norm(x64, axis=1, keepdims=True)
    want = np.divide(x64, norms, out=np.zeros_like(x64), where=norms > 0).reshape(x.shape)
    np.testing.assert_allclose(result, want, rtol=1e-5, atol=1e-6)


# float64 across its whole range: 10**e, e in [-300, 300] (the elements stay normal
# numbers). SimSIMD's float64 squares under- or overflow far inside that range (below
# ~1e-154 or above ~1e154); cosine, normalize and L2 distance must still match the oracle
# of the unscaled operands, on both backends, for pairs, one-vs-many and all-pairs alike.
WIDE = st.integers(-300, 300).map(lambda e: 10.0**e)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("kind", ["cosine_similarity", "cosine_distance"])
@SETTINGS
@given(pair=operands(), scale_a=WIDE, scale_b=WIDE)
def test_float64_cosine_is_exact_from_1e_300_to_1e300(
    backend: str, kind: str, pair: tuple[np.ndarray, np.ndarray], scale_a: float, scale_b: float
) -> None:
    a, b = (x.astype(np.float64) for x in pair)
    result = getattr(VectorOps(backend=backend), kind)(
        as_input(backend, a * scale_a), as_input(backend, b * scale_b)
    )
    _check(kind, result, a, b)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@SETTINGS
@given(pair=operands(), scale=WIDE)
def test_float64_euclidean_distance_is_exact_from_1e_300_to_1e300(
    backend: str, pair: tuple[np.ndarray, np.ndarray], scale: float
) -> None:
    a, b = (x.astype(np.float64) for x in pair)
    ops = VectorOps(backend=backend)
    result = ops.euclidean_distance(as_input(backend, a * scale), as_input(backend, b * scale))
    # the distance scales with the inputs: compare it, divided back, with the unscaled oracle
    _check("euclidean_distance", np.asarray(result, dtype=np.float64) / scale, a, b)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@SETTINGS
@given(
    x=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=12), elements=ELEMENTS
    ),
    scale=WIDE,
)
def test_float64_normalize_is_exact_from_1e_300_to_1e300(
    backend: str, x: np.ndarray, scale: float
) -> None:
    result = np.asarray(VectorOps(backend=backend).normalize(as_input(backend, x * scale)))
    x2 = np.atleast_2d(x)
    norms = np.linalg.norm(x2, axis=1, keepdims=True)
    want = np.divide(x2, norms, out=np.zeros_like(x2), where=norms > 0).reshape(x.shape)
    np.testing.assert_allclose(result, want, rtol=1e-9, atol=1e-12)
