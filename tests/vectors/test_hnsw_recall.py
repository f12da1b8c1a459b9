"""Recall of HNSWIndex at the default settings on a hard set (public API only).

The set follows the benchmark's recipe (``neuralcore bench vectors``: points around
Gaussian centres, 100 per centre, noise 2.25x the centre's norm, held-out queries), at
10,000 points so the test takes seconds; the 100,000-point figure is the benchmark's.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from numpy.typing import NDArray
from vector_oracle import needs_native

from neuralcore.vectors import HNSWIndex, top_k

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu")


def _hard_set(
    n: int, queries: int, *, dim: int = 384, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 100), dim), dtype=np.float32)
    noise = rng.standard_normal((n + queries, dim), dtype=np.float32) * np.float32(2.25)
    data = centres[rng.integers(0, len(centres), n + queries)] + noise
    return data[:n], data[n:]


def _recall(index: HNSWIndex, base: NDArray[np.float32], queries: NDArray[np.float32]) -> float:
    truth, _ = top_k(queries, base, 10)  # exact cosine top-10 (the oracle)
    found, _ = index.search(queries, k=10)
    hits = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


@needs_faiss
@needs_native
def test_recall_at_defaults_on_the_hard_set() -> None:
    base, queries = _hard_set(10_000, 300, seed=1)
    index = HNSWIndex(384, threads=2)
    assert index.backend.backend == "native"
    index.add(np.arange(10_000), base)
    recall = _recall(index, base, queries)
    assert recall >= 0.95, f"recall@10 {recall:.4f} at defaults"


def test_exact_fallback_has_perfect_recall() -> None:
    base, queries = _hard_set(3_000, 50, dim=64, seed=2)
    index = HNSWIndex(64, backend="python")
    index.add(np.arange(3_000), base)
    assert _recall(index, base, queries) == 1.0
