"""Vector drop-ins for the similarity code ATLAS runs in pure Python.

ATLAS computes cosine similarity on lists of floats in three places we replace: a module
function used by its semantic text splitter (mismatched lengths raise, a zero vector scores
0.0), the splitter's "buffer" average over the previous few sentences, and the linear scan
of its query-result cache (mismatched lengths score 0.0; the first best entry at or above
the threshold wins). These functions keep those rules and compute in float64 with numpy, so
results agree with the originals to rounding (~1e-15) and the cache picks the same entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from neuralcore.core._errors import DimensionMismatchError, MissingDependencyError

try:
    import numpy as np
    from numpy.typing import NDArray
except ModuleNotFoundError as _err:  # the no-extras install
    if _err.name != "numpy":
        raise
    _HINT = 'pip install "neuralcore-runtime[vectors]"'
    raise MissingDependencyError(
        f"numpy is required for the ATLAS similarity drop-ins: {_HINT}"
    ) from _err

__all__ = (
    "adjacent_similarities",
    "best_semantic_match",
    "buffer_similarity",
    "cosine_similarity",
    "semantic_breaks",
)

Vector = Sequence[float]
F64 = NDArray[np.float64]


def _as_f64(vec: Any) -> F64:
    return np.asarray(vec, dtype=np.float64)


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
    return _pair_cosine(_as_f64(vec1), _as_f64(vec2))


def _pair_cosine(a: F64, b: F64) -> float:
    norm_a = float(np.sqrt(a @ a))
    norm_b = float(np.sqrt(b @ b))
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return float(a @ b) / (norm_a * norm_b)


def _row_cosines(rows: F64, query: F64) -> F64:
    """Cosine of each row against ``query``; rows or query with zero norm score 0.0."""
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows)) * float(np.sqrt(query @ query))
    dots = rows @ query
    out = np.zeros(len(rows), dtype=np.float64)
    np.divide(dots, norms, out=out, where=norms != 0)
    return out


def buffer_similarity(
    embeddings: Sequence[Vector] | F64, current_idx: int, *, buffer_size: int = 3
) -> float:
    """Mean similarity of sentence ``current_idx`` to the ``buffer_size`` sentences before it.

    Parameters
    ----------
    embeddings
        One vector per sentence.
    current_idx
        The sentence to compare; ``<= 0`` (nothing before it) gives ``1.0``.
    buffer_size
        How many preceding sentences to average over.

    Returns
    -------
    float
        The average cosine similarity, ``1.0`` when there is nothing to compare.

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
    rows = _as_f64(embeddings[start:current_idx])
    _check_rows(rows, len(embeddings[current_idx]))
    return float(np.mean(_row_cosines(rows, _as_f64(embeddings[current_idx]))))


def _check_rows(rows: F64, dim: int) -> None:
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise DimensionMismatchError(
            f"Vectors must have same dimension: got shape {rows.shape} against {dim}"
        )


def adjacent_similarities(embeddings: Sequence[Vector] | F64) -> list[float]:
    """Cosine similarity of each sentence to the one before it (``n - 1`` values).

    Examples
    --------
    >>> adjacent_similarities([[1, 0], [1, 0], [0, 1]])
    [1.0, 0.0]
    """
    if len(embeddings) < 2:
        return []
    matrix = _as_f64(embeddings)
    _check_rows(matrix, len(embeddings[0]))
    prev, cur = matrix[:-1], matrix[1:]
    norms = np.sqrt(np.einsum("ij,ij->i", prev, prev) * np.einsum("ij,ij->i", cur, cur))
    dots = np.einsum("ij,ij->i", prev, cur)
    out = np.zeros(len(dots), dtype=np.float64)
    np.divide(dots, norms, out=out, where=norms != 0)
    return [float(v) for v in out]


def semantic_breaks(
    sentences: Sequence[str],
    embeddings: Sequence[Vector] | F64,
    *,
    similarity_threshold: float = 0.75,
    chunk_size: int = 1000,
    min_sentences_per_chunk: int = 1,
    max_sentences_per_chunk: int = 20,
    length_function: Callable[[str], int] = len,
) -> list[int]:
    """Indices where a semantic splitter starts a new chunk, computed in one vector pass.

    A break comes before sentence ``i`` when its similarity to sentence ``i - 1`` falls
    under ``similarity_threshold``, when adding it would exceed ``chunk_size``, or when the
    chunk holds ``max_sentences_per_chunk`` sentences; never before the chunk holds
    ``min_sentences_per_chunk``.

    Examples
    --------
    >>> semantic_breaks(["a", "b", "c"], [[1, 0], [1, 0], [0, 1]])
    [2]
    """
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

    Parameters
    ----------
    query_embedding
        The query's vector.
    candidates
        Cached key -> vector, in insertion order.
    threshold
        Minimum cosine similarity for a match.
    eligible
        Optional predicate on keys (present and not expired); others are skipped.

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
    keys, scores = _scan_scores(query_embedding, candidates, eligible)
    if not keys:
        return None, 0.0
    masked = np.where((scores > 0.0) & (scores >= threshold), scores, -np.inf)
    best = int(np.argmax(masked))
    if masked[best] == -np.inf:
        return None, 0.0
    return keys[best], float(scores[best])


def _scan_scores(
    query: Vector, candidates: Mapping[str, Vector], eligible: Callable[[str], bool] | None
) -> tuple[list[str], F64]:
    dim = len(query)
    keys = [k for k, v in candidates.items() if len(v) == dim and (eligible is None or eligible(k))]
    if not keys:
        return [], np.zeros(0)
    rows = _as_f64([candidates[k] for k in keys])
    return keys, _row_cosines(rows.reshape(len(keys), dim), _as_f64(query))


def stack_rows(vectors: Iterable[Vector], dim: int) -> F64:
    """Stack vectors into a ``(n, dim)`` float64 matrix (empty input gives ``(0, dim)``)."""
    return np.asarray(list(vectors), dtype=np.float64).reshape(-1, dim)
