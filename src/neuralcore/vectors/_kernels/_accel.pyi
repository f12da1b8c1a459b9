"""Compiled argument checks for the one-pair cosine kernels (``_accel.c``; no arithmetic)."""

from collections.abc import Callable
from typing import Any

class PairKernel:
    """C checks over the SIMD library's cosine call; the Python kernel for everything else.

    Called as ``kernel(a, b, allow_nonfinite=None)`` (``method=False``) or as a method
    (``method=True``: a leading instance, passed on to ``fallback`` unchanged).
    """

    __name__: str
    __qualname__: str
    __signature__: Any
    def __init__(
        self,
        kernel: Callable[[Any, Any], Any],
        fallback: Callable[..., Any],
        ndarray: type,
        rejects: tuple[type[BaseException], ...],
        similarity: bool,
        method: bool,
    ) -> None: ...
    @property
    def fallback(self) -> Callable[..., Any]: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
