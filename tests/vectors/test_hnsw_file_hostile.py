"""Crafted index files with valid checksums: stored values and metadata of the wrong type.

Each file is written by the real container writer with correct CRCs, so only the value
and type checks of the reader stand between the bytes and a search: a NaN row used to
answer key -1 with a NaN distance, a row of 1e30 in a cosine file made every distance 0,
a zero row gave ``load`` and ``view`` different orders, ``"[" * 100000`` as metadata
raised a raw RecursionError and ``"dtype": ["f32"]`` a raw TypeError.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vector_oracle import needs_native

from neuralcore.errors import IndexFileError
from neuralcore.vectors import HNSWIndex

# fault injection only: the container writer re-seals crafted content with valid CRCs
from neuralcore.vectors.hnsw import _file

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="no faiss-cpu")
DIM = 8

Opener = Callable[[Path], HNSWIndex]
OPENERS = [
    pytest.param(lambda p: HNSWIndex.load(p, backend="python"), id="load-python"),
    pytest.param(
        lambda p: HNSWIndex.load(p, backend="native"), id="load-native",
        marks=[needs_faiss, needs_native],
    ),
    pytest.param(lambda p: HNSWIndex.view(p, backend="python"), id="view"),
    pytest.param(lambda p: HNSWIndex.view(p, verify=True, backend="python"), id="view-verify"),
]  # fmt: skip


def _exact_file(path: Path, *, metric: str = "cosine", dtype: str = "f32", n: int = 6) -> Path:
    """A genuine exact-engine file (python backend), keys 10, 20, ..."""
    index = HNSWIndex(DIM, metric=metric, dtype=dtype, backend="python", threads=1)
    index.add(np.arange(1, n + 1) * 10, np.random.default_rng(0).standard_normal((n, DIM)))
    index.save(path)
    return path


def _parts(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    file = _file.read_index_file(path)
    meta = {k: v for k, v in file.meta.items() if k != "sections"}
    sections = {name: bytes(view) for name, view in file.sections.items()}
    file.close()
    return meta, sections


def _reseal(
    source: Path, target: Path, *, meta: dict[str, Any] | None = None, **new: bytes
) -> Path:
    """``source`` written again with other metadata fields / sections, valid CRCs."""
    old_meta, sections = _parts(source)
    sections |= new
    _file.write_index_file(
        target, {**old_meta, **(meta or {})}, [_file.Section(k, v) for k, v in sections.items()]
    )
    return target


def _with_rows(path: Path, target: Path, dtype: str, rows: dict[int, Any]) -> Path:
    """``path`` with some stored rows replaced by raw stored values (file dtype)."""
    stored = {"f32": "<f4", "f16": "<f2", "bf16": "<u2", "i8": "i1"}[dtype]
    _, sections = _parts(path)
    vectors = np.frombuffer(sections["vectors"], dtype=stored).reshape(-1, DIM).copy()
    for row, value in rows.items():
        vectors[row] = value
    return _reseal(path, target, vectors=vectors.tobytes())


_BF16_NAN, _BF16_INF, _BF16_1E30 = 0x7FC0, 0x7F80, 0x7149  # 0x7149 is ~9.9e29
BAD_ROWS = [
    # (metric, dtype, stored row value, what the error says)
    ("cosine", "f32", np.nan, "NaN or infinity"),
    ("cosine", "f32", np.inf, "NaN or infinity"),
    ("cosine", "f32", 1e30, "not 1"),
    ("cosine", "f32", 0.0, "zero length"),
    ("cosine", "f32", 0.7, "not 1"),  # norm 0.7 * sqrt(8) ~ 1.98
    ("cosine", "f32", 1e-40, "not 1"),
    ("cosine", "f16", np.float16(np.inf), "NaN or infinity"),
    ("cosine", "f16", 0.0, "zero length"),
    ("cosine", "bf16", _BF16_NAN, "NaN or infinity"),
    ("cosine", "bf16", _BF16_1E30, "not 1"),
    ("cosine", "bf16", 0x0080, "not 1"),  # 1.2e-38: squares underflow float32
    ("cosine", "i8", 0, "zero length"),
    ("l2", "f32", np.nan, "NaN or infinity"),
    ("l2", "f32", 1e30, "beyond"),
    ("ip", "f32", -np.inf, "NaN or infinity"),
    ("ip", "f32", 3.3e18, "beyond"),  # above sqrt(3.4e38 / 8) / 2 ~ 3.26e18
    ("l2", "bf16", _BF16_INF, "NaN or infinity"),
    ("l2", "bf16", _BF16_1E30, "beyond"),
    ("l2", "f16", np.float16(np.nan), "NaN or infinity"),
]


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize(("metric", "dtype", "value", "says"), BAD_ROWS)
def test_stored_rows_that_add_refuses_are_refused_on_open(
    tmp_path: Path, opener: Opener, metric: str, dtype: str, value: Any, says: str
) -> None:
    good = _exact_file(tmp_path / "good.nchnsw", metric=metric, dtype=dtype)
    bad = _with_rows(good, tmp_path / "bad.nchnsw", dtype, {3: value})
    with pytest.raises(IndexFileError, match=says) as info:
        opener(bad)
    assert str(bad) in str(info.value)
    assert "key 40 (row 3)" in str(info.value)


@pytest.mark.parametrize("opener", OPENERS)
def test_every_row_damaged_is_counted_in_the_message(tmp_path: Path, opener: Opener) -> None:
    good = _exact_file(tmp_path / "good.nchnsw")
    bad = _with_rows(good, tmp_path / "bad.nchnsw", "f32", dict.fromkeys(range(6), np.nan))
    with pytest.raises(IndexFileError, match=r"key 10 \(row 0\) holds NaN.*5 more rows"):
        opener(bad)


# rows add() accepts at the edges of its range: they must still open, and answer the same
EDGE_ROWS = [
    ("cosine", "f32", [1e30] * DIM),  # normalised by add(): stored as unit rows
    ("cosine", "f32", [1e-30] + [0.0] * (DIM - 1)),
    ("cosine", "f16", [3.0, 1e-4] + [0.0] * (DIM - 2)),
    ("cosine", "bf16", [1.0] * DIM),
    ("cosine", "i8", [1.0] + [0.01] * (DIM - 1)),
    ("l2", "f32", [3.2e18] * DIM),  # every component just within the bound
    ("l2", "f32", [0.0] * DIM),  # zero rows are fine for l2 and ip
    ("ip", "f16", [65504.0] * DIM),
    ("ip", "bf16", [1e-38] * DIM),
]


@pytest.mark.parametrize(("metric", "dtype", "row"), EDGE_ROWS)
def test_rows_add_accepts_still_open_the_same_way(
    tmp_path: Path, metric: str, dtype: str, row: list[float]
) -> None:
    index = HNSWIndex(DIM, metric=metric, dtype=dtype, backend="python", threads=1)
    index.add([1, 2, 3], np.random.default_rng(1).standard_normal((3, DIM)))
    index.add(7, row)
    path = tmp_path / "edge.nchnsw"
    index.save(path)
    query = np.random.default_rng(2).standard_normal(DIM)
    expected = index.search(query, k=4)
    loaded = HNSWIndex.load(path, backend="python")
    with HNSWIndex.view(path, verify=True) as view:
        for opened in (loaded, view):
            np.testing.assert_array_equal(opened.search(query, k=4)[0], expected[0])
            np.testing.assert_array_equal(opened.get(7), index.get(7))


def test_unit_rows_of_every_storage_type_pass_at_a_large_dimension(tmp_path: Path) -> None:
    # rounding of each stored component must never trip the unit-length check
    rng = np.random.default_rng(3)
    for dtype in ("f32", "f16", "bf16", "i8"):
        index = HNSWIndex(1024, dtype=dtype, backend="python", threads=1)
        data = rng.standard_normal((300, 1024)) * rng.choice([1e-20, 1.0, 1e20], (300, 1))
        data[:5] = 0.0
        data[:5, :5] = np.eye(5)  # one-hot rows
        data[5:10] = 1.0  # flat rows: every component rounds the same way
        index.add(np.arange(300), data)
        index.save(tmp_path / f"{dtype}.nchnsw")
        assert len(HNSWIndex.load(tmp_path / f"{dtype}.nchnsw", backend="python")) == 300
        with HNSWIndex.view(tmp_path / f"{dtype}.nchnsw") as view:
            assert len(view) == 300


def _raw_meta(path: Path, blob: bytes) -> Path:
    """A file whose metadata is exactly ``blob`` (valid CRC, no sections)."""
    header = _file._HEADER.pack(
        _file.MAGIC, _file.FORMAT_VERSION, len(blob), zlib.crc32(blob), 0,
        _file._HEADER.size + len(blob),
    )  # fmt: skip
    path.write_bytes(header + blob)
    return path


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize(
    ("blob", "says"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a":' * 100_000, "nested too deeply"),
        (b'{"sections": [], "dim": NaN}', "NaN"),
        (b'{"sections": [], "dim": -Infinity}', "Infinity"),
        (b'{"sections": [], "dim": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"sections": [], "dim": 1' + b"\xff" + b"}", "not valid JSON"),
    ],
)
def test_hostile_metadata_json_is_an_index_file_error(
    tmp_path: Path, opener: Opener, blob: bytes, says: str
) -> None:
    path = _raw_meta(tmp_path / "meta.nchnsw", blob)
    with pytest.raises(IndexFileError, match=says) as info:
        opener(path)
    assert str(path) in str(info.value)


WRONG_TYPES = [
    ("dtype", ["f32"]),
    ("dtype", {"f32": 1}),
    ("dtype", None),
    ("metric", ["cosine"]),
    ("metric", {"cosine": True}),
    ("metric", 3),
    ("engine", ["exact"]),
    ("engine", {"exact": 1}),
    ("format", ["neuralcore-hnsw"]),
    ("dim", True),
    ("dim", 8.0),
    ("dim", [8]),
    ("dim", 10**400),
    ("count", True),
    ("count", 10**30),
    ("count", [6]),
    ("count", -1),
    ("M", [16]),
    ("ef_construction", "64"),
    ("ef_search", {"n": 1}),
    ("ef_search", False),
]


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
def test_metadata_fields_of_the_wrong_type_are_index_file_errors(
    tmp_path: Path, opener: Opener, field: str, value: object
) -> None:
    good = _exact_file(tmp_path / "good.nchnsw")
    bad = _reseal(good, tmp_path / "bad.nchnsw", meta={field: value})
    with pytest.raises(IndexFileError) as info:
        opener(bad)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize(
    ("entry", "value"),
    [("name", ["vectors"]), ("offset", True), ("length", 2.0), ("crc32", [0]), ("offset", None)],
)
def test_section_table_entries_of_the_wrong_type_are_index_file_errors(
    tmp_path: Path, entry: str, value: object
) -> None:
    good = _exact_file(tmp_path / "good.nchnsw")
    raw = bytearray(good.read_bytes())
    meta_len = struct.unpack_from("<I", raw, 12)[0]
    meta = json.loads(raw[32 : 32 + meta_len])
    meta["sections"][0][entry] = value
    blob = json.dumps(meta).encode()
    with pytest.raises(IndexFileError, match="section"):
        HNSWIndex.load(_raw_meta(tmp_path / "bad.nchnsw", blob))


@needs_faiss
@needs_native
@pytest.mark.parametrize(
    ("field", "value"), [("rows", True), ("rows", [4]), ("dtype", ["f32"]), ("metric", {})]
)
def test_faiss_file_metadata_of_the_wrong_type(tmp_path: Path, field: str, value: object) -> None:
    index = HNSWIndex(DIM, M=4, ef_construction=16, backend="native", threads=1)
    index.add(np.arange(20), np.random.default_rng(0).standard_normal((20, DIM)))
    good = tmp_path / "faiss.nchnsw"
    index.save(good)
    bad = _reseal(good, tmp_path / "bad.nchnsw", meta={field: value})
    for opener in (HNSWIndex.load, HNSWIndex.view):
        with pytest.raises(IndexFileError):
            opener(bad)


def _faiss_file(path: Path, *, metric: str = "cosine", dtype: str = "f32") -> Path:
    """A genuine FAISS-engine file: keys 0..29, key 5 removed (its row stays, label -1)."""
    index = HNSWIndex(DIM, metric=metric, dtype=dtype, M=4, ef_construction=16, threads=1)
    index.add(np.arange(30), np.random.default_rng(0).standard_normal((30, DIM)))
    index.remove(5)
    index.save(path)
    return path


def _with_codes(path: Path, target: Path, dtype: str, rows: dict[int, Any]) -> Path:
    """``path`` with some rows of the FAISS code array replaced (valid CRCs)."""
    from neuralcore.vectors.hnsw._graph import validate_faiss_hnsw

    meta, sections = _parts(path)
    where = validate_faiss_hnsw(
        path, memoryview(sections["faiss"]), dim=DIM, rows=meta["rows"],
        metric=meta["metric"], dtype=dtype, m=meta["M"],
    )  # fmt: skip
    blob = bytearray(sections["faiss"])
    stored = {"f32": "<f4", "f16": "<f2", "bf16": "<u2"}[dtype]
    codes = np.frombuffer(blob, dtype=stored, count=meta["rows"] * DIM, offset=where.codes_offset)
    codes = codes.reshape(-1, DIM).copy()
    for row, value in rows.items():
        codes[row] = value
    blob[where.codes_offset : where.codes_offset + codes.nbytes] = codes.tobytes()
    return _reseal(path, target, faiss=bytes(blob))


FAISS_OPENERS = [
    pytest.param(lambda p: HNSWIndex.load(p, backend="python"), id="load-python"),
    pytest.param(lambda p: HNSWIndex.load(p, backend="native"), id="load-native"),
    pytest.param(lambda p: HNSWIndex.view(p, backend="python"), id="view-python"),
    pytest.param(lambda p: HNSWIndex.view(p, backend="native"), id="view-native"),
]


@needs_faiss
@needs_native
@pytest.mark.parametrize("opener", FAISS_OPENERS)
@pytest.mark.parametrize(
    ("metric", "dtype", "value", "says"),
    [
        ("cosine", "f32", np.nan, "NaN or infinity"),
        ("cosine", "f32", 1e30, "not 1"),
        ("cosine", "f32", 0.0, "zero length"),
        ("cosine", "f16", np.float16(np.inf), "NaN or infinity"),
        ("cosine", "bf16", _BF16_1E30, "not 1"),
        ("l2", "f32", np.nan, "NaN or infinity"),
        ("ip", "f32", 1e30, "beyond"),
        ("l2", "bf16", _BF16_NAN, "NaN or infinity"),
    ],
)
def test_faiss_codes_that_add_refuses_are_refused_on_open(
    tmp_path: Path, opener: Opener, metric: str, dtype: str, value: Any, says: str
) -> None:
    good = _faiss_file(tmp_path / "good.nchnsw", metric=metric, dtype=dtype)
    labels = np.frombuffer(_parts(good)[1]["labels"], dtype="<i8")
    live, removed = int(np.flatnonzero(labels == 7)[0]), int(np.flatnonzero(labels == -1)[0])
    bad = _with_codes(good, tmp_path / "bad.nchnsw", dtype, {live: value})
    with pytest.raises(IndexFileError, match=says) as info:
        opener(bad)
    assert f"key 7 (row {live})" in str(info.value)
    # a removed row is still walked through by the graph search: checked as well
    dead = _with_codes(good, tmp_path / "dead.nchnsw", dtype, {removed: value})
    with pytest.raises(IndexFileError, match=f"a removed key \\(row {removed}\\)"):
        opener(dead)


@needs_faiss
@needs_native
@pytest.mark.parametrize("opener", FAISS_OPENERS)
def test_faiss_8bit_ranges_beyond_unit_are_refused(tmp_path: Path, opener: Opener) -> None:
    from neuralcore.vectors.hnsw._graph import validate_faiss_hnsw

    good = _faiss_file(tmp_path / "good.nchnsw", dtype="i8")
    meta, sections = _parts(good)
    where = validate_faiss_hnsw(
        good, memoryview(sections["faiss"]), dim=DIM, rows=meta["rows"], metric="cosine",
        dtype="i8", m=meta["M"],
    )  # fmt: skip
    blob = bytearray(sections["faiss"])
    blob[where.trained_offset : where.trained_offset + 4] = np.float32(-1e30).tobytes()
    bad = _reseal(good, tmp_path / "bad.nchnsw", faiss=bytes(blob))
    with pytest.raises(IndexFileError, match=r"range \[-1e\+30, .*dimension 0"):
        opener(bad)


@needs_faiss
@needs_native
@pytest.mark.parametrize(
    ("metric", "dtype", "row"),
    [
        ("cosine", "f32", [1e30] * DIM),
        ("cosine", "f16", [3.0, 1e-4] + [0.0] * (DIM - 2)),
        ("cosine", "bf16", [1.0] * DIM),
        ("cosine", "i8", [1.0] + [0.01] * (DIM - 1)),
        ("l2", "f32", [3.2e18] * DIM),
        ("ip", "f16", [65504.0] * DIM),
        ("l2", "bf16", [0.0] * DIM),
    ],
)
def test_genuine_faiss_files_of_every_kind_still_open(
    tmp_path: Path, metric: str, dtype: str, row: list[float]
) -> None:
    index = HNSWIndex(DIM, metric=metric, dtype=dtype, M=4, ef_construction=16, threads=1)
    index.add(np.arange(40), np.random.default_rng(4).standard_normal((40, DIM)))
    index.add(99, row)
    index.remove([3, 4])
    path = tmp_path / "good.nchnsw"
    index.save(path)
    query = np.random.default_rng(5).standard_normal(DIM)
    expected = index.search(query, k=5)[0]
    np.testing.assert_array_equal(HNSWIndex.load(path).search(query, k=5)[0], expected)
    with HNSWIndex.view(path, verify=True) as view:
        np.testing.assert_array_equal(view.search(query, k=5)[0], expected)
    assert len(HNSWIndex.load(path, backend="python")) == 39


@pytest.mark.parametrize(("metric", "dtype", "value", "says"), BAD_ROWS)
def test_numpy_path_without_numkong_refuses_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: str, dtype: str, value: Any, says: str
) -> None:
    from neuralcore.vectors.hnsw import _io

    monkeypatch.setattr(_io, "_NORM", [None])  # as if NumKong were not installed
    good = _exact_file(tmp_path / "good.nchnsw", metric=metric, dtype=dtype)
    bad = _with_rows(good, tmp_path / "bad.nchnsw", dtype, {3: value})
    with pytest.raises(IndexFileError, match=says):
        HNSWIndex.view(bad, backend="python")
    with HNSWIndex.view(good, backend="python") as view:  # genuine rows still open
        assert len(view) == 6
