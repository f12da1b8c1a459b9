"""The lean single-query search path: query fast path, reused search parameters."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from vector_oracle import needs_native

from neuralcore.core import DimensionMismatchError, InvalidInputError, NonFiniteError
from neuralcore.vectors import HNSWIndex
from neuralcore.vectors.hnsw import _input

needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="no faiss")


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e-3, 1.0, 1e20, 1e30])
def test_one_float32_query_is_prepared_like_a_batch(scale: float) -> None:
    # the 1-D float32 fast path and the general path agree, from 1e-30 to 1e30 (outside
    # the fast path's range the general one takes over): unit length, same direction
    rng = np.random.default_rng(1)
    query = (rng.standard_normal(16) * scale).astype(np.float32)
    one, single = _input.prepare_vectors(query, dim=16, metric="cosine")
    batch, _ = _input.prepare_vectors(query[None, :].astype(np.float64), dim=16, metric="cosine")
    assert single
    assert one.shape == (1, 16)
    assert one.dtype == np.float32
    assert one.flags.c_contiguous
    assert one.base is not query
    np.testing.assert_allclose(one, batch, rtol=1e-6, atol=1e-7)
    assert abs(float(np.linalg.norm(one.astype(np.float64))) - 1.0) < 1e-6


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        (np.array([1.0, np.nan, 0.0], dtype=np.float32), NonFiniteError, "NaN or infinity"),
        (np.array([1.0, np.inf, 0.0], dtype=np.float32), NonFiniteError, "NaN or infinity"),
        (np.zeros(3, dtype=np.float32), InvalidInputError, "zero length"),
        (np.ones(4, dtype=np.float32), DimensionMismatchError, "dimension 4"),
    ],
)
def test_one_float32_query_bad_values_still_raise(
    query: np.ndarray, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        _input.prepare_vectors(query, dim=3, metric="cosine", name="queries")


def test_float64_sum_without_numkong_matches() -> None:
    row = (np.random.default_rng(2).standard_normal(384) * 1e25).astype(np.float32)
    want = float(np.dot(row.astype(np.float64), row.astype(np.float64)))
    assert float(_input._numpy_dot64(row, row)) == pytest.approx(want, rel=1e-12)
    assert float(_input._dot64()(row, row)) == pytest.approx(want, rel=1e-12)


@needs_faiss
@needs_native
@pytest.mark.parametrize("dtype", ["f32", "i8"])
def test_search_after_remove_and_update_skips_dead_rows(dtype: str) -> None:
    # searches before the mutation cached their parameters (no selector): the ones
    # after must skip the removed and superseded rows
    rng = np.random.default_rng(3)
    data = rng.standard_normal((300, 16)).astype(np.float32)
    index = HNSWIndex(16, dtype=dtype, threads=1)  # type: ignore[arg-type]
    index.add(np.arange(300), data)
    keys, _ = index.search(data[7], k=5)
    assert keys[0] == 7
    index.remove(7)
    keys, _ = index.search(data[7], k=5)
    assert 7 not in keys.tolist()
    assert (keys >= 0).all()
    index.add(8, -data[8])  # update: the old row of key 8 goes dead
    keys, dists = index.search(data[8], k=300)
    assert 8 in keys.tolist()
    assert float(dists[keys.tolist().index(8)]) > 1.5
    index.add(7, data[7])
    assert index.search(data[7], k=1)[0].tolist() == [7]


@needs_faiss
@needs_native
def test_many_beams_and_concurrent_single_queries_agree() -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(4)
    data = rng.standard_normal((500, 16)).astype(np.float32)
    index = HNSWIndex(16, threads=1)
    index.add(np.arange(500), data)
    for ef in range(10, 200, 2):  # more beams than the parameter table keeps
        assert index.search(data[ef], k=1, ef=ef)[0].tolist() == [ef]
    want = [index.search(q, k=10)[0].tolist() for q in data[:64]]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: index.search(q, k=10)[0].tolist(), data[:64]))
    assert got == want
    batch = index.search(data[:64], k=10)[0].tolist()
    assert batch == want


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_misses_are_padded_at_the_end_for_one_query_and_for_a_batch(metric: str) -> None:
    # the single-query result conversion reads only the last column (FAISS puts misses last)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 16)).astype(np.float32)
    index = HNSWIndex(16, metric=metric)
    index.add(np.arange(12), x)
    index.remove(list(range(0, 12, 2)))  # 6 live rows
    for filt in (None, lambda key: key in (1, 3, 5, 7)):
        live = 4 if filt is not None else 6
        keys, dists = index.search(x[1], k=8, filter=filt)
        assert (keys[:live] >= 0).all()
        assert keys[live:].tolist() == [-1] * (8 - live)
        assert np.isinf(dists[live:]).all()
        assert np.isfinite(dists[:live]).all()
        batch_keys, batch_dists = index.search(x[:3], k=8, filter=filt)
        assert (batch_keys[:, live:] == -1).all()
        np.testing.assert_array_equal(batch_keys[1], keys)
        np.testing.assert_array_equal(batch_dists[1], dists)


def test_cosine_distances_of_stored_vectors_are_never_negative() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 384)).astype(np.float32)
    index = HNSWIndex(384)
    index.add(np.arange(64), x)
    for i in range(64):  # the best dot can round above 1: clamped, for one query too
        keys, dists = index.search(x[i], k=3)
        assert keys[0] == i
        assert dists.min() >= 0.0
    assert index.search(x, k=3)[1].min() >= 0.0
