"""The one place that chooses the vector kernels (native or pure Python) and reports it.

``auto`` picks the native kernels (numpy + SimSIMD) when both import, else the stdlib ones;
``NEURALCORE_BACKEND=python`` forces the stdlib everywhere. The process-wide default is
decided once, on first use, and :func:`describe_backend` reports that same decision.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType
from typing import Literal

from neuralcore.core._backend import BackendInfo, BackendName, resolve_backend
from neuralcore.errors import MissingDependencyError

__all__ = ("default_choice", "describe_backend", "load_kernels")

Choice = Literal["native", "python"]
_MODULES = {
    "native": "neuralcore.vectors._kernels.native",
    "python": "neuralcore.vectors._kernels.pure",
}
_HINT = 'pip install "neuralcore-runtime[vectors]"'


def _missing_native() -> str:
    """Why the native kernels cannot load (``""`` when they can)."""
    for names in (("numpy",), ("numkong", "simsimd")):
        for name in names:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name != name:
                    raise  # a broken install, not a missing one
            else:
                break
        else:
            return f"{' or '.join(names)} is not installed ({_HINT})"
    return ""


def _choose(requested: BackendName | None) -> tuple[Choice, str]:
    resolved = resolve_backend(requested)
    if resolved == "python":
        return "python", "pure Python requested (backend='python' or NEURALCORE_BACKEND)"
    missing = _missing_native()
    forced = os.environ.get("NEURALCORE_BACKEND", "").strip().lower() == "native"
    if missing and (requested == "native" or forced):
        raise MissingDependencyError(f"native vector kernels unavailable: {missing}")
    return ("python", missing) if missing else ("native", "")


@functools.cache
def default_choice() -> tuple[Choice, str]:
    """The process-wide default backend and the reason for a fallback (cached).

    Examples
    --------
    >>> default_choice()[0] in ("native", "python")
    True
    """
    return _choose("auto")


def load_kernels(requested: BackendName | None = "auto") -> tuple[Choice, ModuleType]:
    """Return ``(backend, kernel module)`` for a backend request.

    Raises
    ------
    MissingDependencyError
        ``"native"`` was requested and numpy or SimSIMD is missing.

    Examples
    --------
    >>> load_kernels("python")[0]
    'python'
    """
    if requested is None or (isinstance(requested, str) and requested == "auto"):
        choice = default_choice()[0]
    else:  # checks the value: a non-str or unknown name is a ConfigError naming it
        choice = _choose(requested)[0]
    return choice, importlib.import_module(_MODULES[choice])


def describe_backend(engine: str) -> BackendInfo:
    """Report what serves ``engine``: ``"vectors"`` (kernels) or ``"hnsw"`` (the index).

    Examples
    --------
    >>> describe_backend("vectors").engine
    'vectors'
    """
    if engine == "hnsw":
        from neuralcore.vectors.hnsw._index import describe_hnsw_backend

        return describe_hnsw_backend()
    choice, reason = default_choice()
    if choice == "python":
        return BackendInfo(engine, "python", "stdlib", "", reason)
    import numpy

    from neuralcore.vectors._kernels import native as _native

    simd, name = _native._SIMD, _native.SIMD_NAME
    caps = ",".join(k for k, on in simd.get_capabilities().items() if on and k != "serial")
    detail = f"{name} for pairs/one-vs-many (SIMD: {caps or 'none'}); BLAS for matrix-matrix"
    if not _native._COSINE_SIMD:
        detail += f"; cosine via BLAS ({name}'s portable kernel is imprecise)"
    elif not _native._F32_WIDE:  # measured 2026-11-29: 739 ns vs simsimd.cosine 192 ns
        detail += (
            "; float32 cosine norms checked per call (SimSIMD sums float32 in float32; "
            "install numkong): one pair ~3.9x raw SimSIMD's call instead of ~0.7x"
        )
    elif not _native.accelerated():
        detail += (
            "; pair cosine without its compiled glue (not built: one pair ~1.9x raw "
            "SimSIMD's call instead of ~0.7x)"
        )
    version = f"{numpy.__version__}+{getattr(simd, '__version__', '')}"
    return BackendInfo(engine, "native", f"numpy+{name}", version, detail)
