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
    from neuralcore.embedding import (
        EmbeddingCache,
        EmbeddingConfig,
        EmbeddingEngine,
        ModelInfo,
        convert_model,
    )
    from neuralcore.messaging import (
        BusConfig,
        ChannelConfig,
        DeadLetter,
        Message,
        MessageBus,
        Priority,
        Subscription,
    )
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
    "HNSWIndex": "neuralcore.vectors",
    "VectorOps": "neuralcore.vectors",
    "cosine_distance": "neuralcore.vectors",
    "cosine_similarity": "neuralcore.vectors",
    "dot": "neuralcore.vectors",
    "euclidean_distance": "neuralcore.vectors",
    "normalize": "neuralcore.vectors",
    "sqeuclidean_distance": "neuralcore.vectors",
    "top_k": "neuralcore.vectors",
    "EmbeddingCache": "neuralcore.embedding",
    "EmbeddingConfig": "neuralcore.embedding",
    "EmbeddingEngine": "neuralcore.embedding",
    "ModelInfo": "neuralcore.embedding",
    "convert_model": "neuralcore.embedding",
    "BusConfig": "neuralcore.messaging",
    "ChannelConfig": "neuralcore.messaging",
    "DeadLetter": "neuralcore.messaging",
    "Message": "neuralcore.messaging",
    "MessageBus": "neuralcore.messaging",
    "Priority": "neuralcore.messaging",
    "Subscription": "neuralcore.messaging",
}

__all__ = (
    "__version__",
    "backend_info",
    "convert_model",
    "cosine_distance",
    "cosine_similarity",
    "dot",
    "euclidean_distance",
    "normalize",
    "sqeuclidean_distance",
    "top_k",
    "AuthorizationError",
    "BackendInfo",
    "BridgeConnectionError",
    "BusClosedError",
    "BusConfig",
    "ChannelConfig",
    "ChannelNotFoundError",
    "ConfigError",
    "DeadLetter",
    "DimensionMismatchError",
    "EmbeddingCache",
    "EmbeddingConfig",
    "EmbeddingEngine",
    "HNSWIndex",
    "IndexFileError",
    "InputTypeError",
    "InvalidInputError",
    "KeyNotFoundError",
    "Message",
    "MessageBus",
    "MessagingError",
    "MissingDependencyError",
    "ModelError",
    "ModelInfo",
    "ModelNotFoundError",
    "NeuralcoreError",
    "NonFiniteError",
    "PersistenceError",
    "Priority",
    "QueueFullError",
    "RateLimitedError",
    "RequestTimeoutError",
    "SerializationError",
    "Subscription",
    "VectorOps",
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
