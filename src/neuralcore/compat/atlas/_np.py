"""numpy, when the numpy in this process is real: the adapters' one gate to it.

ATLAS's test suite installs a stub module as ``numpy`` when numpy is not imported yet, and
an install without the ``vectors`` extra has none; in both cases the adapters run their
stdlib paths. Nothing here imports numpy until :func:`real_numpy` is called.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ("real_numpy",)

_verdicts: dict[int, bool] = {}  # id(module in sys.modules["numpy"]) -> usable


def real_numpy() -> ModuleType | None:
    """The ``numpy`` module if it imports and computes, else ``None``.

    The verdict is kept per module object, so a stub swapped in (or out) later is noticed.

    Examples
    --------
    >>> np = real_numpy()
    >>> np is None or float(np.asarray([3.0]) @ np.asarray([2.0])) == 6.0
    True
    """
    module = sys.modules.get("numpy")
    if module is None:
        try:
            module = importlib.import_module("numpy")
        except ImportError:
            return None
    verdict = _verdicts.get(id(module))
    if verdict is None:
        verdict = _verdicts[id(module)] = _works(module)
    return module if verdict else None


def _works(np: ModuleType) -> bool:
    try:
        a = np.asarray([[3.0, 4.0]], dtype=np.float64)
        ok = isinstance(a, np.ndarray) and float((a @ a.T)[0, 0]) == 25.0
        return bool(ok and float(np.sqrt(a[0] @ a[0])) == 5.0)
    except Exception:  # a stub or broken build: any failure means "not usable"
        return False
