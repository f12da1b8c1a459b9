"""Corpus: normalised stored rows against a float64 numpy oracle, growth, errors, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from vector_oracle import needs_native, oracle

from neuralcore.core import (
    ConfigError,
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    NonFiniteError,
)
from neuralcore.vectors import Corpus, VectorOps

pytestmark = needs_native
TOL = {"f32": 1e-5, "f16": 2e-3, "i8": 3e-2}  # cosine, absolute
ELEMENTS = st.just(0.0) | st.builds(
    lambda sign, v: sign * v, st.sampled_from([-1.0, 1.0]), st.floats(2**-20, 1e3, width=32)
)
SCALES = st.integers(-30, 30).map(lambda e: 10.0**e)


def _data(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_a_corpus_beyond_the_caches_answers_the_same() -> None:
    """Past 32 MiB of float32 rows one query is scored by the SIMD library, not BLAS."""
    rows, query = _data(90_000, dim=96), _data(1, dim=96, seed=1)[0]
    rows[123] = 0.0  # a zero row scores 0
    corpus = Corpus(rows, threads=2)
    assert corpus.nbytes > 1 << 25
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)
    want = unit.astype(np.float64) @ (query / np.linalg.norm(query)).astype(np.float64)
    got = corpus.cosine(query)
    assert (got.dtype, got.shape) == (np.float32, (90_000,))
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[123] == 0.0
    idx, scores = corpus.top_k(query, 10)
    assert idx.tolist() == np.argsort(-want, kind="stable")[:10].tolist()
    np.testing.assert_allclose(scores, want[idx], atol=1e-6)


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
def test_cosine_dot_and_top_k_match_the_oracle(dtype: str) -> None:
    rows, queries = _data(300), _data(7, seed=1)
    corpus = Corpus(rows, dtype=dtype)  # type: ignore[arg-type]
    want = oracle("cosine_similarity", queries, rows)
    np.testing.assert_allclose(corpus.cosine(queries), want, atol=TOL[dtype])
    np.testing.assert_allclose(corpus.cosine(queries[0]), want[0], atol=TOL[dtype])
    dots = oracle("dot", queries, rows)
    scale = np.outer(np.linalg.norm(queries, axis=1), np.linalg.norm(rows, axis=1))
    np.testing.assert_allclose(corpus.dot(queries), dots, atol=TOL[dtype] * scale.max())
    idx, scores = corpus.top_k(queries[0], 5)
    best = np.argsort(-want[0], kind="stable")[:5]
    if dtype == "f32":
        assert idx.tolist() == best.tolist()
    np.testing.assert_allclose(scores, want[0][idx], atol=TOL[dtype])
    many_idx, many_scores = corpus.top_k(queries, 5, metric="ip")
    assert many_idx.shape == many_scores.shape == (7, 5)


@settings(max_examples=60, deadline=None)
@given(
    rows=hnp.arrays(np.float32, st.tuples(st.integers(1, 20), st.just(6)), elements=ELEMENTS),
    query=hnp.arrays(np.float32, 6, elements=ELEMENTS),
    row_scale=SCALES,
    query_scale=SCALES,
)
def test_cosine_is_exact_at_every_magnitude(
    rows: np.ndarray, query: np.ndarray, row_scale: float, query_scale: float
) -> None:
    corpus = Corpus(rows * np.float32(row_scale))
    got = corpus.cosine(query * np.float32(query_scale))
    np.testing.assert_allclose(got, oracle("cosine_similarity", query, rows)[0], atol=1e-5)
    dots = corpus.dot(query.astype(np.float64) * query_scale)
    want = oracle(
        "dot", query.astype(np.float64) * query_scale, rows.astype(np.float64) * row_scale
    )
    q64, r64 = query.astype(np.float64) * query_scale, rows.astype(np.float64) * row_scale
    bound = np.linalg.norm(q64) * np.linalg.norm(r64, axis=1)
    assert np.all(np.abs(dots - want[0]) <= 1e-5 * bound)


@pytest.mark.parametrize("scale", [1e-38, 1e-30, 1e30, 1e38, 3e38])
def test_float32_queries_near_the_range_limits_are_exact(scale: float) -> None:
    corpus = Corpus(np.eye(3, dtype=np.float32))
    query = np.array([[scale, scale, 0.0]], dtype=np.float32)
    want = [np.sqrt(0.5), np.sqrt(0.5), 0.0]
    np.testing.assert_allclose(corpus.cosine(query)[0], want, atol=1e-7)
    np.testing.assert_allclose(corpus.cosine(query[0]), want, atol=1e-7)


def test_grows_and_keeps_indices() -> None:
    rows = _data(100)
    corpus = Corpus(dim=16)
    assert len(corpus) == 0
    assert corpus.top_k(rows[0], 3)[0].tolist() == []
    for start in range(0, 100, 30):
        corpus.add(rows[start : start + 30])
    corpus.add(rows[0])  # one row
    assert len(corpus) == 101
    idx, _ = corpus.top_k(rows[42], 2)
    assert sorted(idx.tolist()) == [42] or idx[0] == 42
    assert corpus.top_k(rows[0], np.int64(2))[0].tolist() in ([0, 100], [100, 0])


def test_zero_rows_score_zero_and_bad_input_is_refused() -> None:
    corpus = Corpus([[0.0, 0.0], [1.0, 0.0]])
    assert corpus.cosine([1.0, 0.0]).tolist() == [0.0, 1.0]
    assert corpus.cosine(np.zeros(2, np.float32)).tolist() == [0.0, 0.0]
    with pytest.raises(NonFiniteError):
        corpus.add([[np.nan, 1.0]])
    with pytest.raises(NonFiniteError):
        corpus.cosine(np.array([np.inf, 1.0], np.float32))
    with pytest.raises(DimensionMismatchError, match="dimension 3"):
        corpus.cosine([1.0, 0.0, 0.0])
    with pytest.raises(DimensionMismatchError):
        corpus.add(np.ones((2, 5)))
    with pytest.raises(InputTypeError):
        corpus.add([["a", "b"]])
    with pytest.raises(InputTypeError):
        corpus.dot(np.ones(2, dtype=complex))
    with pytest.raises(InvalidInputError, match="metric"):
        corpus.top_k([1.0, 0.0], 1, metric="l2")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        corpus.top_k([1.0, 0.0], -1)
    assert len(corpus) == 2


@pytest.mark.parametrize("kwargs", [{"dtype": "f64"}, {"threads": 0}, {}, {"dim": 0}])
def test_bad_settings_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Corpus(**kwargs)  # type: ignore[arg-type]


def test_vector_ops_builds_a_corpus() -> None:
    corpus = VectorOps(threads=2).corpus([[1.0, 0.0], [0.0, 1.0]], dtype="f16")
    assert (type(corpus), corpus.dtype, len(corpus)) == (Corpus, "f16", 2)


def test_adds_are_atomic_to_concurrent_queries() -> None:
    corpus = Corpus(_data(10, dim=8), threads=1)
    batch = _data(50, dim=8, seed=9)
    stop = threading.Event()
    seen: list[int] = []

    def query() -> None:
        while not stop.is_set():
            seen.append(len(corpus.cosine(batch[0])))

    reader = threading.Thread(target=query)
    reader.start()
    for _ in range(40):
        corpus.add(batch)
    stop.set()
    reader.join()
    assert len(corpus) == 10 + 40 * 50
    assert all((size - 10) % 50 == 0 for size in seen)


def test_top_k_zero_is_empty_like_the_function() -> None:
    corpus = Corpus([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    idx, scores = corpus.top_k([1.0, 2.0], 0)
    assert idx.shape == (0,)
    assert scores.shape == (0,)
    idx, scores = corpus.top_k([[1.0, 2.0], [2.0, 1.0]], 0)
    assert idx.shape == (2, 0)
    assert scores.shape == (2, 0)
