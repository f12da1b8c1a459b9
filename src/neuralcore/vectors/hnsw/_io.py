"""Saving and opening :class:`~neuralcore.vectors.HNSWIndex` files.

A file holds the settings (JSON metadata), the live keys in ascending order (``<i8``),
their prepared vectors (``<f4``/``<f2``, row-major) and, for the hnswlib engine, the
library's own ``saveIndex`` binary. ``load`` copies what it needs and closes the file;
``view`` keeps the file memory-mapped and searches the mapped vectors exactly, so no
graph and no vector matrix is read into process memory up front (see ``HNSWIndex.view``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from neuralcore.core._errors import IndexFileError
from neuralcore.vectors.hnsw._exact import ExactEngine
from neuralcore.vectors.hnsw._file import IndexFile, Section, read_index_file, write_index_file
from neuralcore.vectors.hnsw._hnswlib_old import NativeEngine, check_blob, hnswlib_version

__all__ = ("Settings", "load_engine", "open_view", "save_engine")

FORMAT_NAME = "neuralcore-hnsw"
_DTYPES: dict[str, np.dtype[Any]] = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2")}
_METRICS = ("cosine", "ip", "l2")


class Settings(NamedTuple):
    """Index settings stored in (and restored from) the file metadata."""

    dim: int
    metric: str
    dtype: str
    M: int
    ef_construction: int
    ef_search: int


def save_engine(
    path: str | os.PathLike[str], settings: Settings, engine: ExactEngine | NativeEngine
) -> None:
    """Write ``engine``'s live content atomically to ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "i.nchnsw"
    >>> s = Settings(2, "l2", "f32", 16, 64, 32)
    >>> e = ExactEngine(2, "l2", np.dtype(np.float32))
    >>> e.add(np.array([4]), np.ones((1, 2), dtype=np.float32))
    >>> save_engine(p, s, e)
    >>> settings, loaded = load_engine(p, lambda dtype: "python", threads=1)
    >>> len(loaded), settings == s
    (1, True)
    """
    target = Path(path)
    keys, vecs = engine.live()
    meta = {"format": FORMAT_NAME, **settings._asdict(), "count": len(keys)}
    sections = [
        Section("keys", keys.astype("<i8").tobytes()),
        Section("vectors", np.ascontiguousarray(vecs, dtype=_DTYPES[settings.dtype]).data),
    ]
    if not isinstance(engine, NativeEngine):
        write_index_file(target, {**meta, "engine": "exact"}, sections)
        return
    blob = engine.save_blob(target.parent)
    try:
        meta |= {"engine": "hnswlib", "hnswlib_version": hnswlib_version()}
        write_index_file(target, meta, [*sections, Section("hnswlib", blob)])
    finally:
        with contextlib.suppress(OSError):
            blob.unlink()


def _settings(file: IndexFile) -> tuple[Settings, int]:
    meta = file.meta
    try:
        settings = Settings(*(meta[name] for name in Settings._fields))
        count = meta["count"]
    except KeyError as err:
        raise IndexFileError(f"{file.path}: metadata lacks {err.args[0]!r}") from err
    numbers = (settings.dim, settings.M, settings.ef_construction, settings.ef_search, count)
    if meta.get("format") != FORMAT_NAME or meta.get("engine") not in ("exact", "hnswlib"):
        raise IndexFileError(f"{file.path}: not a {FORMAT_NAME} file or unknown engine")
    if not all(type(n) is int and n >= 0 for n in numbers) or settings.dim < 1:
        raise IndexFileError(f"{file.path}: bad sizes in metadata {numbers}")
    if settings.metric not in _METRICS or settings.dtype not in _DTYPES:
        raise IndexFileError(f"{file.path}: unknown metric or dtype in metadata")
    return settings, count


def _arrays(
    file: IndexFile, settings: Settings, count: int
) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """Zero-copy keys and vectors over the file's sections, sizes checked first."""
    dtype = _DTYPES[settings.dtype]
    sizes = {"keys": count * 8, "vectors": count * settings.dim * dtype.itemsize}
    for name, size in sizes.items():
        if name not in file.sections or file.sections[name].nbytes != size:
            raise IndexFileError(f"{file.path}: section {name!r} missing or not {size} bytes")
    if "hnswlib" in file.sections:
        check_blob(file.path, file.sections["hnswlib"], dim=settings.dim, m=settings.M, count=count)
    keys = np.frombuffer(file.sections["keys"], dtype="<i8")
    vecs = np.frombuffer(file.sections["vectors"], dtype=dtype).reshape(count, settings.dim)
    if count and (keys[0] < 0 or not bool(np.all(keys[1:] > keys[:-1]))):
        raise IndexFileError(f"{file.path}: keys are not unique, ascending and >= 0")
    return keys, vecs


def load_engine(
    path: str | os.PathLike[str], choose: Callable[[str], str], *, threads: int
) -> tuple[Settings, ExactEngine | NativeEngine]:
    """Read ``path`` (checksums verified) into a mutable engine; ``choose(dtype)`` picks it."""
    file = read_index_file(path, verify=True)
    try:
        settings, count = _settings(file)
        return settings, _build(file, settings, count, choose(settings.dtype), threads)
    finally:
        file.close()


def _build(
    file: IndexFile, settings: Settings, count: int, backend: str, threads: int
) -> ExactEngine | NativeEngine:
    keys, vecs = _arrays(file, settings, count)
    dtype = _DTYPES[settings.dtype].newbyteorder("=")
    if backend == "python":
        return ExactEngine(
            settings.dim, settings.metric, dtype, keys=keys.copy(), vectors=vecs.astype(dtype)
        )
    if file.meta["engine"] == "hnswlib" and "hnswlib" in file.sections:
        blob = file.sections["hnswlib"]
        return NativeEngine.from_blob(
            blob, keys, dim=settings.dim, metric=settings.metric, threads=threads,
            ef_search=settings.ef_search,
        )  # fmt: skip
    engine = NativeEngine(
        settings.dim, settings.metric, m=settings.M, ef_construction=settings.ef_construction,
        ef_search=settings.ef_search, threads=threads,
    )  # fmt: skip
    engine.add(keys.copy(), vecs.astype(np.float32))
    return engine


def open_view(
    path: str | os.PathLike[str], *, verify: bool
) -> tuple[Settings, ExactEngine, IndexFile]:
    """Memory-map ``path``; the engine searches the mapped (read-only) arrays exactly."""
    file = read_index_file(path, verify=verify)
    try:
        settings, count = _settings(file)
        keys, vecs = _arrays(file, settings, count)
    except BaseException:
        file.close()
        raise
    engine = ExactEngine(
        settings.dim, settings.metric, vecs.dtype, keys=keys, vectors=vecs, sorted_keys=True
    )
    return settings, engine, file
