"""Definitions shared by both backends that need no third-party import (metric names, k)."""

from __future__ import annotations

import numbers
from typing import Literal

from neuralcore.errors import InputTypeError, InvalidInputError

__all__ = ("TOP_K_METRICS", "Metric", "check_k", "check_metric")

Metric = Literal["cosine", "ip", "l2"]

# top_k metric -> (kernel name, higher score is better)
TOP_K_METRICS: dict[str, tuple[str, bool]] = {
    "cosine": ("cosine_similarity", True),
    "ip": ("dot", True),
    "l2": ("euclidean_distance", False),
}


def check_metric(metric: str) -> None:
    """Raise :class:`InvalidInputError` for an unknown ``top_k`` metric.

    Examples
    --------
    >>> check_metric("cosine")
    """
    if metric not in TOP_K_METRICS:
        raise InvalidInputError(f"metric must be one of {sorted(TOP_K_METRICS)}, got {metric!r}")


def check_k(k: object) -> int:
    """Return ``k`` as an int if it is a non-negative integer (numpy ones too), else raise.

    Examples
    --------
    >>> check_k(3)
    3
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InputTypeError(f"k must be an int, got {type(k).__name__}")
    if k < 0:
        raise InvalidInputError(f"k must be >= 0, got {k}")
    return int(k)
