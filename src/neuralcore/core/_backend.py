"""Which accelerator serves each engine, chosen in one place per engine and reported here.

Each engine subpackage has a ``_select`` module with ``describe_backend() -> BackendInfo``.
``NEURALCORE_BACKEND=python`` forces the pure-Python path of every engine that has one (the
vector kernels, the exact HNSW engine, the bus's JSON codec); objects also take a
``backend=`` argument. Embeddings have no pure-Python path: the report says the setting has
no effect there. The variable is read when an engine first chooses, so set it before.
"""

from __future__ import annotations

import importlib
import os
from typing import Literal, NamedTuple

from neuralcore.core._errors import ConfigError, MissingDependencyError

__all__ = ("BackendInfo", "BackendName", "backend_info", "resolve_backend")

BackendName = Literal["auto", "native", "python"]

_ENGINES = {
    "vectors": "neuralcore.vectors._select",
    "hnsw": "neuralcore.vectors._select",
    "embedding": "neuralcore.embedding._select",
    "messaging": "neuralcore.messaging._select",
}


class BackendInfo(NamedTuple):
    """What serves one engine.

    Attributes
    ----------
    engine: the engine name (``"vectors"``, ``"embedding"``...).
    backend: ``"native"`` or ``"python"``.
    library: the library doing the work (``"numpy+simsimd"``, ``"stdlib"``...).
    version: that library's version, or ``""``.
    detail: anything else worth knowing (threads, SIMD level, why a fallback was chosen).
    """

    engine: str
    backend: Literal["native", "python"]
    library: str
    version: str
    detail: str = ""


def resolve_backend(requested: BackendName | None = None) -> Literal["native", "python"]:
    """Resolve a backend request against ``NEURALCORE_BACKEND``.

    ``"python"`` from either side wins; ``"native"`` asks for the accelerated path (and
    callers raise if it is missing); ``"auto"``/``None`` means native when available.

    Examples
    --------
    >>> resolve_backend("python")
    'python'
    """
    env = os.environ.get("NEURALCORE_BACKEND", "auto").strip().lower() or "auto"
    if env not in ("auto", "native", "python"):
        raise ConfigError("NEURALCORE_BACKEND", env, "expected auto, native or python")
    choice = "auto" if requested is None else requested
    if not isinstance(choice, str) or choice not in ("auto", "native", "python"):
        raise ConfigError("backend", choice, "expected 'auto', 'native' or 'python'")
    if "python" in (env, choice):
        return "python"
    return "native"


def backend_info() -> dict[str, BackendInfo]:
    """Report which library serves each engine and its version.

    Examples
    --------
    >>> info = backend_info()
    >>> info["vectors"].backend in ("native", "python")
    True
    """
    report: dict[str, BackendInfo] = {}
    for engine, module_name in _ENGINES.items():
        try:
            module = importlib.import_module(module_name)
        except MissingDependencyError as err:
            report[engine] = BackendInfo(engine, "python", "none", "", f"unavailable: {err}")
            continue
        info = module.describe_backend(engine)
        if info.backend == "native" and resolve_backend() == "python":
            why = "NEURALCORE_BACKEND=python has no effect here"
            info = info._replace(detail=f"{info.detail}; {why}" if info.detail else why)
        report[engine] = info
    return report
