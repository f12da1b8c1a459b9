"""HNSW rows of ``neuralcore bench vectors``: :class:`HNSWIndex` against exact numpy search.

The data set is the one the recall requirement names: 1,000 Gaussian centres in 384-d
(``N(0, 1)``; one centre per 100 points at other sizes), each point a centre plus
``N(0, SPREAD**2)`` noise, 1,000 held-out queries drawn the same way; ground truth is exact
cosine top-10. Recall depends steeply on ``SPREAD`` at fixed settings (measured, M=16,
ef_construction=128, ef 96-128: 1.0 at 1.0, 0.99 at 2.0, 0.75 at 2.5, 0.38 at 3.0, where the
nearest neighbours are barely closer than the rest of the set). The baseline (``numpy naive``
column) is exact brute force on a pre-normalised float32 matrix (``argpartition``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neuralcore._bench._common import Row, median_seconds

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ("SPREAD", "clustered", "exact_top_k", "hnsw_rows", "recall_at")

BASELINE, OURS = "numpy naive", "neuralcore"
SPREAD = 2.0
DIM = 384


def clustered(n: int, *, dim: int = DIM, centres: int = 1000, seed: int = 0) -> NDArray[Any]:
    """``n`` float32 points around ``centres`` Gaussian centres (noise std ``SPREAD``).

    Examples
    --------
    >>> clustered(5, dim=3, centres=2).shape
    (5, 3)
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, dim), dtype=np.float32)
    noise = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(SPREAD)
    return middle[rng.integers(0, centres, n)] + noise


def exact_top_k(base: NDArray[Any], queries: NDArray[Any], k: int) -> NDArray[Any]:
    """Exact cosine top-``k`` keys (row numbers) per query, in blocks of 100 queries.

    Examples
    --------
    >>> import numpy as np
    >>> exact_top_k(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32)[:1], 1).tolist()
    [[0]]
    """
    import numpy as np

    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = []
    for start in range(0, len(q), 100):
        dist = 1.0 - q[start : start + 100] @ unit.T
        part = np.argpartition(dist, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(dist, part, axis=1), axis=1)
        out.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(out)


def recall_at(found: NDArray[Any], truth: NDArray[Any]) -> float:
    """Mean fraction of the true neighbours found per query.

    Examples
    --------
    >>> import numpy as np
    >>> recall_at(np.array([[1, 2]]), np.array([[2, 3]]))
    0.5
    """
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth, strict=True))
    return hits / truth.size


def _exact_search(unit: NDArray[Any], queries: NDArray[Any]) -> Any:
    import numpy as np

    dist = 1.0 - queries @ unit.T
    return np.argpartition(dist, 9, axis=-1)[..., :10]


def hnsw_rows(quick: bool = False, *, n: int | None = None, queries: int = 1000) -> list[Row]:
    """Build, search (one query; a batch), recall@10, memory, and the file paths.

    ``quick`` uses 20,000 points instead of 100,000 (said in each row's note); ``n``
    overrides both (tests use it).

    Examples
    --------
    >>> hnsw_rows  # doctest: +ELLIPSIS
    <function hnsw_rows at ...>
    """
    size = n or (20_000 if quick else 100_000)
    data = clustered(size + queries, centres=max(1, size // 100))  # 100 points per centre
    base, probe = data[:size], data[size:]
    note = "quick: 20,000 points, 200 centres" if quick and n is None else ""
    index, build = _build(base, note)
    timer = _timer(quick)
    rows = [build, *_search_rows(index, base, probe, timer, note)]
    return rows + _file_rows(index, base, probe, timer, note)


def _timer(quick: bool) -> Callable[[Callable[[], object]], float]:
    return lambda fn: median_seconds(fn, repeat=3 if quick else 5, min_time=0.05)


def _build(base: NDArray[Any], note: str) -> tuple[Any, Row]:
    import numpy as np

    from neuralcore.vectors.hnsw._index import HNSWIndex

    wall, cpu = time.perf_counter(), time.process_time()
    index = HNSWIndex(DIM, threads=2)
    index.add(np.arange(len(base)), base)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    label = f"HNSW build {len(base):,} x {DIM}, 2 threads"
    detail = f"M={index.M}, ef_construction={index.ef_construction}; {cpu:.0f} CPU-s"
    return index, Row(label, {OURS: wall}, "time", f"{note}; {detail}" if note else detail)


def _search_rows(
    index: Any, base: NDArray[Any], probe: NDArray[Any], t: Callable[..., float], note: str
) -> list[Row]:
    import numpy as np

    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    qunit = probe / np.linalg.norm(probe, axis=1, keepdims=True)
    single = {OURS: 1 / t(lambda: index.search(probe[0], k=10))}
    single[BASELINE] = 1 / t(lambda: _exact_search(unit, qunit[0]))
    batch = {OURS: len(probe) / t(lambda: index.search(probe, k=10))}
    batch[BASELINE] = len(probe) / t(lambda: _exact_search(unit, qunit))
    recall = recall_at(index.search(probe, k=10)[0], exact_top_k(base, probe, 10))
    mib = {OURS: index.nbytes / 2**20, BASELINE: unit.nbytes / 2**20}
    label = f"{len(base):,} x {DIM}"
    return [
        Row(f"HNSW search, 1 query, k=10, ef_search={index.ef_search}", single, "rate", note),
        Row(f"HNSW search, batch of {len(probe):,}, 2 threads", batch, "rate", note),
        Row(f"HNSW recall@10, clustered {label}", {OURS: recall, BASELINE: 1.0}, "value", note),
        Row(f"HNSW memory, MiB, {label}", mib, "value", note or "graph + vectors; numpy: matrix"),
    ]


def _file_rows(
    index: Any, base: NDArray[Any], probe: NDArray[Any], t: Callable[..., float], note: str
) -> list[Row]:
    """Save + load time, and single-query speed of a memory-mapped view (exact search)."""
    import tempfile
    from pathlib import Path

    from neuralcore.vectors.hnsw._index import HNSWIndex

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.nchnsw"
        start = time.perf_counter()
        index.save(path)
        loaded = HNSWIndex.load(path)
        round_trip = time.perf_counter() - start
        size = path.stat().st_size / 2**20
        del loaded
        with HNSWIndex.view(path) as view:
            viewed = 1 / t(lambda: view.search(probe[0], k=10))
    detail = f"file {size:.0f} MiB"
    return [
        Row(
            "HNSW save + load", {OURS: round_trip}, "time", f"{note}; {detail}" if note else detail
        ),
        Row("HNSW view() search, 1 query (exact over mmap)", {OURS: viewed}, "rate", note),
    ]


def _main() -> None:  # pragma: no cover - manual run: python -m neuralcore._bench._hnsw
    import sys

    from neuralcore._bench._common import format_table

    rows = hnsw_rows("--quick" in sys.argv)
    print(format_table(rows, [BASELINE, OURS], OURS))


if __name__ == "__main__":  # pragma: no cover
    _main()
