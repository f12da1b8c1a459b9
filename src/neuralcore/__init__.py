"""neuralcore: native-speed embeddings, vector search and messaging for Python AI apps.

>>> from neuralcore import EmbeddingEngine, VectorOps, MessageBus  # doctest: +SKIP

Importing ``neuralcore`` is cheap: engines load their native libraries on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neuralcore.core import (
    AuthorizationError,
    BackendInfo,
    BridgeConnectionError,
    BusClosedError,
    ChannelNotFoundError,
    ConfigError,
    DimensionMismatchError,
    IndexFileError,
    InputTypeError,
    InvalidInputError,
    KeyNotFoundError,
    MessagingError,
    MissingDependencyError,
    ModelError,
    ModelNotFoundError,
    NeuralcoreError,
    NonFiniteError,
    PersistenceError,
    QueueFullError,
    RateLimitedError,
    RequestTimeoutError,
    SerializationError,
    backend_info,
)

if TYPE_CHECKING:
    from neuralcore.vectors import (
        HNSWIndex,
        VectorOps,
        cosine_distance,
        cosine_similarity,
        dot,
        euclidean_distance,
        normalize,
        sqeuclidean_distance,
        top_k,
    )

__version__ = "0.1.0"

_LAZY = {
    "VectorOps": "neuralcore.vectors",
    "HNSWIndex": "neuralcore.vectors",
    "cosine_similarity": "neuralcore.vectors",
    "cosine_distance": "neuralcore.vectors",
    "dot": "neuralcore.vectors",
    "euclidean_distance": "neuralcore.vectors",
    "sqeuclidean_distance": "neuralcore.vectors",
    "normalize": "neuralcore.vectors",
    "top_k": "neuralcore.vectors",
}

__all__ = (
    "AuthorizationError",
    "BackendInfo",
    "BridgeConnectionError",
    "BusClosedError",
    "ChannelNotFoundError",
    "ConfigError",
    "DimensionMismatchError",
    "HNSWIndex",
    "IndexFileError",
    "InputTypeError",
    "InvalidInputError",
    "KeyNotFoundError",
    "MessagingError",
    "MissingDependencyError",
    "ModelError",
    "ModelNotFoundError",
    "NeuralcoreError",
    "NonFiniteError",
    "PersistenceError",
    "QueueFullError",
    "RateLimitedError",
    "RequestTimeoutError",
    "SerializationError",
    "VectorOps",
    "__version__",
    "backend_info",
    "cosine_distance",
    "cosine_similarity",
    "dot",
    "euclidean_distance",
    "normalize",
    "sqeuclidean_distance",
    "top_k",
)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'neuralcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
