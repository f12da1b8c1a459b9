"""Concurrent searches while other threads add, update and remove."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable

import numpy as np
import pytest
from vector_oracle import needs_native

from neuralcore.vectors import HNSWIndex

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
BACKENDS = [
    pytest.param(
        "native", marks=[pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu"), needs_native]
    ),
    "python",
]
DIM = 16


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run_all(jobs: list[Callable[[], None]]) -> None:
    """Run ``jobs`` in threads started together; re-raise the first failure."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def wrap(job: Callable[[], None]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as err:  # collected and re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=wrap, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_searches_while_another_thread_adds(backend: str) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((12_000, DIM)).astype(np.float32)
    index = HNSWIndex(DIM, M=8, ef_construction=40, ef_search=32, threads=2, backend=backend)
    index.add(np.arange(1000), data[:1000])
    done = threading.Event()

    def writer() -> None:
        for start in range(1000, 12_000, 500):
            index.add(np.arange(start, start + 500), data[start : start + 500])
        index.add(np.arange(0, 500), data[:500] * 2)  # updates
        index.remove(np.arange(500, 700))
        done.set()

    during_writes = [0, 0, 0]

    def reader(seed: int) -> Callable[[], None]:
        def run() -> None:
            local = np.random.default_rng(seed)
            while not done.is_set():
                during_writes[seed - 1] += 1
                queries = local.standard_normal((int(local.integers(1, 20)), DIM))
                keys, dists = index.search(queries, k=10, ef=int(local.choice([32, 64])))
                assert keys.shape == (len(queries), 10)
                assert ((keys >= -1) & (keys < 12_000)).all()
                assert np.all(np.diff(dists, axis=1) >= 0)
                assert len(index) <= 12_000
                assert (0 in index) in (True, False)

        return run

    _run_all([writer, reader(1), reader(2), reader(3)])
    assert min(during_writes) > 0, "readers never overlapped the writer"
    assert len(index) == 11_800
    keys, _ = index.search(data[5000:5100], k=1)
    assert (keys[:, 0] == np.arange(5000, 5100)).mean() >= 0.95


def test_two_writers_and_filtered_readers(backend: str) -> None:
    index = HNSWIndex(DIM, M=8, ef_construction=40, backend=backend)
    rng = np.random.default_rng(1)
    blocks = [rng.standard_normal((2000, DIM)).astype(np.float32) for _ in range(2)]

    def writer(offset: int) -> Callable[[], None]:
        def run() -> None:
            for start in range(0, 2000, 250):
                keys = np.arange(start, start + 250) + offset
                index.add(keys, blocks[offset // 10_000][start : start + 250])
                index.remove(keys[:50])

        return run

    def reader() -> None:
        for _ in range(200):
            keys, _ = index.search(np.ones(DIM), k=5, filter=lambda key: key >= 10_000)
            assert ((keys >= 10_000) | (keys == -1)).all()

    _run_all([writer(0), writer(10_000), reader, reader])
    assert len(index) == 2 * 1600
