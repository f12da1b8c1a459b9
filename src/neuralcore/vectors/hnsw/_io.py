"""Saving and opening :class:`~neuralcore.vectors.HNSWIndex` files.

Two layouts share the container of :mod:`._file` (header, JSON metadata, checksummed
sections):

* ``engine: "faiss"``: ``labels`` (``<i8``, the key of each graph row, -1 for a dead row)
  and ``faiss`` (FAISS's own serialised HNSW graph and codes). Before FAISS sees the
  section, :func:`~._graph.validate_faiss_hnsw` checks every structural field.
* ``engine: "exact"``: ``keys`` (``<i8``, ascending) and ``vectors`` (``<f4``/``<f2``/
  ``<u2`` for bf16/``i1`` for i8, row-major). Files written by the earlier hnswlib engine
  (``engine: "hnswlib"``) have the same two sections and load the same way (the graph is
  rebuilt; their hnswlib section is never parsed). The stored rows are checked as
  :meth:`~neuralcore.vectors.HNSWIndex.add` checks input, in one pass over the block
  (row norms in float64): finite; for cosine non-zero and unit length, as ``add`` stores
  them; for ``ip``/``l2`` within the range ``add`` accepts.

``load`` copies what it needs and closes the file; ``view`` keeps the file mapped: FAISS
reads the graph and codes zero-copy from the mapping and searches the graph there.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from neuralcore.errors import IndexFileError
from neuralcore.vectors.hnsw._exact import STORAGE, ExactEngine, decode, encode
from neuralcore.vectors.hnsw._faiss import FaissEngine, _faiss, faiss_version, new_faiss_index
from neuralcore.vectors.hnsw._file import IndexFile, Section, read_index_file, write_index_file
from neuralcore.vectors.hnsw._graph import GraphInfo, validate_faiss_hnsw

__all__ = ("LIMITS", "Engine", "Settings", "load_engine", "open_view", "save_engine")

FORMAT_NAME = "neuralcore-hnsw"
_FILE_DTYPES: dict[str, np.dtype[Any]] = {
    "f32": np.dtype("<f4"),
    "f16": np.dtype("<f2"),
    "bf16": np.dtype("<u2"),
    "i8": np.dtype("i1"),
}
_METRICS = ("cosine", "ip", "l2")
# upper bounds on settings, checked at construction and again on every file read
LIMITS = {"dim": 65_536, "M": 512, "ef_construction": 1 << 16, "ef_search": 1 << 16}
_LOWER = {"dim": 1, "M": 2, "ef_construction": 1, "ef_search": 1}

Engine = ExactEngine | FaissEngine
Chooser = Callable[[str], str]


class Settings(NamedTuple):
    """Index settings stored in (and restored from) the file metadata."""

    dim: int
    metric: str
    dtype: str
    M: int
    ef_construction: int
    ef_search: int


def save_engine(path: str | os.PathLike[str], settings: Settings, engine: Engine) -> None:
    """Write ``engine``'s content atomically to ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "i.nchnsw"
    >>> s = Settings(2, "l2", "f32", 16, 64, 32)
    >>> e = ExactEngine(2, "l2", "f32")
    >>> e.add(np.array([4]), np.ones((1, 2), dtype=np.float32))
    >>> save_engine(p, s, e)
    >>> settings, loaded = load_engine(p, lambda dtype: "python", threads=1)
    >>> len(loaded), settings == s
    (1, True)
    """
    meta: dict[str, Any] = {"format": FORMAT_NAME, **settings._asdict(), "count": len(engine)}
    if isinstance(engine, FaissEngine):
        blob, labels = engine.serialize()
        meta |= {"engine": "faiss", "rows": len(labels), "faiss_version": faiss_version()}
        sections = [Section("labels", labels.astype("<i8").tobytes()), Section("faiss", blob.data)]
    else:
        keys, vecs = engine.live()
        stored = encode(vecs, settings.dtype).astype(_FILE_DTYPES[settings.dtype])
        meta |= {"engine": "exact"}
        sections = [Section("keys", keys.astype("<i8").tobytes()), Section("vectors", stored.data)]
    write_index_file(path, meta, sections)


def _settings(file: IndexFile) -> tuple[Settings, int]:
    meta = file.meta
    try:
        settings = Settings(*(meta[name] for name in Settings._fields))
        count = meta["count"]
    except KeyError as err:
        raise IndexFileError(f"{file.path}: metadata lacks {err.args[0]!r}") from None
    engine = meta.get("engine")
    if meta.get("format") != FORMAT_NAME or engine not in ("exact", "faiss", "hnswlib"):
        raise IndexFileError(f"{file.path}: not a {FORMAT_NAME} file or unknown engine")
    for name in ("metric", "dtype"):  # a list or dict here would be unhashable below
        value = getattr(settings, name)
        if type(value) is not str:
            raise IndexFileError(f"{file.path}: {name}={_shown(value)} in metadata is not a str")
    if type(count) is not int or count < 0:
        raise IndexFileError(f"{file.path}: bad count {count!r} in metadata")
    for name, top in LIMITS.items():
        value = getattr(settings, name)
        if type(value) is not int or not _LOWER[name] <= value <= top:
            raise IndexFileError(f"{file.path}: {name}={value!r} out of range in metadata")
    if settings.metric not in _METRICS or settings.dtype not in _FILE_DTYPES:
        raise IndexFileError(
            f"{file.path}: unknown metric {_shown(settings.metric)} or dtype"
            f" {_shown(settings.dtype)} in metadata"
        )
    if settings.dtype == "i8" and settings.metric != "cosine":
        raise IndexFileError(f"{file.path}: i8 storage with metric {settings.metric!r}")
    return settings, count


def _section(file: IndexFile, name: str, size: int | None = None) -> memoryview:
    view = file.sections.get(name)
    if view is None or (size is not None and view.nbytes != size):
        raise IndexFileError(f"{file.path}: section {name!r} missing or not {size} bytes")
    return view


def _exact_arrays(
    file: IndexFile, settings: Settings, count: int
) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """Zero-copy keys and stored vectors of an exact (or legacy hnswlib) file."""
    dtype = _FILE_DTYPES[settings.dtype]
    keys = np.frombuffer(_section(file, "keys", count * 8), dtype="<i8")
    raw = _section(file, "vectors", count * settings.dim * dtype.itemsize)
    vecs = np.frombuffer(raw, dtype=dtype).reshape(count, settings.dim)
    if count and (keys[0] < 0 or not bool(np.all(keys[1:] > keys[:-1]))):
        raise IndexFileError(f"{file.path}: keys are not unique, ascending and >= 0")
    _check_vectors(file, settings, keys, vecs)
    return keys, vecs


# |norm - 1| a stored cosine row may show: add() stores float32 unit rows (error ~1e-7),
# float16/bfloat16 round each component (relative error <= 2**-11 / 2**-8); int8 rounds to
# 1/127 steps, so its norm is not checked (only that the row is not zero)
_UNIT_SLACK = {"f32": 1e-3, "f16": 1e-2, "bf16": 1e-2}
_F32_MAX = float(np.finfo(np.float32).max)
_F16_MAX = float(np.finfo(np.float16).max)
_NORM_CHUNK = 1 << 22  # bytes of stored rows read (then evicted) per block
_RANGE_SLACK = 1e-3  # float32 rounding of a trained 8-bit range's minimum + width


def _check_vectors(
    file: IndexFile,
    settings: Settings,
    keys: NDArray[np.int64],
    vecs: NDArray[Any],
    *,
    section: str = "vectors",
    offset: int = 0,
) -> None:
    """Refuse stored rows that :meth:`HNSWIndex.add` would have refused (one read).

    ``vecs`` sits at byte ``offset`` of ``section``; ``keys`` holds each row's key (-1: a
    removed FAISS row, still searched through). A NaN row would make every search
    answer key -1 with a NaN (or inf) distance, a row of 1e30 in a cosine file every
    distance 0, and a zero row a different order in ``load`` and ``view``. Blocks of
    rows are read once each and then evicted from the process, so a view stays small.
    """
    if not len(vecs):
        return
    norms = np.empty(len(vecs), dtype=np.float64)
    row_bytes = vecs.shape[1] * vecs.dtype.itemsize
    step = max(1, _NORM_CHUNK // row_bytes)
    for start in range(0, len(vecs), step):
        norms[start : start + step] = _row_norms(vecs[start : start + step], settings.dtype)
        file.evict(section, offset + start * row_bytes, offset + (start + step) * row_bytes)
    # NumKong sums bfloat16 squares in float32: 1e30 overflows, 1e-30 underflows; redo
    # the rows that came out zero, NaN or inf in float64 (none in a genuine cosine file)
    odd = np.flatnonzero(~(np.isfinite(norms) & (norms > 0.0)))
    for start in range(0, len(odd), step):
        rows = odd[start : start + step]
        norms[rows] = _exact_norms(vecs[rows])

    def fail(rows: NDArray[np.intp], problem: str) -> None:
        row, key = int(rows[0]), int(keys[rows[0]])
        which = f"key {key}" if key >= 0 else "a removed key"
        more = f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""
        raise IndexFileError(
            f"{file.path}: stored vector of {which} (row {row}) {problem}{more};"
            " the file is damaged or was not written by HNSWIndex.save()"
        )

    bad = np.flatnonzero(~np.isfinite(norms))
    if len(bad):
        fail(bad, "holds NaN or infinity")
    if settings.metric == "cosine":
        bad = np.flatnonzero(norms == 0.0)
        if len(bad):
            fail(bad, "has zero length (cosine rows are stored normalised)")
        slack = _UNIT_SLACK.get(settings.dtype)
        if slack is not None:
            bad = np.flatnonzero(~(np.abs(norms - 1.0) <= slack))
            if len(bad):
                fail(bad, f"has norm {float(norms[bad[0]]):.6g}, not 1 (cosine rows are unit)")
        return
    top = _F16_MAX if settings.dtype == "f16" else _F32_MAX
    bound = min(top, math.sqrt(_F32_MAX / settings.dim) / 2.0)  # as prepare_vectors
    over = np.flatnonzero(norms > bound)  # only then can a component exceed the bound
    for start in range(0, len(over), step):
        rows = over[start : start + step]
        beyond = rows[np.abs(decode(vecs[rows])).max(axis=1) > bound]
        if len(beyond):
            fail(beyond, f"holds a value beyond {bound:.4g}, the largest add() accepts")


def _row_norms(vecs: NDArray[Any], storage: str) -> NDArray[np.float64]:
    """Float64 norm of each stored row, reading the block once.

    NumKong reads the stored type directly (f32, f16, bf16, i8 codes; ~4 ms per 50,000 x
    384 float32 rows), summing float32 squares in float64; without it, numpy decodes
    the rows to float32 and sums their squares in float64. A NaN or inf component gives
    a NaN or inf norm.
    """
    norm = _numkong_norm()
    if norm is not None and vecs.flags.c_contiguous and vecs.dtype.isnative:
        if not vecs.flags.aligned:  # FAISS's code array sits at any byte offset
            vecs = vecs.copy()  # one block (4 MiB): NumKong refuses unaligned buffers
        try:
            found = norm(vecs, axis=1, dtype="bf16") if storage == "bf16" else norm(vecs, axis=1)
            return np.asarray(found, dtype=np.float64).reshape(len(vecs))
        except (TypeError, ValueError):  # a layout NumKong refuses: numpy below
            pass
    return _exact_norms(vecs)


def _exact_norms(vecs: NDArray[Any]) -> NDArray[np.float64]:
    """Norms of the decoded rows, squares summed in float64 (NaN/inf rows: NaN/inf)."""
    block = decode(vecs)
    with np.errstate(invalid="ignore", over="ignore"):
        norms: NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
    return norms


_NORM: list[Callable[..., Any] | None] = []  # NumKong's norm, bound on first use


def _numkong_norm() -> Callable[..., Any] | None:
    if not _NORM:
        try:
            _NORM.append(getattr(importlib.import_module("numkong"), "norm", None))
        except ImportError:
            _NORM.append(None)
    return _NORM[0]


def _shown(value: object) -> str:
    """A metadata value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _faiss_arrays(
    file: IndexFile, settings: Settings, count: int
) -> tuple[NDArray[np.int64], memoryview, GraphInfo]:
    """Validated labels and FAISS blob of a faiss file, and where its fields sit."""
    rows = file.meta.get("rows")
    if type(rows) is not int or not count <= rows <= _section(file, "labels").nbytes // 8:
        raise IndexFileError(f"{file.path}: bad row count {rows!r} in metadata")
    labels = np.frombuffer(_section(file, "labels", rows * 8), dtype="<i8")
    live = labels[labels >= 0]
    if np.any(labels < -1) or len(live) != count or len(np.unique(live)) != count:
        raise IndexFileError(f"{file.path}: row labels are not unique keys >= 0 (or -1)")
    blob = _section(file, "faiss")
    info = validate_faiss_hnsw(
        file.path, blob, dim=settings.dim, rows=rows, metric=settings.metric,
        dtype=settings.dtype, m=settings.M,
    )  # fmt: skip
    if settings.dtype == "i8":  # 8-bit codes decode within the trained ranges
        _check_ranges(file.path, blob, info, settings.dim)
    else:  # every row, removed ones too: searches still pass through them
        vecs = np.frombuffer(
            blob, dtype=_FILE_DTYPES[settings.dtype], count=rows * settings.dim,
            offset=info.codes_offset,
        ).reshape(rows, settings.dim)  # fmt: skip
        _check_vectors(file, settings, labels, vecs, section="faiss", offset=info.codes_offset)
    return labels, blob, info


def _check_ranges(path: Path, blob: memoryview, info: GraphInfo, dim: int) -> None:
    """8-bit ranges (cosine only) must lie within [-1, 1]: they were fit to unit rows."""
    ranges = np.frombuffer(blob, dtype="<f4", count=2 * dim, offset=info.trained_offset)
    low, high = ranges[:dim], ranges[:dim] + ranges[dim:]  # finite, positive widths: checked
    outside = np.flatnonzero((low < -1.0 - _RANGE_SLACK) | (high > 1.0 + _RANGE_SLACK))
    if len(outside):
        at = int(outside[0])
        raise IndexFileError(
            f"{path}: 8-bit range [{low[at]:.6g}, {high[at]:.6g}] of dimension {at} is not"
            " within [-1, 1] (cosine rows are unit); the file is damaged or was not written"
            " by HNSWIndex.save()"
        )


def _faiss_exact(file: IndexFile, settings: Settings, count: int) -> ExactEngine:
    """An exact engine (copies) over a faiss file's live rows: the no-FAISS fallback."""
    labels, blob, info = _faiss_arrays(file, settings, count)
    dim, i8 = settings.dim, settings.dtype == "i8"
    dtype = np.dtype("u1") if i8 else _FILE_DTYPES[settings.dtype]
    codes = np.frombuffer(blob, dtype=dtype, count=len(labels) * dim, offset=info.codes_offset)
    rows = np.flatnonzero(labels >= 0)
    rows = rows[np.argsort(labels[rows], kind="stable")]
    picked = codes.reshape(len(labels), dim)[rows]
    if i8:  # FAISS's 8-bit codes: vmin + (code + 0.5) / 255 * width, per dimension
        ranges = np.frombuffer(blob, dtype="<f4", count=2 * dim, offset=info.trained_offset)
        values = ranges[:dim] + (picked.astype(np.float32) + 0.5) / 255 * ranges[dim:]
        stored = encode(values.astype(np.float32), "i8")
    else:
        stored = picked.astype(STORAGE[settings.dtype])
    return ExactEngine(
        settings.dim, settings.metric, settings.dtype, keys=labels[rows].copy(), vectors=stored
    )


def load_engine(
    path: str | os.PathLike[str], choose: Chooser, *, threads: int
) -> tuple[Settings, Engine]:
    """Read ``path`` (checksums verified) into a mutable engine; ``choose(dtype)`` picks it."""
    file = read_index_file(path, verify=True)
    try:
        settings, count = _settings(file)
        return settings, _build(file, settings, count, choose(settings.dtype), threads)
    finally:
        file.close()


def _build(file: IndexFile, settings: Settings, count: int, backend: str, threads: int) -> Engine:
    s = settings
    if file.meta["engine"] == "faiss":
        if backend == "python":
            return _faiss_exact(file, s, count)
        labels, blob, _ = _faiss_arrays(file, s, count)
        index = _faiss().deserialize_index(np.frombuffer(blob, dtype=np.uint8).copy())
        return FaissEngine(
            index, s.dim, s.metric, ef_search=s.ef_search, threads=threads, labels=labels.copy()
        )
    keys, vecs = _exact_arrays(file, s, count)
    if backend == "python":
        stored = vecs.astype(STORAGE[s.dtype])
        return ExactEngine(s.dim, s.metric, s.dtype, keys=keys.copy(), vectors=stored)
    engine = new_engine(s, threads)
    engine.add(keys.copy(), decode(vecs.astype(STORAGE[s.dtype])))
    return engine


def new_engine(settings: Settings, threads: int) -> FaissEngine:
    """An empty FAISS engine with these settings."""
    s = settings
    index = new_faiss_index(s.dim, s.metric, s.dtype, s.M, s.ef_construction)
    return FaissEngine(index, s.dim, s.metric, ef_search=s.ef_search, threads=threads)


def open_view(
    path: str | os.PathLike[str], *, verify: bool, backend: str, threads: int
) -> tuple[Settings, Engine, IndexFile]:
    """Memory-map ``path``; FAISS searches the mapped graph (exact files: mapped rows)."""
    file = read_index_file(Path(path), verify=verify)
    try:
        settings, count = _settings(file)
        return settings, _view_engine(file, settings, count, backend, threads), file
    except BaseException:
        file.close()
        raise


def _view_engine(
    file: IndexFile, settings: Settings, count: int, backend: str, threads: int
) -> Engine:
    s = settings
    if file.meta["engine"] != "faiss":
        keys, vecs = _exact_arrays(file, s, count)
        stored = vecs if vecs.dtype.isnative else vecs.astype(STORAGE[s.dtype])
        return ExactEngine(s.dim, s.metric, s.dtype, keys=keys, vectors=stored, sorted_keys=True)
    if backend == "python":
        return _faiss_exact(file, s, count)
    labels, blob, _ = _faiss_arrays(file, s, count)
    faiss = _faiss()
    buffer = np.frombuffer(blob, dtype=np.uint8)
    reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(buffer), buffer.size)
    index = faiss.read_index(reader, faiss.IO_FLAG_READ_ONLY)
    return FaissEngine(
        index, s.dim, s.metric, ef_search=s.ef_search, threads=threads, labels=labels,
        keepalive=(buffer, reader),
    )  # fmt: skip
