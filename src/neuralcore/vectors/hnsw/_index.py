"""Approximate nearest-neighbour search: :class:`HNSWIndex`.

The graph engine is FAISS's HNSW (``faiss-cpu`` wheels; chosen by measurement, see
:mod:`._faiss`). When FAISS is missing, or ``backend="python"`` /
``NEURALCORE_BACKEND=python``, an exact numpy brute-force engine with the same API serves
instead; :func:`_choose_backend` is the one place that decides. Neither FAISS nor any
numpy-dependent module is needed to import this module: without numpy, creating an index
raises :class:`~neuralcore.errors.MissingDependencyError`.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from neuralcore.core._backend import BackendInfo, BackendName, resolve_backend
from neuralcore.core._cpu import usable_cores
from neuralcore.errors import (
    ConfigError,
    DimensionMismatchError,
    InputTypeError,
    InvalidInputError,
    KeyNotFoundError,
    MissingDependencyError,
)
from neuralcore.vectors._spec import MAX_THREADS, show

try:
    import numpy as np

    from neuralcore.vectors.hnsw import _io as _hnsw_io
    from neuralcore.vectors.hnsw._exact import ExactEngine
    from neuralcore.vectors.hnsw._faiss import FaissEngine, faiss_version
    from neuralcore.vectors.hnsw._filter import FilterSpec, KeyFilter
    from neuralcore.vectors.hnsw._input import prepare_key, prepare_keys, prepare_vectors
    from neuralcore.vectors.hnsw._lock import RWLock
except ModuleNotFoundError as _err:  # the no-extras install: numpy missing
    if _err.name != "numpy":
        raise
    _NUMPY_MISSING: ModuleNotFoundError | None = _err
else:
    _NUMPY_MISSING = None

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from neuralcore.vectors.hnsw._file import IndexFile
    from neuralcore.vectors.hnsw._io import Engine

__all__ = (
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_EF_SEARCH",
    "DEFAULT_EF_SEARCH_I8",
    "DEFAULT_M",
    "HNSWIndex",
    "describe_hnsw_backend",
)

logger = logging.getLogger(__name__)

Metric = Literal["cosine", "ip", "l2"]
DType = Literal["f32", "f16", "bf16", "i8"]
DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 128
DEFAULT_EF_SEARCH = 256
DEFAULT_EF_SEARCH_I8 = 384  # 8-bit codes need a wider beam for the same recall
MAX_K = 1 << 20  # results per query: bounds the padded output a search allocates
# an add or remove that leaves more dead graph rows than this share of all rows (and at
# least _COMPACT_MIN of them) rebuilds the graph from the live rows: the rebuild costs
# about one add of the live rows, so it is paid at most once per that many removals
COMPACT_SHARE = 0.5
_COMPACT_MIN = 1024
_ADD_CHUNK = 4096  # rows per write-lock hold, so searches interleave with a large add


def _native_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def _choose_backend(backend: BackendName | None, dtype: str = "f32") -> Literal["native", "python"]:
    """The one place that picks FAISS or the exact numpy engine."""
    if _NUMPY_MISSING is not None:
        raise MissingDependencyError(
            'numpy is required for HNSWIndex: pip install "neuralcore-runtime[vectors]"'
        ) from _NUMPY_MISSING
    choice = resolve_backend(backend)
    if choice == "python":
        return "python"
    if _native_available():
        return "native"
    if backend == "native":
        from neuralcore.core._optional import require

        require("faiss", extra="vectors")
    logger.info("faiss-cpu is not installed: HNSWIndex falls back to exact numpy search")
    return "python"


def describe_hnsw_backend() -> BackendInfo:
    """Report what serves :class:`HNSWIndex` by default (imports no native library).

    Examples
    --------
    >>> describe_hnsw_backend().engine
    'hnsw'
    """
    if _NUMPY_MISSING is not None:
        return BackendInfo("hnsw", "python", "none", "", "numpy missing: install the vectors extra")
    choice = resolve_backend(None)
    if choice == "native" and _native_available():
        return BackendInfo("hnsw", "native", "faiss", faiss_version(), "HNSW graph")
    why = "forced by NEURALCORE_BACKEND" if choice == "python" else "faiss-cpu not installed"
    return BackendInfo("hnsw", "python", "numpy", np.__version__, f"exact search ({why})")


def _positive(field: str, value: object) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ConfigError(field, value, "expected an integer >= 1")
    top = MAX_THREADS if field == "threads" else _hnsw_io.LIMITS.get(field)
    if top is not None and value > top:
        raise ConfigError(field, value, f"expected an integer <= {top}")
    if field == "M" and value < 2:
        raise ConfigError(field, value, "expected an integer >= 2")
    return int(value)


def _count(name: str, value: object) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1, got {show(value)}")
    if value > MAX_K:
        raise InvalidInputError(f"{name} must be <= {MAX_K}, got {show(value)}")
    return int(value)


def _default_threads() -> int:
    return usable_cores()


class HNSWIndex:
    """Approximate k-nearest-neighbour index over integer keys (HNSW graph, FAISS).

    Parameters
    ----------
    dim : int
        Vector length.
    metric : {"cosine", "ip", "l2"}
        ``cosine``: distance ``1 - cos`` (vectors are stored unit length, so :meth:`get`
        returns the normalised vector; zero vectors are rejected). ``ip``: ``1 - dot``.
        ``l2``: Euclidean distance (not squared).
    dtype : {"f32", "f16", "bf16", "i8"}
        Vector storage. ``"f16"``/``"bf16"`` halve the vectors' memory (the graph is
        unchanged: ~0.58x of float32 in all at 384-d); ``"f16"`` refuses ``ip``/``l2``
        values beyond +-65504 (``InvalidInputError``), ``"bf16"`` keeps float32's range with
        8 bits of mantissa. ``"i8"`` (``metric="cosine"`` only) stores 8-bit codes, a
        quarter of the vectors' memory (~0.36x of float32 in all at 384-d, file and RAM):
        each dimension's range is fixed by the first rows added (at least
        ``+-3/sqrt(dim)``; later values beyond it are clamped), and :meth:`get` returns
        the decoded vector. Its ``ef_search`` defaults to 384.
    M, ef_construction : int
        Graph degree (2-512) and build-time beam width. The graph fixes them at build, so
        setting either attribute later rebuilds the graph from the stored vectors.
    ef_search : int, optional
        Default search beam width (256; 384 for ``"i8"``); settable at any time, and per
        call via ``ef=``.
    threads : int, optional
        Threads for adds and batched searches (default: usable cores).
    backend : {"auto", "native", "python"}, optional
        ``"python"`` (or ``NEURALCORE_BACKEND=python``) selects exact numpy search.

    Notes
    -----
    Capacity grows automatically. Searches from many threads may run while another
    thread adds or removes: a readers-writer lock serialises mutations (large adds go in
    chunks of 4,096 rows, so searches interleave). When fewer than ``k`` results exist,
    keys are padded with ``-1`` and distances with ``inf``. Keys must be in
    ``[0, 2**63)``; ``k`` at most 2**20. Removed and updated keys leave a dead row in the
    graph (skipped by searches, still used for routing): once dead rows exceed half of
    the graph (and number at least 1,024), the ``add`` or ``remove`` that crossed the line
    rebuilds the graph from the live rows, and :meth:`compact` does it on demand. Keys,
    vectors and settings are unchanged by a rebuild; searches wait for it.

    The defaults (``M=32, ef_construction=128, ef_search=256``) were chosen on a hard
    set (100,000 x 384 around 1,000 Gaussian centres, noise 2.25x the centre norm, 1,000
    held-out queries; ``neuralcore bench vectors``): recall@10 there was 0.960 at the
    defaults with float32 storage (0.952 at ``ef_search=192``), and 0.945 / 0.956 at
    ``ef_search`` 256 / 384 with 8-bit codes, hence 384 for ``"i8"``. Lower
    ``ef_search`` for speed, raise it for recall.

    Examples
    --------
    >>> index = HNSWIndex(3, metric="l2")
    >>> index.add([10, 20], [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    >>> keys, dists = index.search([0.0, 0.0, 0.9], k=3)
    >>> keys.tolist(), [round(float(d), 3) for d in dists]
    ([10, 20, -1], [0.1, 1.345, inf])
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: Metric = "cosine",
        dtype: DType = "f32",
        M: int = DEFAULT_M,  # noqa: N803 - the name every HNSW paper and library uses
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int | None = None,
        threads: int | None = None,
        backend: BackendName | None = None,
    ) -> None:
        if not isinstance(metric, str) or metric not in ("cosine", "ip", "l2"):
            raise ConfigError("metric", metric, "expected 'cosine', 'ip' or 'l2'")
        if not isinstance(dtype, str) or dtype not in ("f32", "f16", "bf16", "i8"):
            raise ConfigError("dtype", dtype, "expected 'f32', 'f16', 'bf16' or 'i8'")
        if dtype == "i8" and metric != "cosine":
            raise ConfigError("dtype", dtype, "8-bit codes need metric='cosine' (unit vectors)")
        if ef_search is None:
            ef_search = DEFAULT_EF_SEARCH_I8 if dtype == "i8" else DEFAULT_EF_SEARCH
        chosen = _choose_backend(backend, dtype)
        sizes = {"dim": dim, "M": M, "ef_construction": ef_construction, "ef_search": ef_search}
        checked = {name: _positive(name, value) for name, value in sizes.items()}
        self._settings = _hnsw_io.Settings(metric=metric, dtype=dtype, **checked)
        self._threads = _positive("threads", _default_threads() if threads is None else threads)
        self._engine = self._new_engine(chosen)
        self._setup(None)

    def _new_engine(self, chosen: str) -> Engine:
        s = self._settings
        if chosen == "python":
            return ExactEngine(s.dim, s.metric, s.dtype)
        return _hnsw_io.new_engine(s, self._threads)

    def _setup(self, file: IndexFile | None) -> None:
        self._lock = RWLock()
        self._file = file

    @classmethod
    def _wrap(
        cls, settings: _hnsw_io.Settings, engine: Engine,
        threads: int, file: IndexFile | None,
    ) -> HNSWIndex:  # fmt: skip
        index = cls.__new__(cls)
        index._settings, index._engine, index._threads = settings, engine, threads
        index._setup(file)
        return index

    # -- properties ----------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Vector length."""
        return self._settings.dim

    @property
    def metric(self) -> str:
        """``"cosine"``, ``"ip"`` or ``"l2"``."""
        return self._settings.metric

    @property
    def dtype(self) -> str:
        """Storage type: ``"f32"``, ``"f16"``, ``"bf16"`` or ``"i8"``."""
        return self._settings.dtype

    @property
    def M(self) -> int:  # noqa: N802 - matches the constructor argument
        """Graph degree; setting it rebuilds the graph from the stored vectors."""
        return self._settings.M

    @M.setter
    def M(self, value: int) -> None:  # noqa: N802
        self._rebuild(self._settings._replace(M=_positive("M", value)))

    @property
    def ef_construction(self) -> int:
        """Build-time beam width; setting it rebuilds the graph from the stored vectors."""
        return self._settings.ef_construction

    @ef_construction.setter
    def ef_construction(self, value: int) -> None:
        self._rebuild(self._settings._replace(ef_construction=_positive("ef_construction", value)))

    def _rebuild(self, settings: _hnsw_io.Settings) -> None:
        """The graph fixes M and ef_construction at build: re-add everything to a new graph."""
        self._check_writable()
        with self._lock.write():
            self._settings = settings
            self._rebuild_locked()

    def _rebuild_locked(self) -> None:
        """A new graph of the live rows (caller holds the write lock); keys are kept."""
        if isinstance(self._engine, FaissEngine):
            keys, vectors = self._engine.live()
            engine = self._new_engine("native")
            engine.add(keys, vectors)
            self._engine = engine

    def _compact_if_due(self) -> None:
        """Rebuild when dead rows pass :data:`COMPACT_SHARE` (caller holds the write lock)."""
        engine = self._engine
        if isinstance(engine, FaissEngine):
            dead = engine.dead
            if dead >= _COMPACT_MIN and dead > COMPACT_SHARE * (dead + len(engine)):
                self._rebuild_locked()

    def compact(self) -> None:
        """Drop the dead graph rows that removed and updated keys leave, now.

        The graph is rebuilt from the live rows (keys, vectors and settings unchanged), so
        memory, saved files and search routing reflect only live keys. It happens on its
        own once dead rows pass half of the graph; call this after heavy churn to do it
        earlier. A no-op for the exact engine, whose rows are deleted in place.

        Raises
        ------
        InvalidInputError
            the index is a read-only view.

        Examples
        --------
        >>> index = HNSWIndex(2)
        >>> index.add([1, 2, 3], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> index.remove([1, 2])
        >>> index.compact()
        >>> len(index), index.search([1.0, 0.0], k=2)[0].tolist()
        (1, [3, -1])
        """
        self._check_writable()
        with self._lock.write():
            engine = self._engine
            if isinstance(engine, FaissEngine) and engine.dead:
                self._rebuild_locked()

    @property
    def ef_search(self) -> int:
        """Default search beam width; raise it for recall, lower it for speed."""
        return self._settings.ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        ef = _positive("ef_search", value)
        with self._lock.write():
            self._settings = self._settings._replace(ef_search=ef)
            if isinstance(self._engine, FaissEngine):
                self._engine.ef_search = ef

    @property
    def backend(self) -> BackendInfo:
        """What serves this index (``native``/FAISS or ``python``/exact numpy)."""
        if isinstance(self._engine, FaissEngine):
            where = "HNSW graph, memory-mapped file" if self.read_only else "HNSW graph"
            return BackendInfo("hnsw", "native", "faiss", faiss_version(), where)
        detail = "exact search over a memory-mapped file" if self.read_only else "exact search"
        return BackendInfo("hnsw", "python", "numpy", np.__version__, detail)

    @property
    def read_only(self) -> bool:
        """True for a :meth:`view`: mutations raise."""
        return self._file is not None

    @property
    def nbytes(self) -> int:
        """Approximate bytes held by the engine (graph and vectors; key sets not counted).

        Examples
        --------
        >>> HNSWIndex(4, backend="python").nbytes
        0
        """
        return self._engine.nbytes()

    def __len__(self) -> int:
        return len(self._engine)

    def __contains__(self, key: object) -> bool:
        try:
            key = prepare_key(key)
        except (InputTypeError, InvalidInputError):
            return False
        return self._has(key)

    def _has(self, key: int) -> bool:
        engine = self._engine
        return key in engine if isinstance(engine, FaissEngine) else engine.row_of(key) >= 0

    def __repr__(self) -> str:
        s = self._settings
        size = "closed" if isinstance(self._engine, _ClosedEngine) else f"len={len(self)}"
        return (
            f"HNSWIndex(dim={s.dim}, metric={s.metric!r}, dtype={s.dtype!r}, M={s.M}, "
            f"ef_construction={s.ef_construction}, ef_search={s.ef_search}, "
            f"{size}, backend={self.backend.backend!r}, read_only={self.read_only})"
        )

    # -- mutation ------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._file is not None:
            raise InvalidInputError(
                f"index is a read-only view of {self._file.path}; use HNSWIndex.load() to modify"
            )

    def add(self, keys: int | Iterable[int] | NDArray[np.integer[Any]], vectors: Any) -> None:
        """Insert vectors under integer keys; an existing key is updated in place.

        Parameters
        ----------
        keys : int or array-like of int
            One key per vector, unique within the call, in ``[0, 2**63)``.
        vectors : array-like
            ``(n, dim)`` rows, or one ``(dim,)`` vector with a single key.

        Raises
        ------
        DimensionMismatchError
            wrong vector length, or keys and vectors differ in count.
        InvalidInputError
            duplicate or negative keys, NaN/inf, zero vectors with cosine, read-only view.

        Examples
        --------
        >>> index = HNSWIndex(2, metric="l2")
        >>> index.add(7, [1.0, 2.0])
        >>> index.add(7, [3.0, 4.0])  # update
        >>> len(index), index.get(7).tolist()
        (1, [3.0, 4.0])
        """
        self._check_writable()
        s = self._settings
        rows, _ = prepare_vectors(vectors, dim=s.dim, metric=s.metric, storage=s.dtype)
        ids = prepare_keys(keys)
        if len(ids) != len(rows):
            raise DimensionMismatchError(f"got {len(ids)} keys for {len(rows)} vectors")
        for start in range(0, len(ids), _ADD_CHUNK):
            with self._lock.write():
                stop = start + _ADD_CHUNK
                self._engine.add(ids[start:stop], rows[start:stop])
                self._compact_if_due()

    def remove(self, keys: int | Iterable[int] | NDArray[np.integer[Any]]) -> None:
        """Delete keys; nothing is removed when any of them is missing.

        Raises
        ------
        KeyNotFoundError
            naming the first key that is not in the index.

        Examples
        --------
        >>> index = HNSWIndex(2)
        >>> index.add([1, 2], [[1.0, 0.0], [0.0, 1.0]])
        >>> index.remove(1)
        >>> 1 in index, len(index)
        (False, 1)
        """
        self._check_writable()
        ids = prepare_keys(keys)
        with self._lock.write():
            for key in ids.tolist():
                if not self._has(key):
                    raise KeyNotFoundError(f"key {key} is not in the index")
            self._engine.remove(ids)
            self._compact_if_due()

    def get(self, key: int) -> NDArray[np.float32]:
        """The stored vector of ``key`` (unit length for cosine), as a float32 copy.

        Raises
        ------
        KeyNotFoundError
            ``key`` is not in the index.

        Examples
        --------
        >>> index = HNSWIndex(2, metric="ip")
        >>> index.add(3, [0.5, 0.25])
        >>> index.get(3).tolist()
        [0.5, 0.25]
        """
        ident = prepare_key(key)
        with self._lock.read():
            if not self._has(ident):
                raise KeyNotFoundError(f"key {ident} is not in the index")
            found = self._engine.get(ident)
        if self._settings.dtype == "i8":  # cosine: 8-bit codes decode a little off unit
            norm = math.sqrt(float(np.dot(found.astype(np.float64), found.astype(np.float64))))
            if norm > 0.0:
                found = (found / norm).astype(np.float32)
        return found

    # -- search --------------------------------------------------------------------------

    def search(
        self, queries: Any, k: int = 10, *, ef: int | None = None, filter: FilterSpec | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The ``k`` nearest keys and their distances, ascending.

        Parameters
        ----------
        queries : array-like
            One ``(dim,)`` vector, or ``(n, dim)`` rows.
        k : int
            Results per query.
        ef : int, optional
            Beam width for this call (default :attr:`ef_search`; at least ``k`` is used).
        filter : collection of int, or callable ``key -> bool``, optional
            Only keys in the collection, or for which the predicate is true, are returned.
            A key list of up to 2,048 keys is searched exactly; a predicate is called
            once per candidate from FAISS (slow in Python: prefer a key list).

        Returns
        -------
        keys : ndarray of int64, shape (k,) or (n, k)
            ``-1`` where fewer than ``k`` results exist.
        distances : ndarray of float32, same shape
            ``inf`` beside each ``-1`` key.

        Examples
        --------
        >>> index = HNSWIndex(2)
        >>> index.add([1, 2, 3], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> index.search([1.0, 0.1], k=2, filter={2, 3})[0].tolist()
        [3, 2]
        >>> index.search([[1.0, 0.1]], k=1)[0].shape
        (1, 1)
        """
        rows, single = prepare_vectors(queries, dim=self.dim, metric=self.metric, name="queries")
        # plain ints in range skip the general checks (~0.3 us each)
        count = k if type(k) is int and 0 < k <= MAX_K else _count("k", k)
        if ef is None:
            beam = max(self.ef_search, count)
        else:
            beam = max(ef if type(ef) is int and 0 < ef <= MAX_K else _count("ef", ef), count)
        spec = None if filter is None else KeyFilter(filter)
        lock = self._lock  # FAISS takes ef per call: searches never exclude each other
        lock.acquire_read()
        try:
            keys, dists = self._engine.search(rows, count, spec, beam)
        finally:
            lock.release_read()
        if spec is not None:
            spec.check()
        return (keys[0], dists[0]) if single else (keys, dists)

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically (temp file in the same folder + rename).

        The file has a versioned header, JSON metadata (no pickle) and checksummed
        sections: the key of each graph row and FAISS's graph and codes (or, for the exact
        engine, the keys and vectors).

        Raises
        ------
        IndexFileError
            ``path`` is a directory, its folder is missing, or the write fails.
        InputTypeError
            ``path`` is not a ``str`` or path-like.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.nchnsw"
        >>> index = HNSWIndex(2)
        >>> index.add([1, 2], [[1.0, 0.0], [0.0, 1.0]])
        >>> index.save(path)
        >>> len(HNSWIndex.load(path))
        2
        """
        if not isinstance(path, str | os.PathLike):
            raise InputTypeError(f"path must be a str or path-like, got {type(path).__name__}")
        with self._lock.read():
            _hnsw_io.save_engine(path, self._settings, self._engine)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        backend: BackendName | None = None,
    ) -> HNSWIndex:
        """Read a saved index into memory (mutable), verifying every checksum first.

        A FAISS file loads its graph as is, after every structural field of it has been
        validated; an exact-engine file (or one written by the earlier hnswlib engine)
        opened with the native backend is rebuilt into a graph. ``backend="python"``
        loads exact search.

        Raises
        ------
        IndexFileError
            missing, truncated, corrupt or foreign file (before any native code runs).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.nchnsw"
        >>> HNSWIndex(2, metric="ip").save(path)
        >>> HNSWIndex.load(path).metric
        'ip'
        """
        workers = _positive("threads", _default_threads() if threads is None else threads)
        _choose_backend("python", "f32")  # numpy present (raises the install hint if not)
        settings, engine = _hnsw_io.load_engine(
            _file_path(path), lambda dtype: _choose_backend(backend, dtype), threads=workers
        )
        return cls._wrap(settings, engine, workers, None)

    @classmethod
    def view(
        cls,
        path: str | os.PathLike[str],
        *,
        verify: bool = False,
        threads: int | None = None,
        backend: BackendName | None = None,
    ) -> HNSWIndex:
        """Open a saved index read-only and memory-mapped, without reading it into RAM.

        FAISS reads the graph and the vectors zero-copy from the mapping and searches the
        graph there, as fast as an in-memory index once pages are resident; the operating
        system pages them in on demand and may drop them again. Header, metadata, sizes,
        keys and every structural field of the graph are always checked (that reads the
        link arrays once); ``verify=True`` also checksums every section (reads the whole
        file once). Mutations raise :class:`~neuralcore.errors.InvalidInputError`. Call
        :meth:`close` (or use ``with``) to unmap the file; a closed view raises on use.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.nchnsw"
        >>> index = HNSWIndex(2)
        >>> index.add([1, 2], [[1.0, 0.0], [0.0, 1.0]])
        >>> index.save(path)
        >>> with HNSWIndex.view(path) as view:
        ...     view.read_only, view.search([0.1, 1.0], k=1)[0].tolist()
        (True, [2])
        """
        workers = _positive("threads", _default_threads() if threads is None else threads)
        chosen = _choose_backend(backend)
        settings, engine, file = _hnsw_io.open_view(
            _file_path(path), verify=verify, backend=chosen, threads=workers
        )
        return cls._wrap(settings, engine, workers, file)

    def close(self) -> None:
        """Unmap a view's file (no-op for in-memory indexes); the view is unusable after."""
        file = self._file
        if file is None:
            return
        with self._lock.write():
            # every engine method of the stand-in raises: typed as an engine on purpose
            engine, self._engine = self._engine, cast("Engine", _ClosedEngine(file.path))
            if isinstance(engine, FaissEngine):
                engine.close()  # drop FAISS's pointers into the mapping first
            del engine
            file.close()

    def __enter__(self) -> HNSWIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _file_path(path: object) -> str | os.PathLike[str]:
    if not isinstance(path, str | os.PathLike):
        raise InputTypeError(f"path must be a str or path-like, got {type(path).__name__}")
    return path


class _ClosedEngine:
    """Stands in for a closed view's engine: every use raises instead of answering empty."""

    def __init__(self, path: object) -> None:
        self._path = path

    def _closed(self, *_: object, **__: object) -> Any:
        raise InvalidInputError(f"the view of {self._path} is closed")

    __len__ = __contains__ = search = get = live = nbytes = row_of = _closed
