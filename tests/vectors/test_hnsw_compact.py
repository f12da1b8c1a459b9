"""Compaction: removed and updated keys stop occupying graph rows (public API only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from vector_oracle import needs_native

from neuralcore.core import InvalidInputError
from neuralcore.vectors import HNSWIndex

pytestmark = needs_native
pytest.importorskip("faiss", reason="compaction is a property of the FAISS graph")

DIM = 8


def _data(n: int, seed: int = 0) -> NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _check_contents(index: HNSWIndex, keys: NDArray[np.int64], rows: NDArray[np.float32]) -> None:
    """Every live key is found as its own nearest neighbour and returns its vector."""
    assert len(index) == len(keys)
    found, dists = index.search(rows, k=1, ef=64)
    assert found[:, 0].tolist() == keys.tolist()
    assert float(dists.max()) < 1e-5
    unit = rows[0] / np.linalg.norm(rows[0])
    np.testing.assert_allclose(index.get(int(keys[0])), unit, atol=1e-6)


def test_removing_most_keys_rebuilds_the_graph_on_its_own(tmp_path: Path) -> None:
    base = _data(2_200)
    index = HNSWIndex(DIM, M=8, ef_construction=32, threads=1)
    index.add(np.arange(2_200), base)
    full = index.nbytes
    index.remove(np.arange(0, 1_000))
    assert index.nbytes == full  # 1,000 dead rows of 2,200: under half, kept for now
    index.remove(np.arange(1_000, 1_200))  # 1,200 dead of 2,200: past half, rebuilt
    assert index.nbytes < 0.5 * full
    keys = np.arange(1_200, 2_200)
    _check_contents(index, keys, base[1_200:])
    # filters (key list and predicate), save/load and view see the same live keys
    assert index.search(base[1_500], k=3, filter=[1_500, 5])[0].tolist() == [1_500, -1, -1]
    odd = index.search(base[1_501], k=5, filter=lambda key: key % 2 == 1)[0]
    assert 1_501 in odd.tolist()
    assert all(key % 2 == 1 for key in odd.tolist())
    path = tmp_path / "compacted.nchnsw"
    index.save(path)
    _check_contents(HNSWIndex.load(path), keys, base[1_200:])
    with HNSWIndex.view(path) as view:
        _check_contents(view, keys, base[1_200:])
        assert view.nbytes == index.nbytes


def test_compact_drops_dead_rows_from_removes_and_updates(tmp_path: Path) -> None:
    base, moved = _data(300), _data(100, seed=1)
    index = HNSWIndex(DIM, M=8, ef_construction=32, threads=1)
    index.add(np.arange(300), base)
    full = index.nbytes
    index.remove(np.arange(0, 100))
    index.add(np.arange(100, 200), moved)  # updates: the old rows go dead too
    assert index.nbytes > full  # 400 graph rows, 200 of them dead: below the minimum
    index.compact()
    assert index.nbytes < full
    keys = np.arange(100, 300)
    rows = np.concatenate([moved, base[200:]])
    _check_contents(index, keys, rows)
    assert 50 not in index
    index.add(50, base[50])  # a removed key can come back after compaction
    assert index.search(base[50], k=1)[0].tolist() == [50]
    index.compact()  # nothing dead: a no-op that keeps the graph
    path = tmp_path / "after.nchnsw"
    index.save(path)
    with HNSWIndex.view(path) as view, pytest.raises(InvalidInputError, match="read-only"):
        view.compact()
