"""Helpers for the vector-kernel tests: a float64 numpy oracle, tolerances, input forms."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

# NEURALCORE_BACKEND=python makes every request resolve to the stdlib kernels (by design),
# so the native cases would silently test the pure path twice: skip them instead.
PYTHON_FORCED = os.environ.get("NEURALCORE_BACKEND", "").strip().lower() == "python"
needs_native = pytest.mark.skipif(PYTHON_FORCED, reason="NEURALCORE_BACKEND=python")
VECTOR_BACKENDS = (pytest.param("native", marks=needs_native), "python")
KINDS = (
    "cosine_similarity",
    "cosine_distance",
    "dot",
    "euclidean_distance",
    "sqeuclidean_distance",
)


def as_input(backend: str, x: np.ndarray) -> Any:
    """What each backend is fed in the property tests: arrays (native) or lists (python).

    A matrix with no rows stays an array: as a list it is ``[]``, which both backends read
    as numpy does, as an empty vector.
    """
    if backend == "native" or (x.ndim == 2 and x.shape[0] == 0):
        return x
    return x.tolist()


def oracle(kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs reference in float64; zero vectors have cosine similarity 0."""
    x, y = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    if kind == "dot":
        return x @ y.T
    if kind in ("euclidean_distance", "sqeuclidean_distance"):
        sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)
        return np.sqrt(sq) if kind == "euclidean_distance" else sq
    denom = np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1))
    sim = np.divide(x @ y.T, denom, out=np.zeros_like(denom), where=denom > 0)
    return sim if kind == "cosine_similarity" else 1.0 - sim


def tolerance(kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute error allowed per pair: 1e-5 relative to the magnitudes involved.

    A dot product or squared distance can cancel to near zero, where a purely relative
    bound is meaningless; the bound scales with ``|a| |b|`` (or ``(|a| + |b|)^2``) instead.
    """
    na = np.linalg.norm(np.atleast_2d(a).astype(np.float64), axis=1)
    nb = np.linalg.norm(np.atleast_2d(b).astype(np.float64), axis=1)
    scale = {
        "dot": np.outer(na, nb),
        "sqeuclidean_distance": np.add.outer(na, nb) ** 2,
        "euclidean_distance": np.add.outer(na, nb),
    }.get(kind, np.ones((na.size, nb.size)))
    return 1e-5 * scale + 1e-30


def expected_shape(a: np.ndarray, b: np.ndarray) -> tuple[int, ...]:
    """Result shape of a distance function for these input shapes."""
    if a.ndim == 1 and b.ndim == 1:
        return ()
    if a.ndim == 1 or b.ndim == 1:
        return (b.shape[0] if a.ndim == 1 else a.shape[0],)
    return (a.shape[0], b.shape[0])
