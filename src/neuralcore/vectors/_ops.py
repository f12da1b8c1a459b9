"""The public vector functions and :class:`VectorOps`, dispatching to the chosen kernels.

Shapes, for every distance function: 1-D x 1-D gives a ``float``; 1-D x 2-D (either order)
gives one score per row; 2-D x 2-D gives the all-pairs matrix. The native backend returns
numpy arrays (float32 for float32 input, else float64); the pure backend returns lists.

NaN/inf: inputs are checked and :class:`~neuralcore.NonFiniteError` is raised by default;
with ``allow_nonfinite=True`` results follow IEEE arithmetic (NaN propagates, a cosine with
an infinite component is NaN as ``inf/inf`` is, and NaN scores rank last in :func:`top_k`).
Finite input of any magnitude is not an error: cosine, ``normalize`` and L2 distance rescale
where a square would under- or overflow float64 and answer exactly; dot and squared L2
return ``inf`` when the true value exceeds float64. Any stride is read correctly (SimSIMD
is given only forward-contiguous vectors).

Precision: the native backend sums float32 input in float64 (SimSIMD) or float32 (BLAS,
many-vs-many), within ~1e-6 relative of float64; float32 vectors whose components are all
below ~1e-19 in magnitude (squares under float32's normal range) lose precision there.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from neuralcore.core._backend import BackendName
from neuralcore.errors import ConfigError
from neuralcore.vectors._select import load_kernels
from neuralcore.vectors._spec import MAX_THREADS, Metric, check_flag

if TYPE_CHECKING:
    from neuralcore.vectors._corpus import Corpus, StorageType

__all__ = (
    "VectorOps",
    "cosine_distance",
    "cosine_similarity",
    "dot",
    "euclidean_distance",
    "normalize",
    "sqeuclidean_distance",
    "top_k",
)

F = TypeVar("F", bound=Callable[..., Any])
# The process default kernels, bound once at import: the module functions below ARE these
# closures (one Python frame over SimSIMD), not wrappers that dispatch on every call.
_DEFAULT = load_kernels("auto")[1].bind(False, 1)


def _bound(template: F) -> F:
    """Replace ``template`` by the default kernel of the same name, keeping its docs."""
    function = _DEFAULT[template.__name__]
    function.__doc__ = template.__doc__
    # introspection shows the documented signature (the one the kernel accepts, without
    # its ``None`` default: None means "the instance's setting")
    function.__signature__ = inspect.signature(template)
    function.__module__ = "neuralcore.vectors"
    function.__name__ = function.__qualname__ = template.__name__
    return function  # type: ignore[no-any-return]


class VectorOps:
    """Vector math with fixed backend, thread and NaN settings.

    Parameters
    ----------
    backend : {"auto", "native", "python"}
        ``"auto"`` uses numpy + SimSIMD when installed, else the stdlib kernels.
    threads : int
        Threads SimSIMD uses for one-vs-many and L2 matrix work (BLAS matrix products use
        BLAS's own pool, set by ``OPENBLAS_NUM_THREADS``). The GIL is released either way.
    allow_nonfinite : bool
        Default for every method's ``allow_nonfinite``.

    Raises
    ------
    ConfigError
        Unknown backend or ``threads < 1``.
    MissingDependencyError
        ``backend="native"`` without numpy and SimSIMD.

    Examples
    --------
    >>> ops = VectorOps(backend="python")
    >>> ops.backend, ops.dot([1, 2], [3, 4])
    ('python', 11.0)
    """

    # Each instance becomes an instance of a subclass made once per (kernels, flag,
    # threads), whose methods ARE the bound kernels: a method found on the class is what
    # CPython specialises, so a method call costs what the module function costs. The
    # methods below state the contract (help(), docs) and forward to that subclass.

    # Built in __new__ (no __init__): the instance must be allocated as the subclass, so
    # that its attributes are laid out for that class and method lookups specialise.
    backend: str
    _k: ModuleType
    _threads: int
    _allow: bool

    def __new__(
        cls, *, backend: BackendName = "auto", threads: int = 1, allow_nonfinite: bool = False
    ) -> VectorOps:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError("threads", threads, "must be an int >= 1")
        if threads > MAX_THREADS:
            raise ConfigError("threads", threads, f"must be <= {MAX_THREADS}")
        choice, kernels = load_kernels(backend)
        allow = check_flag(allow_nonfinite, "allow_nonfinite")
        self: VectorOps = object.__new__(_variant(cls, kernels.__name__, allow, threads))
        self.backend, self._k, self._threads, self._allow = choice, kernels, threads, allow
        return self

    def __repr__(self) -> str:
        return (
            f"VectorOps(backend={self.backend!r}, threads={self._threads}, "
            f"allow_nonfinite={self._allow})"
        )

    @property
    def kernels(self) -> ModuleType:
        """The kernel module in use (``_kernels.native`` or ``_kernels.pure``).

        Examples
        --------
        >>> VectorOps(backend="python").kernels.__name__
        'neuralcore.vectors._kernels.pure'
        """
        return self._k

    def corpus(
        self, rows: Any = None, *, dim: int | None = None, dtype: StorageType = "f32"
    ) -> Corpus:
        """A :class:`~neuralcore.vectors.Corpus` of ``rows`` using this instance's threads.

        Examples
        --------
        >>> VectorOps().corpus([[1.0, 0.0], [0.0, 2.0]]).top_k([0.0, 1.0], 1)[0].tolist()
        [1]
        """
        from neuralcore.vectors._corpus import Corpus

        return Corpus(rows, dim=dim, dtype=dtype, threads=self._threads)

    def cosine_similarity(self, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
        """See :func:`cosine_similarity`.

        Examples
        --------
        >>> VectorOps().cosine_similarity([1.0, 0.0], [0.0, 0.0])
        0.0
        """
        return _kernel(self, "cosine_similarity")(self, a, b, allow_nonfinite=allow_nonfinite)

    def cosine_distance(self, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
        """See :func:`cosine_distance`.

        Examples
        --------
        >>> VectorOps().cosine_distance([1.0, 0.0], [0.0, 2.0])
        1.0
        """
        return _kernel(self, "cosine_distance")(self, a, b, allow_nonfinite=allow_nonfinite)

    def dot(self, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
        """See :func:`dot`.

        Examples
        --------
        >>> VectorOps().dot([1, 2], [3, 4])
        11.0
        """
        return _kernel(self, "dot")(self, a, b, allow_nonfinite=allow_nonfinite)

    def euclidean_distance(self, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
        """See :func:`euclidean_distance`.

        Examples
        --------
        >>> VectorOps().euclidean_distance([0, 0], [3, 4])
        5.0
        """
        return _kernel(self, "euclidean_distance")(self, a, b, allow_nonfinite=allow_nonfinite)

    def sqeuclidean_distance(self, a: Any, b: Any, allow_nonfinite: bool | None = None) -> Any:
        """See :func:`sqeuclidean_distance`.

        Examples
        --------
        >>> VectorOps().sqeuclidean_distance([0, 0], [3, 4])
        25.0
        """
        return _kernel(self, "sqeuclidean_distance")(self, a, b, allow_nonfinite=allow_nonfinite)

    def normalize(
        self, x: Any, *, inplace: bool = False, allow_nonfinite: bool | None = None
    ) -> Any:
        """See :func:`normalize`.

        Examples
        --------
        >>> [float(v) for v in VectorOps().normalize([3.0, 4.0])]
        [0.6, 0.8]
        """
        return _kernel(self, "normalize")(self, x, inplace=inplace, allow_nonfinite=allow_nonfinite)

    def top_k(
        self,
        query: Any,
        matrix: Any,
        k: int,
        *,
        metric: Metric = "cosine",
        allow_nonfinite: bool | None = None,
    ) -> tuple[Any, Any]:
        """See :func:`top_k`.

        Examples
        --------
        >>> [int(i) for i in VectorOps().top_k([1, 0], [[0, 1], [1, 0]], 1)[0]]
        [1]
        """
        top: Callable[..., tuple[Any, Any]] = _kernel(self, "top_k")
        return top(self, query, matrix, k, metric=metric, allow_nonfinite=allow_nonfinite)


_VARIANTS: dict[tuple[type, str, bool, int], type] = {}
_VARIANT_LOCK = threading.Lock()


def _variant(cls: type, kernels: str, allow: bool, threads: int) -> type:
    """The subclass of ``cls`` whose methods are ``kernels``' bound for these settings."""
    key = (cls, kernels, allow, threads)
    found = _VARIANTS.get(key)
    if found is None:
        with _VARIANT_LOCK:
            found = _VARIANTS.get(key)
            if found is None:
                module = importlib.import_module(kernels)
                namespace: dict[str, Any] = {"__module__": cls.__module__, "__slots__": ()}
                for name, method in module.bind_methods(allow, threads).items():
                    method.__doc__ = getattr(cls, name).__doc__
                    method.__signature__ = inspect.signature(getattr(cls, name))
                    method.__qualname__ = f"{cls.__qualname__}.{name}"
                    method.__module__ = cls.__module__
                    namespace[name] = method
                found = type(cls.__name__, (cls,), namespace)
                found.__qualname__ = cls.__qualname__
                _VARIANTS[key] = found
    return found


def _kernel(ops: VectorOps, name: str) -> Callable[..., Any]:
    """The kernel method behind ``name`` for ``ops`` (found on its settings' subclass)."""
    kernel: Callable[..., Any] = type(ops).__dict__[name]
    return kernel


@_bound
def cosine_similarity(a: Any, b: Any, allow_nonfinite: bool = False) -> Any:
    """Cosine similarity of vectors or of every pair of rows.

    Parameters
    ----------
    a, b : array_like
        1-D vectors or 2-D matrices (rows are vectors) with the same last dimension:
        float32/float64 arrays (used without a copy when contiguous), float16/int8 arrays
        (computed in float32), or lists.
    allow_nonfinite : bool
        Compute on NaN/inf instead of raising (the result is then NaN or inf). May be
        passed by position or keyword; anything but ``True``/``False`` raises
        :class:`~neuralcore.errors.InputTypeError`.

    Returns
    -------
    float or array or list
        A float for two vectors, one value per row for a vector and a matrix, and a
        ``(len(a), len(b))`` matrix for two matrices. A zero vector scores 0.0, never NaN.

    Raises
    ------
    DimensionMismatchError
        The last dimensions differ (the message names both shapes), or an input is not 1-D
        or 2-D.
    NonFiniteError
        An input holds NaN or infinity and ``allow_nonfinite`` is false.
    InputTypeError
        Strings, objects or ragged lists.

    Examples
    --------
    >>> round(cosine_similarity([1.0, 0.0], [1.0, 1.0]), 6)
    0.707107
    >>> [round(float(s), 6) for s in cosine_similarity([1, 0], [[2, 0], [0, 3]])]
    [1.0, 0.0]
    """
    raise NotImplementedError  # replaced by the bound kernel


@_bound
def cosine_distance(a: Any, b: Any, allow_nonfinite: bool = False) -> Any:
    """``1 - cosine_similarity(a, b)``; shapes, arguments and errors as there.

    Examples
    --------
    >>> round(cosine_distance([1.0, 0.0], [0.0, 1.0]), 6)
    1.0
    """
    raise NotImplementedError  # replaced by the bound kernel


@_bound
def dot(a: Any, b: Any, allow_nonfinite: bool = False) -> Any:
    """Inner product; shapes, arguments and errors as in :func:`cosine_similarity`.

    Examples
    --------
    >>> dot([1, 2, 3], [4, 5, 6])
    32.0
    """
    raise NotImplementedError  # replaced by the bound kernel


@_bound
def euclidean_distance(a: Any, b: Any, allow_nonfinite: bool = False) -> Any:
    """L2 distance; shapes, arguments and errors as in :func:`cosine_similarity`.

    Examples
    --------
    >>> euclidean_distance([0, 0], [3, 4])
    5.0
    """
    raise NotImplementedError  # replaced by the bound kernel


@_bound
def sqeuclidean_distance(a: Any, b: Any, allow_nonfinite: bool = False) -> Any:
    """Squared L2 distance; shapes, arguments and errors as in :func:`cosine_similarity`.

    Examples
    --------
    >>> sqeuclidean_distance([0, 0], [3, 4])
    25.0
    """
    raise NotImplementedError  # replaced by the bound kernel


@_bound
def normalize(x: Any, *, inplace: bool = False, allow_nonfinite: bool = False) -> Any:
    """Scale a vector, or each row of a matrix, to unit L2 norm; zero vectors stay zero.

    Parameters
    ----------
    x : array_like
        1-D or 2-D.
    inplace : bool
        Overwrite ``x`` and return it: a float ndarray (native backend) or a list of
        floats / list of lists (pure backend).
    allow_nonfinite : bool
        Compute on NaN/inf instead of raising.

    Returns
    -------
    array or list
        Same shape as ``x`` (float32 stays float32).

    Raises
    ------
    InputTypeError
        ``inplace=True`` on something that cannot be written in place.
    NonFiniteError
        NaN or infinity in ``x`` and ``allow_nonfinite`` is false.

    Examples
    --------
    >>> [float(v) for v in normalize([3.0, 4.0])]
    [0.6, 0.8]
    """
    raise NotImplementedError  # replaced by the bound kernel


@_bound
def top_k(
    query: Any, matrix: Any, k: int, *, metric: Metric = "cosine", allow_nonfinite: bool = False
) -> tuple[Any, Any]:
    """The ``k`` rows of ``matrix`` closest to ``query``, best first.

    Parameters
    ----------
    query : array_like
        One query (1-D) or several (2-D).
    matrix : array_like
        2-D, one candidate per row.
    k : int
        How many to return; ``k > len(matrix)`` returns all rows.
    metric : {"cosine", "ip", "l2"}
        Scores are cosine similarity and inner product (higher first) or euclidean
        distance (lower first). Ties go to the lower index.
    allow_nonfinite : bool
        Compute on NaN/inf instead of raising; NaN scores rank last.

    Returns
    -------
    (indices, scores)
        1-D each for one query, ``(n_queries, k)`` for several.

    Raises
    ------
    InvalidInputError
        Unknown metric or negative ``k``; dimension mismatch as in :func:`cosine_similarity`.

    Examples
    --------
    >>> idx, scores = top_k([1.0, 0.0], [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], 2)
    >>> [int(i) for i in idx]
    [1, 2]
    """
    raise NotImplementedError  # replaced by the bound kernel
