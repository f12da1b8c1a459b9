# ruff: noqa: E402  (the dependency check must run before the imports it guards)
"""Sentence embeddings on ONNX Runtime or OpenVINO: models converted once, no torch at inference.

>>> from neuralcore.embedding import EmbeddingEngine
>>> engine = EmbeddingEngine("all-MiniLM-L6-v2")  # the variant chosen at conversion
>>> engine.dimension
384
>>> engine.runtime_info.chosen_by
'default'

Submodules: :mod:`neuralcore.embedding.parity` (the parity gate and its text sets) and
:mod:`neuralcore.embedding.pooling` (pooling and output forms).
"""

from neuralcore.core._optional import require

require("numpy", extra="embedding")  # a clear install hint instead of a bare ModuleNotFoundError

from neuralcore.embedding._cache import CacheStats, EmbeddingCache
from neuralcore.embedding._config import EmbeddingConfig
from neuralcore.embedding._convert import convert_model
from neuralcore.embedding._engine import EmbeddingEngine, RuntimeInfo
from neuralcore.embedding._models import (
    KNOWN_MODELS,
    KnownModel,
    ModelInfo,
    load_model_info,
    neuralcore_home,
)

__all__ = (
    "KNOWN_MODELS",
    "CacheStats",
    "EmbeddingCache",
    "EmbeddingConfig",
    "EmbeddingEngine",
    "KnownModel",
    "ModelInfo",
    "RuntimeInfo",
    "convert_model",
    "load_model_info",
    "neuralcore_home",
)
