"""HNSWIndex files: atomic save, load, memory-mapped view, and hostile files."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vector_oracle import PYTHON_FORCED, needs_native

from neuralcore.core import IndexFileError, InvalidInputError
from neuralcore.vectors import HNSWIndex

# fault injection only: the container module, to fail its fsync and to re-seal crafted
# metadata with valid checksums (no public API writes a lying file)
from neuralcore.vectors.hnsw import _file as _hnsw_file

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


def _filled(backend: str, n: int = 400, dim: int = 12, metric: str = "cosine") -> HNSWIndex:
    data = np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)
    index = HNSWIndex(dim, metric=metric, M=8, ef_construction=64, ef_search=48, backend=backend)
    index.add(np.arange(n) * 2 + 1, data)
    index.remove([1, 3, 5])
    return index


def _queries(dim: int = 12) -> np.ndarray:
    return np.random.default_rng(4).standard_normal((25, dim)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_save_load_round_trip(tmp_path: Path, backend: str, metric: str) -> None:
    index = _filled(backend, metric=metric)
    path = tmp_path / "index.nchnsw"
    index.save(path)
    loaded = HNSWIndex.load(path, backend=backend)
    assert (loaded.dim, loaded.metric, loaded.M, loaded.ef_construction, loaded.ef_search) == (
        12, metric, 8, 64, 48,
    )  # fmt: skip
    assert len(loaded) == len(index) == 397
    assert 1 not in loaded
    assert 7 in loaded
    np.testing.assert_array_equal(loaded.get(7), index.get(7))
    for before, after in zip(
        index.search(_queries(), k=10), loaded.search(_queries(), k=10), strict=True
    ):
        np.testing.assert_array_equal(before, after)
    loaded.add(1, np.ones(12))  # a loaded index is mutable
    assert 1 in loaded


def test_load_across_backends(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "index.nchnsw"
    _filled(backend).save(path)
    for other in ("python", "native") if HAVE_FAISS and not PYTHON_FORCED else ("python",):
        loaded = HNSWIndex.load(path, backend=other)
        assert loaded.backend.backend == other
        assert len(loaded) == 397
        assert loaded.search(_queries()[0], k=1)[0][0] >= 0


def test_view_is_memory_mapped_read_only_and_searches_the_saved_graph(
    tmp_path: Path, backend: str
) -> None:
    index = _filled(backend, metric="l2")
    path = tmp_path / "index.nchnsw"
    index.save(path)
    with HNSWIndex.view(path, backend=backend) as view:
        assert view.read_only
        assert view.backend.backend == backend
        assert len(view) == 397
        assert 7 in view
        assert 1 not in view
        in_ram = HNSWIndex.load(path, backend=backend).search(_queries(), k=10)
        for ours, theirs in zip(view.search(_queries(), k=10), in_ram, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(view.get(7), index.get(7))
        filtered = view.search(_queries()[0], k=3, filter=[7, 9])[0]
        assert sorted(filtered[:2].tolist()) == [7, 9]
        assert filtered[2] == -1
        for mutate in (lambda: view.add(2, np.ones(12)), lambda: view.remove(7)):
            with pytest.raises(InvalidInputError, match="read-only view"):
                mutate()
    for use in (lambda: len(view), lambda: view.search(_queries()[0]), lambda: view.get(7)):
        with pytest.raises(InvalidInputError, match="closed"):  # never a silent empty answer
            use()


def test_view_does_not_read_the_file_into_memory(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "big.nchnsw"
    # wide rows, so the vectors (~39 MiB) dwarf the graph that opening validates (~0.3 MiB)
    index = HNSWIndex(1024, M=4, ef_construction=8, backend=backend)
    data = np.random.default_rng(0).standard_normal((10_000, 1024), dtype=np.float32)
    index.add(np.arange(10_000), data)
    index.save(path)
    del index, data
    size = path.stat().st_size
    process = psutil.Process()
    before = process.memory_info().rss
    view = HNSWIndex.view(path, backend=backend)
    grown = process.memory_info().rss - before
    assert grown < size / 4, f"opening a view grew RSS by {grown / 2**20:.1f} MiB of {size >> 20}"
    assert view.search(np.ones(1024), k=1)[0][0] >= 0
    view.close()


def test_save_is_atomic_and_leaves_no_temp_files(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "index.nchnsw"
    _filled(backend).save(path)
    original = path.read_bytes()

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_hnsw_file.os, "fsync", fail)
    with pytest.raises(IndexFileError, match="disk full"):
        _filled(backend, n=50).save(path)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.nchnsw"]


def test_f16_index_round_trips_across_backends(tmp_path: Path, backend: str) -> None:
    index = HNSWIndex(4, dtype="f16", metric="l2", backend=backend)
    index.add([1, 2], [[0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0]])
    index.save(tmp_path / "f16.nchnsw")
    for other in ("python", "native") if HAVE_FAISS and not PYTHON_FORCED else ("python",):
        loaded = HNSWIndex.load(tmp_path / "f16.nchnsw", backend=other)
        assert (loaded.dtype, loaded.backend.backend) == ("f16", other)
        np.testing.assert_array_equal(loaded.get(1), index.get(1))
    with HNSWIndex.view(tmp_path / "f16.nchnsw") as view:
        assert view.search([1.0, 1.0, 1.0, 1.0], k=1)[0].tolist() == [2]


def test_empty_index_round_trips(tmp_path: Path, backend: str) -> None:
    HNSWIndex(5, backend=backend).save(tmp_path / "empty.nchnsw")
    assert len(HNSWIndex.load(tmp_path / "empty.nchnsw", backend=backend)) == 0
    with HNSWIndex.view(tmp_path / "empty.nchnsw") as view:
        assert view.search(np.ones(5), k=2)[0].tolist() == [-1, -1]


@pytest.fixture
def saved(tmp_path: Path, backend: str) -> Path:
    path = tmp_path / "index.nchnsw"
    _filled(backend, n=120).save(path)
    return path


def _open_both(path: Path) -> None:
    HNSWIndex.load(path)
    HNSWIndex.view(path, verify=True).close()


@pytest.mark.parametrize(
    "content",
    [b"", b"NCHNSW", b"PK\x03\x04" + b"\0" * 100, b"\x89HDF\r\n\x1a\n" + b"\0" * 100],
)
def test_foreign_or_empty_files_raise(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "foreign.bin"
    path.write_bytes(content)
    with pytest.raises(IndexFileError):
        _open_both(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match="cannot open"):
        HNSWIndex.load(tmp_path / "nope.nchnsw")
    with pytest.raises(IndexFileError, match="cannot open"):
        HNSWIndex.view(tmp_path / "nope.nchnsw")


def test_truncated_files_raise(saved: Path) -> None:
    data = saved.read_bytes()
    for size in (0, 8, 31, 32, 100, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:size])
        with pytest.raises(IndexFileError):
            _open_both(saved)


def test_future_version_raises(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    struct.pack_into("<I", data, 8, 99)
    saved.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="version 99"):
        HNSWIndex.load(saved)


def _rewrite_meta(path: Path, change: dict) -> None:
    """Rewrite the metadata with a valid checksum, as a buggy or hostile writer might."""
    file = _hnsw_file.read_index_file(path)
    meta = {**file.meta, **change}
    sections = [
        _hnsw_file.Section(s["name"], bytes(file.sections[s["name"]])) for s in meta.pop("sections")
    ]
    file.close()
    _hnsw_file.write_index_file(path, meta, sections)


@pytest.mark.parametrize(
    "change",
    [
        {"format": "other"},
        {"engine": "annoy"},
        {"M": 10**6},
        {"M": 1},
        {"dim": 2**40},
        {"dim": 13},
        {"dim": 0},
        {"count": 10**9},
        {"count": -1},
        {"metric": "hamming"},
        {"dtype": "i4"},
        {"dtype": "i8"},  # codes of another size
        {"dtype": "i8", "metric": "l2"},
        {"ef_search": "many"},
    ],
)
def test_inconsistent_metadata_raises_before_native_code(saved: Path, change: dict) -> None:
    _rewrite_meta(saved, change)
    with pytest.raises(IndexFileError):
        _open_both(saved)


def test_graph_header_is_checked_against_metadata(saved: Path, backend: str) -> None:
    _rewrite_meta(saved, {"M": 32})
    if backend == "python":  # exact-engine files hold no graph: M is only a setting
        assert HNSWIndex.load(saved).M == 32
        return
    with pytest.raises(IndexFileError, match="FAISS section"):
        _open_both(saved)


@pytest.mark.parametrize("backend", ["python"])
def test_unsorted_keys_raise(saved: Path) -> None:
    file = _hnsw_file.read_index_file(saved)
    keys = np.frombuffer(file.sections["keys"], dtype="<i8")[::-1].copy()
    sections = [
        _hnsw_file.Section(
            s["name"], keys.tobytes() if s["name"] == "keys" else bytes(file.sections[s["name"]])
        )
        for s in file.meta["sections"]
    ]
    meta = {k: v for k, v in file.meta.items() if k != "sections"}
    del keys
    file.close()
    _hnsw_file.write_index_file(saved, meta, sections)
    with pytest.raises(IndexFileError, match="ascending"):
        _open_both(saved)


def test_metadata_is_json_not_pickle(saved: Path) -> None:
    data = saved.read_bytes()
    (length,) = struct.unpack_from("<I", data, 12)
    meta = json.loads(data[32 : 32 + length])
    names = {s["name"] for s in meta["sections"]}
    assert names in ({"keys", "vectors"}, {"labels", "faiss"})
    assert b"\x80\x04\x95" not in data[: 32 + length]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_flipped_byte_is_caught_or_harmless(saved: Path, position: float, flip: int) -> None:
    data = bytearray(saved.read_bytes())
    offset = int(position * len(data))
    data[offset] ^= flip
    corrupt = saved.with_suffix(".corrupt")
    corrupt.write_bytes(bytes(data))
    try:
        loaded = HNSWIndex.load(corrupt)
    except IndexFileError:
        return
    # only zero padding between sections is outside the checksums
    reference = HNSWIndex.load(saved)
    assert data[offset] == flip
    for ours, theirs in zip(
        loaded.search(_queries(), k=5), reference.search(_queries(), k=5), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)


def test_unreadable_path_is_index_file_error(tmp_path: Path) -> None:
    # a directory cannot be read as a file, even by root (chmod 0 would not stop root)
    with pytest.raises(IndexFileError, match="not a regular file"):
        HNSWIndex.load(tmp_path)
