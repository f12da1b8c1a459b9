"""The ``filter=`` argument of :meth:`HNSWIndex.search`: allowed keys or a predicate.

One object serves both engines: the exact engine asks for a boolean mask over a key
array, hnswlib calls it once per candidate label. An exception raised by a user
predicate inside hnswlib's callback is held and re-raised after the search, so it
never crosses the native boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neuralcore.errors import InputTypeError

__all__ = ("FilterSpec", "KeyFilter")

FilterSpec = Iterable[int] | Callable[[int], bool]


class KeyFilter:
    """Allowed keys (``keys`` set, sorted array in ``allowed``) or a predicate.

    Examples
    --------
    >>> f = KeyFilter({3, 1})
    >>> f(1), f(2), f.mask(np.array([1, 2, 3])).tolist()
    (True, False, [True, False, True])
    >>> KeyFilter(lambda key: key > 2).mask(np.array([1, 5])).tolist()
    [False, True]
    """

    def __init__(self, spec: FilterSpec) -> None:
        self.error: BaseException | None = None
        self.allowed: NDArray[np.int64] | None = None
        if callable(spec):
            self._predicate: Callable[[int], bool] = spec
            return
        if isinstance(spec, str | bytes) or not isinstance(spec, Iterable):
            raise InputTypeError(
                f"filter must be a collection of keys or a predicate, got {type(spec).__name__}"
            )
        self.allowed = _key_array(spec)
        keys = frozenset(self.allowed.tolist())
        self._predicate = keys.__contains__

    def __call__(self, key: int) -> bool:
        if self.error is not None:
            return False
        try:
            return bool(self._predicate(int(key)))
        except Exception as err:  # held and re-raised by check(): see module docstring
            self.error = err
            return False

    def mask(self, keys: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which of ``keys`` pass."""
        if self.allowed is not None:
            return np.isin(keys, self.allowed)
        found = np.fromiter((self(k) for k in keys.tolist()), dtype=bool, count=len(keys))
        self.check()
        return found

    def check(self) -> None:
        """Re-raise the predicate's exception, if it raised one."""
        if self.error is not None:
            raise self.error


def _key_array(spec: Iterable[Any]) -> NDArray[np.int64]:
    values = np.asarray(spec if isinstance(spec, np.ndarray) else list(spec))
    if values.size and values.dtype.kind not in "iu":
        raise InputTypeError(f"filter keys must be integers, got dtype {values.dtype}")
    return np.unique(values.astype(np.int64).ravel())
