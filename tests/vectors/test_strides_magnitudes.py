"""Odd strides, extreme float64 magnitudes, inf with allow_nonfinite, bytes-like input.

Every case is checked on both backends against the float64 oracle of a contiguous copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from vector_oracle import KINDS, VECTOR_BACKENDS, oracle, tolerance

import neuralcore.vectors as nv
from neuralcore.errors import InputTypeError, InvalidInputError
from neuralcore.vectors import Corpus, HNSWIndex, VectorOps

_BASE = np.array([4.0, -3.0, 2.0, 1.0, 0.5, -2.5, 3.5, 1.5])


def _views(dtype: type) -> dict[str, np.ndarray]:
    """1-D vectors of length 4 laid out every way numpy allows."""
    wide = np.repeat(_BASE.astype(dtype), 2)
    return {
        "reversed": _BASE[:4].astype(dtype)[::-1],
        "step -2": _BASE.astype(dtype)[::-2],
        "step 2": _BASE.astype(dtype)[::2],
        "zero stride": np.broadcast_to(dtype(2.5), (4,)),
        "column": np.ascontiguousarray(np.tile(_BASE[:4, None], 3).astype(dtype))[:, 1],
        "reversed column": np.tile(_BASE[:4, None], 3).astype(dtype)[::-1, 2],
        "every other, reversed": wide[::-4],
    }


def _matrices(dtype: type) -> dict[str, np.ndarray]:
    m = np.arange(1.0, 21.0).reshape(5, 4).astype(dtype) - 7.0
    return {
        "rows reversed": m[::-1],
        "columns reversed": m[:, ::-1],
        "both reversed": m[::-1, ::-1],
        "fortran": np.asfortranarray(m),
        "transposed": np.ascontiguousarray(m.T)[:, :4].T,
        "zero row stride": np.broadcast_to(m[1], (3, 4)),
    }


def _ops(backend: str) -> list[Any]:
    ops = VectorOps(backend=backend)
    return [nv, ops] if backend == "native" else [ops]


def _close(kind: str, got: Any, a: np.ndarray, b: np.ndarray) -> None:
    want = oracle(kind, a, b).reshape(np.shape(got))
    tol = tolerance(kind, a, b).reshape(np.shape(got))
    assert np.all(np.abs(np.asarray(got, dtype=np.float64) - want) <= tol), (got, want)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairs_read_every_stride(backend: str, kind: str, dtype: type) -> None:
    other = np.array([1.0, 2.0, -1.0, 0.5], dtype=dtype)
    for ops in _ops(backend):
        function = getattr(ops, kind)
        for name, view in _views(dtype).items():
            plain = np.ascontiguousarray(view)
            for a, b in ((view, other), (other, view), (view, view[::-1])):
                a_, b_ = np.ascontiguousarray(a), np.ascontiguousarray(b)
                got = function(a, b)
                assert isinstance(got, float), name
                _close(kind, got, a_, b_)
            _close(kind, function(view, plain), plain, plain)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_many_against_many_read_every_stride(backend: str, kind: str, dtype: type) -> None:
    for ops in _ops(backend):
        function = getattr(ops, kind)
        for view in _views(dtype).values():
            for m in _matrices(dtype).values():
                plain_v, plain_m = np.ascontiguousarray(view), np.ascontiguousarray(m)
                _close(kind, function(view, m), plain_v, plain_m)
                _close(kind, function(m, view), plain_m, plain_v)
                _close(kind, function(m, m[::-1]), plain_m, plain_m[::-1])


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_and_top_k_read_every_stride(backend: str, dtype: type) -> None:
    for ops in _ops(backend):
        for name, view in _views(dtype).items():
            plain = np.ascontiguousarray(view).astype(np.float64)
            want = plain / np.linalg.norm(plain)
            np.testing.assert_allclose(ops.normalize(view), want, rtol=1e-6, err_msg=name)
            for m in _matrices(dtype).values():
                idx, scores = ops.top_k(view, m, 2)
                full = oracle("cosine_similarity", plain, np.ascontiguousarray(m))[0]
                np.testing.assert_allclose(scores, full[np.asarray(idx)], rtol=1e-5)
                np.testing.assert_allclose(scores, np.sort(full)[::-1][:2], rtol=1e-5)
        for m in _matrices(dtype).values():
            plain_m = np.ascontiguousarray(m).astype(np.float64)
            want_m = plain_m / np.linalg.norm(plain_m, axis=1, keepdims=True)
            np.testing.assert_allclose(ops.normalize(m), want_m, rtol=1e-6)


def test_corpus_reads_every_stride() -> None:
    m = _matrices(np.float32)
    for rows in m.values():
        plain = np.ascontiguousarray(rows).astype(np.float64)
        corpus = Corpus(rows)
        for name, view in _views(np.float32).items():
            q = np.ascontiguousarray(view).astype(np.float64)
            want = oracle("cosine_similarity", q, plain)[0]
            np.testing.assert_allclose(corpus.cosine(view), want, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(corpus.dot(view), plain @ q, rtol=1e-5, atol=1e-5)
            _, scores = corpus.top_k(view, 2)
            np.testing.assert_allclose(scores, np.sort(want)[::-1][:2], rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_hnsw_reads_every_stride(metric: str) -> None:
    rows = _matrices(np.float32)["columns reversed"]
    index = HNSWIndex(4, metric=metric)
    index.add(np.arange(5)[::-1], rows)  # keys and rows both reversed views
    plain = np.ascontiguousarray(rows)
    twin = HNSWIndex(4, metric=metric)
    twin.add(np.arange(5)[::-1].copy(), plain)
    for view in _views(np.float32).values():
        got = index.search(view, k=3)
        want = twin.search(np.ascontiguousarray(view), k=3)
        assert got[0].tolist() == want[0].tolist()
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


# -- float64 magnitudes the kernel's squares cannot hold -----------------------------------


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ([1e200, 1e200], [1.0, 1.0], 1.0),
        ([1e150, 2e150], [2e150, 1e150], 0.8),
        ([1e-160, 2e-160], [2e-160, 1e-160], 0.8),
        ([1e-200, 2e-200], [2e-200, 1e-200], 0.8),
        ([1e-300, 2e-300], [2e300, 1e300], 0.8),
        ([3e-310, 4e-310], [4.0, 3.0], 0.96),
    ],
)
def test_cosine_is_exact_at_float64_extremes(
    backend: str, a: list[float], b: list[float], want: float
) -> None:
    for ops in _ops(backend):
        for x, y in ((a, b), (np.array(a), np.array(b))):
            assert ops.cosine_similarity(x, y) == pytest.approx(want, rel=1e-12)
            assert ops.cosine_distance(x, y) == pytest.approx(1.0 - want, abs=1e-12)
            many = ops.cosine_similarity(x, [y, y, [1.0, 0.0]])
            np.testing.assert_allclose(np.asarray(many)[:2], [want, want], rtol=1e-12)
            pairs = ops.cosine_similarity([x, y], [y, x])
            np.testing.assert_allclose(np.asarray(pairs)[0, 0], want, rtol=1e-12)
            idx, scores = ops.top_k(x, [[1.0, 0.0], y], 1)
            assert list(idx) == [1]
            assert float(scores[0]) == pytest.approx(want, rel=1e-12)
            unit = np.asarray(ops.normalize(x))
            np.testing.assert_allclose(unit, np.array(a) / np.hypot(*a), rtol=1e-12)


def test_corpus_keeps_tiny_float64_rows() -> None:
    corpus = Corpus(np.array([[3e-200, 4e-200], [1e200, 0.0]]))
    np.testing.assert_allclose(corpus.cosine([4.0, 3.0]), [0.96, 0.8], rtol=1e-6)
    np.testing.assert_allclose(corpus.dot([1.0, 0.0]), [3e-200, 1e200], rtol=1e-6)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ([1e155, 2e155], [2e155, 1e155], math.sqrt(2.0) * 1e155),
        ([1e200, 1e200], [-1e200, -1e200], math.sqrt(8.0) * 1e200),
        ([1e308, 0.0], [-1e308, 0.0], math.inf),  # the true distance exceeds float64
        ([1e-170, 0.0], [3e-170, 0.0], 2e-170),
        ([3e-320, 0.0], [0.0, 4e-320], 5e-320),
    ],
)
def test_euclidean_distance_is_exact_when_it_is_finite(
    backend: str, a: list[float], b: list[float], want: float
) -> None:
    for ops in _ops(backend):
        for x, y in ((a, b), (np.array(a), np.array(b))):
            assert ops.euclidean_distance(x, y) == pytest.approx(want, rel=1e-12)
            many = np.asarray(ops.euclidean_distance(x, [y, x]))
            assert many[0] == pytest.approx(want, rel=1e-12)
            assert many[1] == 0.0
            assert np.asarray(ops.euclidean_distance([x], [y]))[0, 0] == pytest.approx(want)
        squared = ops.sqeuclidean_distance(np.array(a), np.array(b))
        assert squared == pytest.approx(min(want * want, math.inf), rel=1e-12)


# -- NaN/inf with allow_nonfinite -----------------------------------------------------------


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
def test_cosine_with_infinity_allowed_is_nan(backend: str) -> None:
    inf = math.inf
    for ops in _ops(backend):
        for a in ([1.0, inf], [inf, inf], [-inf, 0.0], [1.0, math.nan]):
            for b in ([1.0, 1.0], [0.0, 0.0], [1e300, 1e300]):
                assert math.isnan(ops.cosine_similarity(a, b, allow_nonfinite=True))
                assert math.isnan(ops.cosine_distance(b, a, allow_nonfinite=True))
        many = np.asarray(ops.cosine_similarity([1.0, 1.0], [[1.0, inf], [1.0, 0.0]], True))
        assert math.isnan(many[0])
        assert many[1] == pytest.approx(math.sqrt(0.5))
        table = np.asarray(ops.cosine_similarity([[1.0, inf], [1.0, 0.0]], [[1.0, 1.0]], True))
        assert math.isnan(table[0, 0])
        assert table[1, 0] == pytest.approx(math.sqrt(0.5))
        idx, scores = ops.top_k([1.0, 1.0], [[1.0, inf], [1.0, 0.0]], 2, allow_nonfinite=True)
        assert list(idx) == [1, 0]  # NaN ranks last
        assert math.isnan(scores[1])
        unit = np.asarray(ops.normalize([1.0, inf], allow_nonfinite=True))
        assert unit[0] == 0.0
        assert math.isnan(unit[1])


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
def test_l2_with_infinity_allowed_follows_ieee(backend: str) -> None:
    inf = math.inf
    for ops in _ops(backend):
        for kind in ("euclidean_distance", "sqeuclidean_distance"):
            function = getattr(ops, kind)
            assert function([inf, 0.0], [0.0, 0.0], allow_nonfinite=True) == inf
            assert function([1.0, 2.0], [[-inf, 0.0]], allow_nonfinite=True)[0] == inf
            assert math.isnan(function([inf, 0.0], [inf, 0.0], allow_nonfinite=True))


# -- bytes-like input ----------------------------------------------------------------------


class _Blob(bytes):
    pass


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_bytes_of_every_kind_are_refused(backend: str, kind: str) -> None:
    blob = np.array([1.0, 2.0], dtype=np.float32).tobytes()
    for ops in _ops(backend):
        function: Callable[..., Any] = getattr(ops, kind)
        for a in (_Blob(blob), np.bytes_(blob), blob):
            for pair in ((a, a), (a, np.frombuffer(blob, dtype=np.uint8).astype(np.float32))):
                with pytest.raises(InputTypeError, match="must be"):
                    function(*pair)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS)
def test_arrays_of_non_numbers_are_refused_by_both_backends(backend: str) -> None:
    good = np.array([1.0, 2.0])
    odd = [
        np.array([1.0, 2.0], dtype=object),
        np.zeros(2, dtype=[("x", "f4"), ("y", "f4")]),
        np.array([True, False]),
        np.array([1 + 0j, 2 + 0j]),
    ]
    for ops in _ops(backend):
        for bad in odd:
            for kind in KINDS:
                with pytest.raises(InputTypeError, match="must hold real numbers"):
                    getattr(ops, kind)(bad, good)
            with pytest.raises(InputTypeError, match="must hold real numbers"):
                ops.normalize(bad)


# -- HNSW: values whose float32 distances would overflow --------------------------------------


@pytest.mark.parametrize(
    ("metric", "dtype"), [("l2", "f32"), ("l2", "bf16"), ("ip", "f32"), ("ip", "bf16")]
)
def test_hnsw_refuses_values_it_cannot_search_faithfully(metric: str, dtype: str) -> None:
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((50, 16)).astype(np.float32)
    index = HNSWIndex(16, metric=metric, dtype=dtype)
    index.add(np.arange(50), rows)
    for scale in (1e19, 1e30, 3e38):
        query = (np.sign(rows[5]) * np.float32(scale)).astype(np.float32)
        with pytest.raises(InvalidInputError, match=f"too large for a faithful {metric} search"):
            index.search(query, k=3)
        with pytest.raises(InvalidInputError, match=r"value -?[0-9.e+]+ at \(0, 0\)"):
            index.add(99, query)
    assert len(index) == 50
    bound = math.sqrt(float(np.finfo(np.float32).max) / 16) / 2
    query = np.full(16, bound * 0.99, dtype=np.float32)
    keys, dists = index.search(query, k=3)
    assert (keys >= 0).all()
    assert np.isfinite(dists).all()
