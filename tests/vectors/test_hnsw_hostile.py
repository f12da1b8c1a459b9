"""Hostile files and values: crafted graphs with valid checksums, FIFOs, bounds, magnitudes.

FAISS 1.15 checks link ids and offsets itself, but not that a link on level ``l`` points at
a node that exists on level ``l``: a file whose upper-level links point at level-0-only
nodes loads in FAISS and segfaults on the next search (measured). The validation here
refuses it, and every other structural lie, before FAISS reads the bytes.

The crafted-file fuzz rewrites fields of the stored FAISS graph (levels, offsets, links,
entry point, counts, header) and re-seals the file with correct checksums, so only the
structural validation stands between the bytes and FAISS. Each file is opened and searched
in a child process: a crash there (SIGSEGV) fails the test with the file that caused it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from vector_oracle import needs_native

from neuralcore.core import ConfigError, IndexFileError, InputTypeError, InvalidInputError
from neuralcore.vectors import HNSWIndex

# fault injection only: crafted files need the container writer (to re-seal a rewritten
# graph with valid checksums) and the validator's field offsets (to aim each lie)
from neuralcore.vectors.hnsw import _file
from neuralcore.vectors.hnsw._graph import validate_faiss_hnsw

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu")
BACKENDS = [pytest.param("native", marks=[needs_faiss, needs_native]), "python"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _saved(path: Path, *, n: int = 80, dim: int = 8, dtype: str = "f32") -> Path:
    index = HNSWIndex(dim, M=4, ef_construction=16, dtype=dtype, backend="native")
    index.add(np.arange(n) * 3, np.random.default_rng(0).standard_normal((n, dim)))
    index.remove([3, 6])
    index.save(path)
    return path


def _reseal(source: Path, target: Path, faiss_blob: bytes, labels: bytes | None = None) -> None:
    """Write ``source`` again with another FAISS section, with valid checksums."""
    file = _file.read_index_file(source)
    meta = {k: v for k, v in file.meta.items() if k != "sections"}
    new = {"faiss": faiss_blob, "labels": labels if labels is not None else b""}
    sections = [
        _file.Section(s["name"], new[s["name"]] or bytes(file.sections[s["name"]]))
        for s in file.meta["sections"]
    ]
    file.close()
    _file.write_index_file(target, meta, sections)


def _blob(path: Path) -> bytearray:
    file = _file.read_index_file(path)
    blob = bytearray(file.sections["faiss"])
    file.close()
    return blob


_CHILD = textwrap.dedent(
    """
    import sys, numpy as np
    from neuralcore.core import IndexFileError
    from neuralcore.vectors import HNSWIndex
    queries = np.random.default_rng(1).standard_normal((4, 8))
    refused = opened = 0
    for path in sys.argv[1:]:
        print(path, flush=True)
        for open_it in (HNSWIndex.load, HNSWIndex.view):
            try:
                index = open_it(path)
            except IndexFileError:
                refused += 1
                continue
            opened += 1
            keys, _ = index.search(queries, k=5)
            assert np.all((keys == -1) | np.isin(keys, np.arange(80) * 3)), keys
            index.add if index.read_only else index.add(1_000_000, np.ones(8))
    print("done", refused, opened, flush=True)
    """
)


def _run_child(paths: list[Path]) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, paths)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1:] or ["<no output>"]
    assert done.returncode == 0, (
        f"child died ({done.returncode}) on {last[0]}: {done.stderr[-2000:]}"
    )
    _, refused, opened = last[0].split()
    return int(refused), int(opened)


@needs_faiss
@needs_native
def test_crafted_graph_fields_with_valid_checksums_never_crash(tmp_path: Path) -> None:
    source = _saved(tmp_path / "good.nchnsw")
    blob = _blob(source)
    rng = np.random.default_rng(7)
    hostile = [-(2**31), -2, -1, 0, 1, 79, 80, 81, 4096, 2**31 - 1]
    graph_end = blob.find(b"IxFI")
    paths = []
    for i in range(160):
        mutated = bytearray(blob)
        offset = int(rng.integers(4, graph_end - 4)) & ~3
        value = hostile[i % len(hostile)] if i % 3 else int(rng.integers(-(2**31), 2**31))
        mutated[offset : offset + 4] = int(value).to_bytes(4, "little", signed=True)
        if i % 7 == 0:  # a size_t length field: make it huge
            mutated[offset : offset + 8] = (2**62 + i).to_bytes(8, "little")
        path = tmp_path / f"crafted{i}.nchnsw"
        _reseal(source, path, bytes(mutated))
        paths.append(path)
    refused, opened = _run_child(paths)
    assert refused + opened == 2 * len(paths)
    assert refused > 100  # most structural edits are caught; the rest are harmless


@needs_faiss
@needs_native
def test_lying_8bit_ranges_are_refused(tmp_path: Path) -> None:
    source = _saved(tmp_path / "good.nchnsw", dtype="i8")
    blob = _blob(source)
    meta = _file.read_index_file(source)
    where = validate_faiss_hnsw(
        source, meta.sections["faiss"], dim=8, rows=80, metric="cosine", dtype="i8", m=4
    )
    meta.close()
    lies = {
        "nan minimum": (where.trained_offset, np.float32(np.nan)),
        "infinite minimum": (where.trained_offset + 4, np.float32(np.inf)),
        "zero width": (where.trained_offset + 4 * 8, np.float32(0.0)),
        "negative width": (where.trained_offset + 4 * 9, np.float32(-1.0)),
    }
    paths = []
    for name, (offset, value) in lies.items():
        mutated = bytearray(blob)
        mutated[offset : offset + 4] = value.tobytes()
        path = tmp_path / f"{name.replace(' ', '_')}.nchnsw"
        _reseal(source, path, bytes(mutated))
        paths.append(path)
    assert _run_child(paths) == (2 * len(lies), 0)


@needs_faiss
@needs_native
def test_every_named_structural_lie_is_refused(tmp_path: Path) -> None:
    source = _saved(tmp_path / "good.nchnsw")
    blob = _blob(source)
    file = _file.read_index_file(source)
    labels = np.frombuffer(file.sections["labels"], dtype="<i8").copy()
    file.close()
    meta = _file.read_index_file(source)
    where = validate_faiss_hnsw(
        source, meta.sections["faiss"], dim=8, rows=80, metric="cosine", dtype="f32", m=4
    )
    meta.close()

    def put(offset: int, value: int) -> bytes:
        out = bytearray(blob)
        out[offset : offset + 4] = value.to_bytes(4, "little", signed=True)
        return bytes(out)

    levels = np.frombuffer(bytes(blob), "<i4", count=80, offset=where.levels_offset)
    low = int(np.flatnonzero(levels == 1)[0])
    offsets = np.frombuffer(
        bytes(blob), "<u8", count=81, offset=where.links_offset - 8 - 81 * 8
    ).astype(int)
    high = int(np.flatnonzero(levels >= 2)[0])
    upper_slot = where.links_offset + 4 * (offsets[high] + 2 * 4)  # its first level-1 link
    lies = {
        "upper link to a level-0-only node": (put(upper_slot, low), None),
        "link past the end": (put(where.links_offset, 2**30), None),
        "negative link": (put(where.links_offset + 4, -7), None),
        "entry point past the end": (put(where.entry_offset, 10**6), None),
        "node level too high": (put(where.levels_offset + 4 * low, 9), None),
        "node level zero": (put(where.levels_offset, 0), None),
        "duplicate labels": (bytes(blob), np.where(labels == 9, 12, labels).tobytes()),
        "label below -1": (bytes(blob), np.where(labels == 9, -5, labels).tobytes()),
        "trailing bytes": (bytes(blob) + b"\0" * 8, None),
        "short blob": (bytes(blob[:-4]), None),
        "wrong fourcc": (b"IHNp" + bytes(blob[4:]), None),
    }
    paths = []
    for name, (data, new_labels) in lies.items():
        path = tmp_path / f"{name.replace(' ', '_')}.nchnsw"
        _reseal(source, path, data, new_labels)
        paths.append(path)
    refused, opened = _run_child(paths)
    assert (refused, opened) == (2 * len(lies), 0)


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.nchnsw"
    os.mkfifo(fifo)
    code = (
        "import sys\nfrom neuralcore.core import IndexFileError\n"
        "from neuralcore.vectors import HNSWIndex\n"
        "for open_it in (HNSWIndex.load, HNSWIndex.view):\n"
        "    try:\n        open_it(sys.argv[1])\n    except IndexFileError as e:\n"
        "        assert 'not a regular file' in str(e), e\n"
        "    else:\n        raise SystemExit('opened a FIFO')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(fifo)], check=True, timeout=60)


def test_save_to_a_directory_a_missing_folder_or_none(tmp_path: Path, backend: str) -> None:
    index = HNSWIndex(2, backend=backend)
    index.add(1, [1.0, 0.0])
    with pytest.raises(IndexFileError, match="directory"):
        index.save(tmp_path)
    with pytest.raises(IndexFileError, match="cannot write"):
        index.save(tmp_path / "missing" / "index.nchnsw")
    with pytest.raises(InputTypeError, match="NoneType"):
        index.save(None)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        HNSWIndex.load(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"M": 10_001}, "M"), ({"M": 1}, "M"), ({"ef_construction": 2**40}, "ef_construction")],
)
def test_graph_settings_are_bounded(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        HNSWIndex(4, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_huge_dim_and_k_are_refused_not_allocated(backend: str) -> None:
    with pytest.raises(ConfigError, match="'dim'"):
        HNSWIndex(2**40, backend=backend)
    index = HNSWIndex(2, backend=backend)
    index.add(1, [1.0, 0.0])
    with pytest.raises(InvalidInputError, match="k must be <="):
        index.search([1.0, 0.0], k=2**40)
    assert index.search([1.0, 0.0], k=np.int64(3))[0].tolist() == [1, -1, -1]


@pytest.mark.parametrize("scale", [1e-300, 1e-30, 1e20, 1e300])
def test_cosine_rows_of_any_finite_magnitude_are_stored_faithfully(
    backend: str, scale: float
) -> None:
    index = HNSWIndex(3, backend=backend)
    rows = np.array([[3.0, 4.0, 0.0], [0.0, 1.0, 1.0]]) * scale
    index.add([1, 2], rows)
    np.testing.assert_allclose(index.get(1), [0.6, 0.8, 0.0], rtol=1e-6)
    keys, dists = index.search(rows[1], k=2)
    assert keys.tolist() == [2, 1]
    assert dists[0] == pytest.approx(0.0, abs=1e-6)


def test_values_beyond_float32_are_refused_for_ip_and_l2(backend: str) -> None:
    index = HNSWIndex(2, metric="l2", backend=backend)
    with pytest.raises(InvalidInputError, match="float32"):
        index.add(1, [1e300, 1.0])
    assert len(index) == 0
