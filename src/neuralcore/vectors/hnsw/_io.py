"""Saving and opening :class:`~neuralcore.vectors.HNSWIndex` files.

Two layouts share the container of :mod:`._file` (header, JSON metadata, checksummed
sections):

* ``engine: "faiss"``: ``labels`` (``<i8``, the key of each graph row, -1 for a dead row)
  and ``faiss`` (FAISS's own serialised HNSW graph and codes). Before FAISS sees the
  section, :func:`~._graph.validate_faiss_hnsw` checks every structural field.
* ``engine: "exact"``: ``keys`` (``<i8``, ascending) and ``vectors`` (``<f4``/``<f2``/
  ``<u2`` for bf16/``i1`` for i8, row-major). Files written by the earlier hnswlib engine
  (``engine: "hnswlib"``) have the same two sections and load the same way (the graph is
  rebuilt; their hnswlib section is never parsed).

``load`` copies what it needs and closes the file; ``view`` keeps the file mapped: FAISS
reads the graph and codes zero-copy from the mapping and searches the graph there.
"""

from __future__ import annotations

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
    if meta.get("format") != FORMAT_NAME or meta.get("engine") not in ("exact", "faiss", "hnswlib"):
        raise IndexFileError(f"{file.path}: not a {FORMAT_NAME} file or unknown engine")
    if type(count) is not int or count < 0:
        raise IndexFileError(f"{file.path}: bad count {count!r} in metadata")
    for name, top in LIMITS.items():
        value = getattr(settings, name)
        if type(value) is not int or not _LOWER[name] <= value <= top:
            raise IndexFileError(f"{file.path}: {name}={value!r} out of range in metadata")
    if settings.metric not in _METRICS or settings.dtype not in _FILE_DTYPES:
        raise IndexFileError(f"{file.path}: unknown metric or dtype in metadata")
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
    return keys, vecs


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
    return labels, blob, info


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
