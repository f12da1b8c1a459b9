"""Recall of HNSWIndex at default settings, and the benchmark rows that report it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from neuralcore._bench._common import format_table
from neuralcore._bench._hnsw import clustered, exact_top_k, hnsw_rows, recall_at
from neuralcore.vectors.hnsw._index import HNSWIndex

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu")


@needs_faiss
@pytest.mark.slow
def test_recall_at_defaults_on_clustered_100k_x_384() -> None:
    data = clustered(101_000)
    base, queries = data[:100_000], data[100_000:]
    index = HNSWIndex(384, threads=2)
    assert index.backend.backend == "native"
    index.add(np.arange(100_000), base)
    found, _ = index.search(queries, k=10)
    recall = recall_at(found, exact_top_k(base, queries, 10))
    assert recall >= 0.95, f"recall@10 {recall:.4f} at defaults"


@needs_faiss
def test_recall_at_defaults_on_clustered_10k() -> None:
    """The same distribution as the 100k set (100 points per centre), a tenth of the size."""
    data = clustered(10_300, centres=100, seed=1)
    base, queries = data[:10_000], data[10_000:]
    index = HNSWIndex(384, threads=2)
    index.add(np.arange(10_000), base)
    found, _ = index.search(queries, k=10)
    assert recall_at(found, exact_top_k(base, queries, 10)) >= 0.95


def test_exact_fallback_has_perfect_recall() -> None:
    data = clustered(3_050, dim=64, centres=30, seed=2)
    base, queries = data[:3_000], data[3_000:]
    index = HNSWIndex(64, backend="python")
    index.add(np.arange(3_000), base)
    found, _ = index.search(queries, k=10)
    assert recall_at(found, exact_top_k(base, queries, 10)) == 1.0


def test_benchmark_rows_have_baseline_and_format() -> None:
    rows = hnsw_rows(n=3_000, queries=50)
    assert [r.unit for r in rows] == ["time", "rate", "rate", "value", "value", "time", "rate"]
    assert all(r.values["neuralcore"] > 0 for r in rows)
    assert rows[3].values["neuralcore"] >= 0.9
    table = format_table(rows, ["numpy naive", "neuralcore"], "neuralcore")
    assert "HNSW recall@10" in table
    assert table.count("\n") == len(rows) + 1
