"""Vector math and search: SIMD distance functions with a stdlib fallback, and an HNSW index.

>>> from neuralcore.vectors import cosine_similarity
>>> round(cosine_similarity([1.0, 0.0], [1.0, 0.0]), 6)
1.0
"""

from neuralcore.vectors._hnsw import HNSWIndex
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

__all__ = (
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
