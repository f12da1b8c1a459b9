"""Hostile values and settings found by review (both backends answer alike, or refuse).

- ``threads`` is capped (1024, as EmbeddingConfig): 100000 used to be accepted, then FAISS's
  thread pool segfaulted under a memory limit.
- Subnormal float64 vectors: cosine and normalize are exact (rows are divided by their
  largest component before their norm, which as a subnormal keeps only a few bits).
- 8-bit HNSW storage: ``get`` and distances read each stored row by its direction, on both
  engines; float16/bfloat16 storage refuses rows it would not hold faithfully.
- The stdlib and numpy backends read masked arrays, Fractions, 0-d arrays and ``[]`` alike.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from neuralcore.errors import ConfigError, InvalidInputError
from neuralcore.vectors import Corpus, HNSWIndex, VectorOps

BACKENDS = ("native", "python")
SUB_A = np.array([1e-320, 2e-320, 3e-320])  # exactly 1:2:3 in subnormal steps
SUB_B = np.array([3e-320, -1e-320, 2e-320])  # cosine with SUB_A: 7 / 14 = 0.5 exactly


@pytest.mark.parametrize(
    "make",
    [
        lambda t: HNSWIndex(8, threads=t),
        lambda t: VectorOps(threads=t),
        lambda t: Corpus(dim=8, threads=t),
    ],
    ids=["HNSWIndex", "VectorOps", "Corpus"],
)
def test_thread_counts_are_capped(make: Any) -> None:
    with pytest.raises(ConfigError, match=r"'threads' = 100000.*1024"):
        make(100000)
    with pytest.raises(ConfigError, match="threads"):
        make(1025)
    make(1024)  # the cap itself is accepted (no thread is started before work)


def test_hnsw_load_and_view_cap_threads(tmp_path: Any) -> None:
    index = HNSWIndex(2)
    index.add([1], [1.0, 0.0])
    path = tmp_path / "i.nchnsw"
    index.save(path)
    with pytest.raises(ConfigError, match="threads"):
        HNSWIndex.load(path, threads=100000)
    with pytest.raises(ConfigError, match="threads"):
        HNSWIndex.view(path, threads=100000)


@pytest.mark.parametrize("backend", BACKENDS)
def test_subnormal_float64_cosine_and_normalize_are_exact(backend: str) -> None:
    ops = VectorOps(backend=backend)
    assert ops.cosine_similarity(SUB_A, SUB_B) == pytest.approx(0.5, abs=1e-15)
    assert ops.cosine_distance(SUB_A, SUB_B) == pytest.approx(0.5, abs=1e-15)
    many = np.asarray(ops.cosine_similarity(np.stack([SUB_A, SUB_B]), np.stack([SUB_A, SUB_B])))
    assert np.allclose(many, [[1.0, 0.5], [0.5, 1.0]], rtol=0, atol=1e-15)
    one_many = np.asarray(ops.cosine_similarity(SUB_A, np.stack([SUB_A, SUB_B])))
    assert np.allclose(one_many, [1.0, 0.5], rtol=0, atol=1e-15)
    want = np.array([1.0, 2.0, 3.0]) / math.sqrt(14.0)
    for rows in (SUB_A, np.stack([SUB_A, SUB_A * 2, np.zeros(3)])):
        unit = np.asarray(ops.normalize(rows), dtype=np.float64).reshape(-1, 3)
        assert np.allclose(unit[0], want, rtol=1e-15, atol=0), unit[0]
        assert abs(float(np.linalg.norm(unit[0])) - 1.0) < 1e-15
    inplace = np.stack([SUB_A, SUB_B])
    if backend == "native":
        ops.normalize(inplace, inplace=True)
        assert np.allclose(np.linalg.norm(inplace, axis=1), 1.0, rtol=0, atol=1e-15)


def test_corpus_reads_subnormal_rows_exactly() -> None:
    corpus = Corpus(np.stack([SUB_A, SUB_B]))
    assert np.allclose(corpus.cosine(SUB_A), [1.0, 0.5], rtol=0, atol=1e-7)  # f32 storage


@pytest.mark.parametrize("backend", BACKENDS)
def test_8bit_rows_read_back_as_directions_on_both_engines(backend: str) -> None:
    index = HNSWIndex(3, metric="cosine", dtype="i8", backend=backend)
    index.add([1, 2, 3], np.array([[70000.0, 0, 0], [0, 1, 0], [0.6, 0.8, 0]]))
    assert index.get(1).tolist() == [1.0, 0.0, 0.0]  # native read [1.0039, 0, 0]
    for key in (1, 2, 3):
        assert abs(float(np.linalg.norm(index.get(key))) - 1.0) < 1e-6
    keys, dists = index.search(np.array([70000.0, 0, 0]), 3)
    assert keys[0] == 1
    assert dists[0] == pytest.approx(0.0, abs=1e-6)
    keys, dists = index.search(np.array([0.6, 0.8, 0.0]), 1)
    assert keys[0] == 3
    assert dists[0] == pytest.approx(0.0, abs=1e-4)


def test_8bit_engines_agree_on_self_distances() -> None:
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((200, 16))
    rows[0] = [70000.0] + [0.0] * 15
    found = {}
    for backend in BACKENDS:
        index = HNSWIndex(16, metric="cosine", dtype="i8", backend=backend)
        index.add(np.arange(200), rows)
        keys, dists = index.search(rows[:40], 1)
        assert keys[:, 0].tolist() == list(range(40))
        assert float(np.abs(dists[:, 0]).max()) < 2e-4, backend
        found[backend] = index.get(0)
        assert float(dists[0, 0]) == pytest.approx(0.0, abs=1e-6)
    # different 8-bit codecs (FAISS's trained ranges, 127 steps): equal to the codes' step
    assert np.allclose(found["native"], found["python"], rtol=0, atol=1e-3)
    assert found["native"][0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_float16_storage_refuses_rows_it_would_flush(backend: str, metric: str) -> None:
    index = HNSWIndex(3, metric=metric, dtype="f16", backend=backend)
    with pytest.raises(InvalidInputError, match=r"row 0 .*1e-30.*float16"):
        index.add([1], np.array([[1e-30, 0.0, 1e-30]]))  # was stored as a zero vector
    assert len(index) == 0
    index.add([2, 3, 4], np.array([[1.0, 1e-30, 0.5], [1e-3, 2e-3, 0.0], [0.0, 0.0, 0.0]]))
    assert index.get(3).tolist() == pytest.approx([1e-3, 2e-3, 0.0], rel=1e-3)
    index = HNSWIndex(3, metric=metric, dtype="bf16", backend=backend)
    with pytest.raises(InvalidInputError, match="bfloat16"):
        index.add([1], np.array([[1e-39, 0.0, 0.0]]))  # below bfloat16's normal range


_SAME_INPUTS = {
    "masked array": lambda: (np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]), [1.0, 1.0, 2.0]),
    "masked float32": lambda: (
        np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0], dtype=np.float32),
        np.array([1.0, 1.0, 2.0], np.float32),
    ),
    "Fractions": lambda: ([Fraction(1, 3), 1], [1.0, 2.0]),
    "0-d arrays": lambda: ([np.array(1.0), np.array(2.0)], [1.0, 2.0]),
    "[] and []": lambda: ([], []),
    "(0,) arrays": lambda: (np.zeros(0), np.zeros(0)),
    "[] and a (0,) array": lambda: ([], np.zeros(0)),
}


@pytest.mark.parametrize("case", sorted(_SAME_INPUTS))
@pytest.mark.parametrize(
    "kind", ["dot", "cosine_similarity", "cosine_distance", "euclidean_distance"]
)
def test_both_backends_read_odd_inputs_alike(case: str, kind: str) -> None:
    answers = []
    for backend in BACKENDS:
        a, b = _SAME_INPUTS[case]()
        answers.append(getattr(VectorOps(backend=backend), kind)(a, b))
    assert type(answers[0]) is float
    assert type(answers[1]) is float
    assert answers[0] == pytest.approx(answers[1], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("case", sorted(_SAME_INPUTS))
def test_both_backends_normalize_odd_inputs_alike(case: str) -> None:
    out = []
    for backend in BACKENDS:
        a, _ = _SAME_INPUTS[case]()
        out.append(np.asarray(VectorOps(backend=backend).normalize(a), dtype=np.float64))
    assert out[0].shape == out[1].shape
    assert np.allclose(out[0], out[1], rtol=1e-6, atol=0)


def test_empty_inputs_keep_their_matrix_meaning() -> None:
    for backend in BACKENDS:
        ops = VectorOps(backend=backend)
        assert len(ops.dot([1.0, 2.0], [])) == 0  # a query against no rows
        assert len(ops.top_k([1.0, 2.0], [], k=3)[0]) == 0
        assert ops.dot([], []) == 0.0  # two empty vectors, as numpy.dot([], [])
