"""The embedding engine's backend report: ONNX Runtime, or why it is unavailable.

There is no pure-Python fallback for a transformer: without onnxruntime, creating an
:class:`~neuralcore.embedding.EmbeddingEngine` raises
:class:`~neuralcore.core.MissingDependencyError` naming the ``embedding`` extra.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

from neuralcore.core._backend import BackendInfo

__all__ = ("describe_backend",)

_HINT = 'pip install "neuralcore-runtime[embedding]"'


def describe_backend(engine: str) -> BackendInfo:
    """Report what serves embeddings, without importing onnxruntime.

    Examples
    --------
    >>> describe_backend("embedding").engine
    'embedding'
    """
    from neuralcore.embedding._session import usable_cores

    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        detail = f"{', '.join(missing)} not installed; EmbeddingEngine unavailable ({_HINT})"
        return BackendInfo(engine, "python", "none", "", detail)
    version = _version("onnxruntime") or _version("onnxruntime-gpu")
    openvino = _version("openvino")
    extra = f"OpenVINO {openvino} available" if openvino else "OpenVINO not installed"
    detail = f"{usable_cores()} intra-op threads; {extra}"
    return BackendInfo(engine, "native", "onnxruntime", version, detail)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""
