"""Vector drop-ins for the similarity code ATLAS runs in pure Python.

ATLAS computes cosine similarity on lists of floats in several places: a module function
used by its semantic text splitter (mismatched lengths raise, a zero vector scores 0.0),
the splitter's "buffer" average over the previous few sentences, and the linear scans of
its query-result cache and vector stores (mismatched lengths score 0.0; the first best
entry at or above the threshold wins). These functions keep those rules.

With a working numpy they compute in float64 in one pass over all rows, so results agree
with the originals to rounding (~1e-15) and scans pick the same entry. Without numpy, or
with a stub in its place (ATLAS's test suite installs one), the same functions run on the
standard library (``math.fsum``-free loops, as ATLAS's own), so importing and calling them
never fails for want of numpy.
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload

from neuralcore.compat.atlas._np import real_numpy
from neuralcore.core._errors import DimensionMismatchError

__all__ = (
    "EmbeddingVector",
    "accelerated",
    "adjacent_similarities",
    "best_semantic_match",
    "buffer_similarity",
    "cosine_similarity",
    "row_cosines",
    "semantic_breaks",
)

Vector = Sequence[float]


def _as_f64(np: Any, vec: Any) -> Any:
    row = getattr(vec, "row64", None)  # EmbeddingVector carries its float64 row
    return row if row is not None else np.asarray(vec, dtype=np.float64)


def _py_cosine(a: Vector, b: Vector) -> float:
    """ATLAS's own loop: dot over the product of norms, 0.0 for a zero vector."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm_a = sum(x * x for x in a) ** 0.5
    norm_b = sum(y * y for y in b) ** 0.5
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return float(dot / (norm_a * norm_b))


def cosine_similarity(vec1: Vector, vec2: Vector) -> float:
    """Cosine similarity of two vectors, with the semantic splitter's rules.

    Parameters
    ----------
    vec1, vec2
        Vectors of equal length (lists, tuples or arrays of floats).

    Returns
    -------
    float
        ``dot / (|vec1| * |vec2|)``, or ``0.0`` when either vector is all zeros.

    Raises
    ------
    DimensionMismatchError
        the lengths differ (a ``ValueError``, as in ATLAS).

    Examples
    --------
    >>> cosine_similarity([1.0, 0.0], [1.0, 1.0])  # doctest: +ELLIPSIS
    0.7071067811865...
    >>> cosine_similarity([0.0, 0.0], [1.0, 1.0])
    0.0
    """
    if len(vec1) != len(vec2):
        raise DimensionMismatchError(
            f"Vectors must have same dimension: got {len(vec1)} and {len(vec2)}"
        )
    np = real_numpy()
    if np is None or len(vec1) < 16:  # short vectors: the loop beats the conversion
        return _py_cosine(vec1, vec2)
    a, b = _as_f64(np, vec1), _as_f64(np, vec2)
    norm_a = getattr(vec1, "norm", None) or math.sqrt(float(a @ a))
    norm_b = getattr(vec2, "norm", None) or math.sqrt(float(b @ b))
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return float(a @ b) / (norm_a * norm_b)


def row_cosines(rows: Sequence[Vector] | Any, query: Vector) -> list[float]:
    """Cosine of each row against ``query``; zero-norm rows (or query) score 0.0.

    Every row must have the query's length.

    Examples
    --------
    >>> row_cosines([[1.0, 0.0], [0.0, 0.0]], [2.0, 0.0])
    [1.0, 0.0]
    """
    if len(rows) == 0:
        return []
    np = real_numpy()
    if np is None:
        return [_py_cosine(r, query) for r in rows]
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(query))
    return [float(v) for v in _np_row_cosines(np, matrix, _as_f64(np, query))]


def _np_row_cosines(np: Any, rows: Any, query: Any) -> Any:
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows)) * math.sqrt(float(query @ query))
    out = np.zeros(len(rows), dtype=np.float64)
    np.divide(rows @ query, norms, out=out, where=norms != 0)
    return out


def _check_dims(embeddings: Sequence[Vector] | Any, dim: int) -> None:
    for row in embeddings:
        if len(row) != dim:
            raise DimensionMismatchError(
                f"Vectors must have same dimension: got {len(row)} and {dim}"
            )


def buffer_similarity(
    embeddings: Sequence[Vector] | Any, current_idx: int, *, buffer_size: int = 3
) -> float:
    """Mean similarity of sentence ``current_idx`` to the ``buffer_size`` sentences before it.

    ``current_idx <= 0`` (nothing before it) gives ``1.0``.

    Examples
    --------
    >>> buffer_similarity([[1, 0], [0, 1], [1, 0]], 2, buffer_size=2)
    0.5
    """
    if current_idx <= 0:
        return 1.0
    start = max(0, current_idx - buffer_size)
    if start >= current_idx:
        return 1.0
    current = embeddings[current_idx]
    rows = embeddings[start:current_idx]
    _check_dims(rows, len(current))
    sims = row_cosines(rows, current)
    return sum(sims) / len(sims)


def adjacent_similarities(embeddings: Sequence[Vector] | Any) -> list[float]:
    """Cosine similarity of each sentence to the one before it (``n - 1`` values).

    Raises
    ------
    DimensionMismatchError
        the rows differ in length.

    Examples
    --------
    >>> adjacent_similarities([[1, 0], [1, 0], [0, 1]])
    [1.0, 0.0]
    """
    n = len(embeddings)
    if n < 2:
        return []
    _check_dims(embeddings, len(embeddings[0]))
    np = real_numpy()
    if np is None:
        return [_py_cosine(embeddings[i - 1], embeddings[i]) for i in range(1, n)]
    matrix = np.asarray(embeddings, dtype=np.float64)
    sq = np.einsum("ij,ij->i", matrix, matrix)
    prev, cur = matrix[:-1], matrix[1:]
    norms = np.sqrt(sq[:-1]) * np.sqrt(sq[1:])
    out = np.zeros(n - 1, dtype=np.float64)
    np.divide(np.einsum("ij,ij->i", prev, cur), norms, out=out, where=norms != 0)
    return [float(v) for v in out]


def semantic_breaks(
    sentences: Sequence[str],
    embeddings: Sequence[Vector] | Any,
    *,
    similarity_threshold: float = 0.75,
    chunk_size: int = 1000,
    min_sentences_per_chunk: int = 1,
    max_sentences_per_chunk: int = 20,
    length_function: Callable[[str], int] = len,
) -> list[int]:
    """Indices where ATLAS's semantic splitter starts a new chunk, in one vector pass.

    A break comes before sentence ``i`` when its similarity to sentence ``i - 1`` falls
    under ``similarity_threshold``, when adding it would exceed ``chunk_size``, or when the
    chunk holds ``max_sentences_per_chunk`` sentences; never before the chunk holds
    ``min_sentences_per_chunk``.

    Examples
    --------
    >>> semantic_breaks(["a", "b", "c"], [[1, 0], [1, 0], [0, 1]])
    [2]
    """
    if len(sentences) <= 1:
        return []
    sims = adjacent_similarities(embeddings)
    breaks: list[int] = []
    size = count = 0
    for i in range(1, len(sentences)):
        size += length_function(sentences[i - 1])
        count += 1
        cut = sims[i - 1] < similarity_threshold
        cut = cut or size + length_function(sentences[i]) > chunk_size
        cut = (cut or count >= max_sentences_per_chunk) and count >= min_sentences_per_chunk
        if cut:
            breaks.append(i)
            size = count = 0
    return breaks


def best_semantic_match(
    query_embedding: Vector,
    candidates: Mapping[str, Vector],
    *,
    threshold: float,
    eligible: Callable[[str], bool] | None = None,
) -> tuple[str | None, float]:
    """The query-result cache's scan: the most similar eligible entry at or above a threshold.

    Entries whose length differs from the query score 0.0; a score must be above 0.0 and
    at least ``threshold``; among equal best scores the first entry in mapping order wins.

    Returns
    -------
    tuple
        ``(key, similarity)``, or ``(None, 0.0)`` when nothing qualifies.

    Examples
    --------
    >>> key, score = best_semantic_match([1.0, 0.0], {"a": [0, 1], "b": [1, 0.1]}, threshold=0.9)
    >>> key, round(score, 6)
    ('b', 0.995037)
    """
    dim = len(query_embedding)
    keys = [k for k, v in candidates.items() if len(v) == dim and (eligible is None or eligible(k))]
    scores = row_cosines([candidates[k] for k in keys], query_embedding)
    best_key, best = None, 0.0
    for key, score in zip(keys, scores, strict=True):
        if score > 0.0 and score >= threshold and (best_key is None or score > best):
            best_key, best = key, score
    return best_key, best


class EmbeddingVector(list[float]):
    """A list of floats (what ATLAS stores and serialises) that also keeps its float64 row
    and norm, so :func:`cosine_similarity` on vectors from the provider skips converting.

    The extras are caches of the list's own values; any change to the list drops them.

    Examples
    --------
    >>> v = EmbeddingVector([3.0, 4.0])
    >>> v == [3.0, 4.0], v.norm
    (True, 5.0)
    >>> v.append(1.0)
    >>> v.sort(reverse=True)
    >>> v, v.norm
    ([4.0, 3.0, 1.0], None)
    """

    __slots__ = ("norm", "row64")

    def __init__(self, values: Sequence[float] = (), row64: Any = None) -> None:
        super().__init__(values)
        self.row64 = row64
        self.norm: float | None = None
        if row64 is not None:
            self.norm = math.sqrt(float(row64 @ row64))
        elif self:
            self.norm = math.sqrt(sum(x * x for x in self))

    def _changed(self) -> None:
        self.row64 = self.norm = None  # the caches no longer describe the list


def _invalidating(name: str) -> Any:
    method = getattr(list, name)

    def changed(self: EmbeddingVector, *args: Any, **kwargs: Any) -> Any:
        self._changed()
        return method(self, *args, **kwargs)

    changed.__name__ = name
    return changed


for _name in (
    "__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend", "insert",
    "pop", "remove", "clear", "sort", "reverse",
):  # fmt: skip
    setattr(EmbeddingVector, _name, _invalidating(_name))


Pair = Callable[[Any, Any], float]
Method = Callable[[Any, Any, Any], float]


def _numeric_row(np: Any, vec: Any) -> Any:
    """``vec`` as a 1-d float64 row, or ``None`` unless it holds real numbers (strings and
    other objects stay with the loop, which has its own rules for them).

    Lists and tuples go through ``array.array("d")``, which refuses strings and is the
    fastest way from Python floats to a float64 buffer; arrays through ``np.asarray``."""
    row = getattr(vec, "row64", None)
    if row is not None:
        pass
    elif isinstance(vec, list | tuple):
        row = np.frombuffer(array.array("d", vec), dtype=np.float64)
    else:
        row = np.asarray(vec)
        if row.dtype.kind not in "biuf":
            return None
        row = row.astype(np.float64, copy=False)
    return row if row.ndim == 1 else None


def _kernel_cosine(lhs: Any, rhs: Any) -> float | None:
    """Cosine of the common case on vector kernels, or ``None`` to leave it to the loop:
    two numeric 1-d vectors of equal length (16 or more), both with a positive norm."""
    np = real_numpy()
    try:
        n = len(lhs)
        if np is None or n < 16 or len(rhs) != n:
            return None
        a, b = _numeric_row(np, lhs), _numeric_row(np, rhs)
        if a is None or b is None:
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    norm_a = getattr(lhs, "norm", None) or math.sqrt(float(a @ a))
    norm_b = getattr(rhs, "norm", None) or math.sqrt(float(b @ b))
    if not (norm_a > 0 and norm_b > 0):  # zero or NaN: the loop's own rule
        return None
    return float(a @ b) / (norm_a * norm_b)


@overload
def accelerated(original: Pair) -> Pair: ...
@overload
def accelerated(original: Method, *, method: Literal[True]) -> Method: ...
def accelerated(original: Any, *, method: bool = False) -> Any:
    """``original`` (one of ATLAS's pure-Python cosine loops), computed on vector kernels.

    The returned function handles the common case itself: two numeric vectors of equal
    length (16 or more), both non-zero, with a working numpy. Everything else (other
    lengths, zero vectors, odd inputs, no numpy) goes to ``original``, so each loop keeps
    its own rules for those. With ``NEURALCORE_COMPAT=off`` this returns ``original``.

    ``method=True`` is for a loop written as a regular method, ``(self, lhs, rhs)``: the
    result is a function of the same shape, so it binds to instances as the original did
    (``self`` reaches the original only for the edge cases). A ``staticmethod`` loop is a
    plain pair function: wrap it with ``staticmethod(accelerated(Class.loop))``.

    Examples
    --------
    >>> def loop(a, b):
    ...     return sum(x * y for x, y in zip(a, b)) / (
    ...         sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
    ...     )
    >>> fast = accelerated(loop)
    >>> abs(fast([1.0] * 32, [2.0] * 32) - 1.0) < 1e-12, fast.__wrapped__ is loop
    (True, True)
    >>> class Calc:
    ...     def sim(self, a, b):
    ...         return loop(a, b)
    >>> Calc.sim = accelerated(Calc.sim, method=True)
    >>> abs(Calc().sim([1.0] * 32, [2.0] * 32) - 1.0) < 1e-12
    True
    """
    from neuralcore.compat._switch import compat_enabled

    if not compat_enabled():
        return original
    fast: Any
    if method:

        def fast(self: Any, lhs: Any, rhs: Any, /) -> float:
            value = _kernel_cosine(lhs, rhs)
            return original(self, lhs, rhs) if value is None else value

    else:

        def fast(lhs: Any, rhs: Any, /) -> float:
            value = _kernel_cosine(lhs, rhs)
            return original(lhs, rhs) if value is None else value

    fast.__wrapped__ = original
    fast.__name__ = getattr(original, "__name__", "accelerated")
    fast.__qualname__ = getattr(original, "__qualname__", fast.__name__)
    fast.__doc__ = getattr(original, "__doc__", None)
    return fast
