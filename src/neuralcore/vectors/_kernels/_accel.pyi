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
        address: int = 0,
    ) -> None: ...
    @property
    def fallback(self) -> Callable[..., Any]: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...

def call_angular_f32(address: int, ndarray: type, a: Any, b: Any, /) -> float:
    """The float32 angular kernel at ``address`` on two contiguous float32 vectors."""
