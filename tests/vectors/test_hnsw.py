"""HNSWIndex API contract, run against FAISS and the exact numpy fallback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from vector_oracle import needs_native

from neuralcore.core import (
    BackendInfo,
    ConfigError,
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    KeyNotFoundError,
    NonFiniteError,
    backend_info,
)
from neuralcore.vectors import HNSWIndex

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
BACKENDS = [
    pytest.param(
        "native", marks=[pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu"), needs_native]
    ),
    "python",
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def describe_hnsw_backend() -> BackendInfo:
    """What the public report says serves HNSWIndex by default."""
    return backend_info()["hnsw"]


def _data(n: int, dim: int, seed: int = 0) -> NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _exact(base: NDArray[np.float32], queries: NDArray[np.float32], metric: str, k: int) -> tuple:
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        d = np.linalg.norm(queries[:, None, :] - base[None, :, :], axis=2)
    else:
        d = 1.0 - queries @ base.T
    order = np.argsort(d, axis=1)[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def _recall(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_search_matches_exact_neighbours_and_distances(backend: str, metric: str) -> None:
    base, queries = _data(600, 16), _data(20, 16, seed=1)
    index = HNSWIndex(16, metric=metric, backend=backend)
    index.add(np.arange(600) * 3, base)
    keys, dists = index.search(queries, k=10)
    truth, truth_d = _exact(base, queries, metric, 10)
    assert keys.shape == dists.shape == (20, 10)
    assert keys.dtype == np.int64
    assert dists.dtype == np.float32
    assert _recall(keys, truth * 3) >= (1.0 if backend == "python" else 0.98)
    assert np.all(np.diff(dists, axis=1) >= 0)
    same = keys == truth * 3
    np.testing.assert_allclose(dists[same], truth_d[same], rtol=1e-4, atol=1e-4)


def test_single_query_gives_1d_results_and_pads(backend: str) -> None:
    index = HNSWIndex(3, metric="l2", backend=backend)
    index.add([10, 20], [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    keys, dists = index.search([0.0, 0.0, 1.0], k=4)
    assert keys.tolist() == [10, 20, -1, -1]
    assert dists[0] == pytest.approx(0.0, abs=1e-6)
    assert dists[1] == pytest.approx(np.sqrt(2), rel=1e-5)
    assert np.isinf(dists[2:]).all()


def test_empty_index_returns_only_padding(backend: str) -> None:
    keys, dists = HNSWIndex(4, backend=backend).search(np.ones((2, 4)), k=3)
    assert (keys == -1).all()
    assert np.isinf(dists).all()
    assert keys.shape == (2, 3)


def test_zero_queries_give_empty_results(backend: str) -> None:
    index = HNSWIndex(4, backend=backend)
    index.add([1], [[1.0, 2.0, 3.0, 4.0]])
    keys, dists = index.search(np.empty((0, 4), dtype=np.float32), k=2)
    assert keys.shape == dists.shape == (0, 2)


def test_update_by_re_add_replaces_vector(backend: str) -> None:
    index = HNSWIndex(2, metric="l2", backend=backend)
    index.add([1, 2], [[0.0, 0.0], [5.0, 5.0]])
    index.add(1, [9.0, 9.0])
    assert len(index) == 2
    assert index.get(1).tolist() == [9.0, 9.0]
    assert index.search([9.0, 9.0], k=1)[0].tolist() == [1]
    assert index.search([0.0, 0.0], k=2)[0].tolist() == [2, 1]


def test_remove_then_re_add_and_slot_reuse(backend: str) -> None:
    base = _data(300, 8)
    index = HNSWIndex(8, backend=backend)
    index.add(np.arange(300), base)
    index.remove(np.arange(0, 300, 2))
    assert len(index) == 150
    assert 0 not in index
    assert 1 in index
    keys, _ = index.search(base, k=5)
    assert not np.isin(keys, np.arange(0, 300, 2)).any()
    index.add(np.arange(1000, 1100), _data(100, 8, seed=5))  # reuses deleted slots
    index.add([0, 2], base[[0, 2]])  # re-add removed keys
    assert len(index) == 252
    assert 0 in index
    assert 1050 in index
    assert index.search(base[0], k=1)[0].tolist() == [0]
    assert index.search(_data(100, 8, seed=5)[7], k=1)[0].tolist() == [1007]
    keys, _ = index.search(_data(50, 8, seed=9), k=20)
    assert all(len(set(row[row >= 0].tolist())) == (row >= 0).sum() for row in keys)


def test_remove_missing_key_removes_nothing(backend: str) -> None:
    index = HNSWIndex(2, backend=backend)
    index.add([1, 2], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(KeyNotFoundError, match="key 7 is not in the index"):
        index.remove([1, 7])
    assert len(index) == 2
    assert 1 in index


def test_get_and_contains(backend: str) -> None:
    index = HNSWIndex(2, metric="cosine", backend=backend)
    index.add(5, [3.0, 4.0])
    np.testing.assert_allclose(index.get(5), [0.6, 0.8], rtol=1e-6)
    assert index.get(5).dtype == np.float32
    assert 5 in index
    assert 6 not in index
    assert "5" not in index
    assert -1 not in index
    with pytest.raises(KeyNotFoundError, match="key 6"):
        index.get(6)


def test_capacity_grows_past_initial_allocation(backend: str) -> None:
    index = HNSWIndex(4, backend=backend)
    for start in range(0, 5000, 1000):
        index.add(np.arange(start, start + 1000), _data(1000, 4, seed=start))
    assert len(index) == 5000
    assert 4999 in index


def test_filter_by_key_collection_and_predicate(backend: str) -> None:
    base = _data(500, 8)
    index = HNSWIndex(8, backend=backend)
    index.add(np.arange(500), base)
    allowed = np.arange(0, 500, 7)
    keys, _ = index.search(base[:5], k=10, filter=allowed)
    assert np.isin(keys, allowed).all()
    truth, _ = _exact(base[allowed], base[:5], "cosine", 10)
    assert _recall(keys, allowed[truth]) == 1.0  # short key lists are searched exactly
    odd, _ = index.search(base[:5], k=10, filter=lambda key: key % 2 == 1)
    assert (odd % 2 == 1).all()


def test_filter_with_a_long_key_list_walks_the_graph(backend: str) -> None:
    base = _data(5000, 8)
    index = HNSWIndex(8, backend=backend)
    index.add(np.arange(5000), base)
    allowed = np.arange(0, 5000, 2)  # longer than the exact-search cut-off
    keys, _ = index.search(base[:20], k=10, filter=allowed.tolist())
    assert (keys % 2 == 0).all()
    truth, _ = _exact(base[allowed], base[:20], "cosine", 10)
    assert _recall(keys, allowed[truth]) >= 0.95


def test_filter_with_fewer_matches_than_k_pads(backend: str) -> None:
    index = HNSWIndex(4, backend=backend)
    index.add(np.arange(200), _data(200, 4))
    keys, dists = index.search(np.ones(4), k=5, filter=lambda key: key in (3, 9))
    assert sorted(keys[:2].tolist()) == [3, 9]
    assert keys[2:].tolist() == [-1, -1, -1]
    assert np.isinf(dists[2:]).all()
    keys, _ = index.search(np.ones(4), k=3, filter={3, 10_000})
    assert keys.tolist() == [3, -1, -1]


def test_filter_predicate_errors_propagate(backend: str) -> None:
    index = HNSWIndex(4, backend=backend)
    index.add(np.arange(50), _data(50, 4))

    def broken(key: int) -> bool:
        raise ZeroDivisionError(f"bad key {key}")

    with pytest.raises(ZeroDivisionError, match="bad key"):
        index.search(np.ones(4), k=3, filter=broken)
    with pytest.raises(InputTypeError, match="filter keys must be integers"):
        index.search(np.ones(4), k=3, filter=[1.5])
    with pytest.raises(InputTypeError, match="filter must be"):
        index.search(np.ones(4), k=3, filter=3)  # type: ignore[arg-type]


def test_ef_search_settable_and_per_call(backend: str) -> None:
    index = HNSWIndex(8, ef_search=20, M=8, ef_construction=40, backend=backend)
    assert (index.M, index.ef_construction, index.ef_search) == (8, 40, 20)
    index.add(np.arange(100), _data(100, 8))
    index.ef_search = 64
    assert index.ef_search == 64
    wide = index.search(_data(3, 8, seed=2), k=50, ef=10)[0]  # ef below k: k is used
    assert (wide >= 0).all()
    with pytest.raises(ConfigError, match="ef_search"):
        index.ef_search = 0


def test_setting_m_or_ef_construction_rebuilds(backend: str) -> None:
    data = _data(300, 8)
    index = HNSWIndex(8, M=8, ef_construction=40, backend=backend)
    index.add(np.arange(300), data)
    index.remove([5])
    before = index.search(data[:20], k=5)
    index.M, index.ef_construction = 12, 60
    assert (index.M, index.ef_construction, len(index)) == (12, 60, 299)
    assert 5 not in index
    after = index.search(data[:20], k=5)
    assert _recall(after[0], before[0]) >= 0.98
    with pytest.raises(ConfigError, match="'M'"):
        index.M = -1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda i: i.add([1], [[1.0, 2.0]]), DimensionMismatchError, "dimension 2"),
        (lambda i: i.add([1, 2], [[1.0, 2.0, 3.0]]), DimensionMismatchError, "2 keys for 1"),
        (lambda i: i.add([1, 1], np.ones((2, 3))), InvalidInputError, "duplicate key 1"),
        (lambda i: i.add([-1], np.ones((1, 3))), InvalidInputError, "got -1"),
        (lambda i: i.add([1.5], np.ones((1, 3))), InputTypeError, "float64"),
        (lambda i: i.add([1], [[np.nan, 1.0, 1.0]]), NonFiniteError, "NaN"),
        (lambda i: i.add([1], [[0.0, 0.0, 0.0]]), InvalidInputError, "zero length"),
        (lambda i: i.add([1], [["a", "b", "c"]]), InputTypeError, "real numbers"),
        (lambda i: i.search([1.0, 1.0], k=1), DimensionMismatchError, "dimension 2"),
        (lambda i: i.search([1.0, 1.0, 1.0], k=0), InvalidInputError, "k must be"),
        (lambda i: i.search([1.0, 1.0, 1.0], k=1, ef=-3), InvalidInputError, "ef must be"),
        (lambda i: i.get("x"), InputTypeError, "key must be an integer"),
    ],
)
def test_bad_input_names_the_problem(backend: str, call, error: type, message: str) -> None:
    index = HNSWIndex(3, backend=backend)
    with pytest.raises(error, match=message):
        call(index)
    assert len(index) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metric": "dot"}, "metric"),
        ({"dtype": "i4"}, "dtype"),
        ({"M": 0}, "M"),
        ({"ef_construction": 1.5}, "ef_construction"),
        ({"ef_search": True}, "ef_search"),
        ({"backend": "gpu"}, "backend"),
    ],
)
def test_bad_config_raises_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        HNSWIndex(4, **kwargs)
    assert info.value.field == field


def test_bad_dim_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="'dim'"):
        HNSWIndex(0)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_half_storage_round_trips_and_halves_memory(backend: str, dtype: str, tmp_path) -> None:
    index = HNSWIndex(4, dtype=dtype, metric="l2", backend=backend)
    assert index.dtype == dtype
    index.add([1, 2], [[0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0]])
    assert index.search([0.1, 0.2, 0.3, 0.4], k=1)[0].tolist() == [1]
    np.testing.assert_allclose(index.get(1), [0.1, 0.2, 0.3, 0.4], rtol=1e-2)
    index.save(tmp_path / "half.nchnsw")
    for opened in (
        HNSWIndex.load(tmp_path / "half.nchnsw"),
        HNSWIndex.view(tmp_path / "half.nchnsw"),
    ):
        assert opened.dtype == dtype
        assert opened.search([1.0, 1.0, 1.0, 1.0], k=1)[0].tolist() == [2]
    big = _data(2000, 64)
    sizes = {}
    for kind in ("f32", dtype):
        full = HNSWIndex(64, dtype=kind, metric="l2", M=8, backend=backend)
        full.add(np.arange(2000), big)
        sizes[kind] = full.nbytes
    assert sizes[dtype] < 0.75 * sizes["f32"]


def test_i8_storage_round_trips_and_shrinks_memory(backend: str, tmp_path) -> None:
    base = _data(2000, 64)
    index = HNSWIndex(64, dtype="i8", M=8, backend=backend)
    assert (index.dtype, index.ef_search) == ("i8", 384)
    index.add(np.arange(2000), base)
    queries = base[:50] * 3.0  # any scale: cosine
    assert index.search(queries, k=1)[0][:, 0].tolist() == list(range(50))
    unit = base[7] / np.linalg.norm(base[7])
    np.testing.assert_allclose(index.get(7), unit, atol=0.02)  # decoded 8-bit codes
    path = tmp_path / "i8.nchnsw"
    index.save(path)
    other = "python" if backend == "native" else "native"
    loaded = [HNSWIndex.load(path), HNSWIndex.view(path)]
    if other == "python" or HAVE_FAISS:
        loaded.append(HNSWIndex.load(path, backend=other))
    for opened in loaded:
        assert opened.dtype == "i8"
        assert opened.search(queries[:20], k=1)[0][:, 0].tolist() == list(range(20))
        np.testing.assert_allclose(opened.get(7), unit, atol=0.03)
    full = HNSWIndex(64, M=8, backend=backend)
    full.add(np.arange(2000), base)
    assert index.nbytes < 0.5 * full.nbytes


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_i8_needs_cosine(metric: str) -> None:
    with pytest.raises(ConfigError, match="cosine"):
        HNSWIndex(4, dtype="i8", metric=metric)


def test_f16_refuses_values_it_cannot_store(backend: str) -> None:
    index = HNSWIndex(2, dtype="f16", metric="l2", backend=backend)
    with pytest.raises(InvalidInputError, match="70000"):
        index.add(1, [70000.0, 1.0])
    assert len(index) == 0


def test_env_forces_python_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_BACKEND", "python")
    assert HNSWIndex(4, backend="native").backend.backend == "python"
    info = describe_hnsw_backend()
    assert (info.engine, info.backend, info.library) == ("hnsw", "python", "numpy")


@pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu")
def test_describe_backend_reports_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALCORE_BACKEND", raising=False)
    info = describe_hnsw_backend()
    assert (info.backend, info.library) == ("native", "faiss")
    assert info.version
    assert HNSWIndex(4).backend == info


def test_missing_faiss_falls_back_to_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALCORE_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss-cpu were not installed
    assert HNSWIndex(4).backend.backend == "python"
    assert describe_hnsw_backend().backend == "python"


def test_import_does_not_load_faiss_and_survives_without_numpy() -> None:
    code = (
        "import sys\nimport neuralcore.vectors as v\n"
        "v.HNSWIndex\nassert 'faiss' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    blocked = (
        "import sys; sys.modules['numpy'] = None\n"
        "import neuralcore.vectors as h\n"
        "from neuralcore.core import MissingDependencyError, backend_info\n"
        "assert backend_info()['hnsw'].library == 'none'\n"
        "try:\n    h.HNSWIndex(4)\nexcept MissingDependencyError as e:\n"
        "    assert 'neuralcore-runtime[vectors]' in str(e)\nelse:\n    raise SystemExit(1)\n"
    )
    subprocess.run([sys.executable, "-c", blocked], check=True)


def test_repr_names_settings(backend: str) -> None:
    text = repr(HNSWIndex(4, metric="ip", backend=backend))
    assert "dim=4" in text
    assert "metric='ip'" in text
    assert f"backend='{backend}'" in text


OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove"]), st.lists(st.integers(0, 40), max_size=8)),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(ops=OPS, seed=st.integers(0, 2**16))
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_random_adds_and_removes_match_a_dict_model(
    backend_name: str, ops: list[tuple[str, list[int]]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    index = HNSWIndex(4, metric="l2", M=4, ef_construction=16, backend=backend_name)
    model: dict[int, NDArray[np.float32]] = {}
    for op, raw in ops:
        keys = sorted(set(raw))
        if op == "add":
            vectors = rng.standard_normal((len(keys), 4)).astype(np.float32)
            index.add(np.array(keys, dtype=np.int64), vectors.reshape(len(keys), 4))
            model.update(zip(keys, vectors, strict=True))
        else:
            keys = [key for key in keys if key in model]
            index.remove(np.array(keys, dtype=np.int64))
            for key in keys:
                del model[key]
    assert len(index) == len(model)
    assert all((key in index) == (key in model) for key in range(41))
    for key, vector in model.items():
        np.testing.assert_array_equal(index.get(key), vector)
    found, _ = index.search(np.zeros(4), k=50)
    hits = found[found >= 0].tolist()
    assert len(set(hits)) == len(hits)
    assert set(hits) <= set(model)
    if backend_name == "python":  # a graph may leave a node unreachable after updates
        assert sorted(hits) == sorted(model)
