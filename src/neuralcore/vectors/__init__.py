"""Vector math and search: SIMD distance functions with a stdlib fallback, reusable corpora,
and an HNSW index.

>>> from neuralcore.vectors import cosine_similarity
>>> round(cosine_similarity([1.0, 0.0], [1.0, 0.0]), 6)
1.0
"""

from typing import TYPE_CHECKING, Any

from neuralcore.vectors._ops import (
    VectorOps,
    cosine_distance,
    cosine_similarity,
    dot,
    euclidean_distance,
    normalize,
    sqeuclidean_distance,
    top_k,
)
from neuralcore.vectors.hnsw import HNSWIndex

if TYPE_CHECKING:
    from neuralcore.vectors._corpus import Corpus

__all__ = (
    "Corpus",
    "HNSWIndex",
    "VectorOps",
    "cosine_distance",
    "cosine_similarity",
    "dot",
    "euclidean_distance",
    "normalize",
    "sqeuclidean_distance",
    "top_k",
)


def __getattr__(name: str) -> Any:
    if name == "Corpus":  # needs numpy and SimSIMD: imported on first use
        from neuralcore.vectors._corpus import Corpus

        globals()["Corpus"] = Corpus
        return Corpus
    raise AttributeError(f"module 'neuralcore.vectors' has no attribute {name!r}")
