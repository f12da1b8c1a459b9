"""Definitions shared by both backends that need no third-party import (metric names, k)."""

from __future__ import annotations

import numbers
import reprlib
from typing import Any, Literal

from neuralcore.errors import InputTypeError, InvalidInputError

__all__ = (
    "MAX_THREADS",
    "TOP_K_METRICS",
    "Metric",
    "check_flag",
    "check_k",
    "check_metric",
    "show",
)

Metric = Literal["cosine", "ip", "l2"]

# the most threads any vectors object takes (as EmbeddingConfig): a typo (threads=100000)
# is a ConfigError naming the field, not a crash in a native thread pool
MAX_THREADS = 1024

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
    if not isinstance(metric, str) or metric not in TOP_K_METRICS:
        names = sorted(TOP_K_METRICS)
        raise InvalidInputError(f"metric must be one of {names}, got {show(metric)}")


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


_REPR = reprlib.Repr()
_REPR.maxlevel = 3  # a list nested 200 deep prints as [[[...]]], never a RecursionError
_REPR.maxstring = _REPR.maxother = 80


def show(value: object) -> str:
    """A short repr of a bad value for an error message (bounded length and depth).

    Examples
    --------
    >>> show([[[[[0]]]]])
    '[[[[...]]]]'
    """
    try:
        return _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        return f"<{type(value).__name__}>"


def check_flag(value: Any, name: str) -> bool:
    """Return a boolean option (``True``/``False``, numpy bools too), else raise.

    Raises
    ------
    InputTypeError
        Anything else (an int, a string, an array...), named with ``name``.

    Examples
    --------
    >>> check_flag(True, "allow_nonfinite")
    True
    """
    if value is True or value is False:
        return value
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    raise InputTypeError(f"{name} must be True or False, got {show(value)}")
