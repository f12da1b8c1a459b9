"""Recall of HNSWIndex at the default settings on the hard set, and the benchmark rows."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from vector_oracle import needs_native

from neuralcore._bench._common import format_table
from neuralcore._bench._hnsw import exact_top_k, hard_set, hnsw_rows, recall_at
from neuralcore.vectors import HNSWIndex

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu")


@needs_faiss
@needs_native
def test_recall_at_defaults_on_the_hard_set() -> None:
    """The benchmark's distribution (100 points per centre, noise 2.25x), 10,000 points.

    The 100,000-point figure is measured by ``neuralcore bench vectors`` (minutes to build
    on two cores); this size keeps the test to seconds.
    """
    base, queries = hard_set(10_000, 300, seed=1)
    index = HNSWIndex(384, threads=2)
    assert index.backend.backend == "native"
    index.add(np.arange(10_000), base)
    found, _ = index.search(queries, k=10)
    recall = recall_at(found, exact_top_k(base, queries, 10))
    assert recall >= 0.95, f"recall@10 {recall:.4f} at defaults"


def test_exact_fallback_has_perfect_recall() -> None:
    base, queries = hard_set(3_000, 50, dim=64, seed=2)
    index = HNSWIndex(64, backend="python")
    index.add(np.arange(3_000), base)
    found, _ = index.search(queries, k=10)
    assert recall_at(found, exact_top_k(base, queries, 10)) == 1.0


@needs_faiss
def test_benchmark_rows_have_baseline_and_format() -> None:
    rows = hnsw_rows(n=2_000, queries=50, libraries=False)
    assert all(r.values["neuralcore"] > 0 for r in rows)
    recall = next(r for r in rows if r.case == "HNSW recall@10 at the defaults")
    assert recall.values["neuralcore"] >= 0.9
    columns = list(dict.fromkeys(c for r in rows for c in r.values))
    table = format_table(rows, columns, "neuralcore")
    assert "HNSW view() search" in table
    assert table.count("\n") == len(rows) + 1
