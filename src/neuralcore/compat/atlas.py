"""Drop-in adapters for ATLAS: its embedding provider, its message bus, its similarity code.

Names that ATLAS itself defines (``NeuralCognitiveBus``, ``ChannelConfig``, ``Message``,
``SubscriberConfig``, ``SecurityConfig``, ``Plugin``, ``HuggingFaceEmbeddingProvider``,
``QueryResultCache``, ``cosine_similarity``) follow the rollout switch: with
``NEURALCORE_COMPAT`` unset or ``on`` they are neuralcore's adapters, with
``NEURALCORE_COMPAT=off`` they are ATLAS's originals, imported from ATLAS. These are the
names ``neuralcore migrate`` rewrites imports to. Every other name here is always
neuralcore's. Nothing heavy is imported until a name is used.

Examples
--------
>>> from neuralcore.compat.atlas import cosine_similarity, NeuralcoreEmbeddingProvider
>>> cosine_similarity([1.0, 0.0], [0.0, 2.0])
0.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neuralcore.compat._switch import compat_enabled
from neuralcore.core._errors import MissingDependencyError

if TYPE_CHECKING:
    from neuralcore.compat._atlas_bus import NeuralcoreCognitiveBus
    from neuralcore.compat._atlas_bus import NeuralcoreCognitiveBus as NeuralCognitiveBus
    from neuralcore.compat._atlas_bus_types import (
        ChannelConfig,
        Message,
        Plugin,
        SecurityConfig,
        SubscriberConfig,
        TokenBucket,
    )
    from neuralcore.compat._atlas_cache import CacheEntry, QueryResultCache
    from neuralcore.compat._atlas_config import (
        AtlasChannelSettings,
        AtlasKafkaSettings,
        AtlasMessagingConfig,
        AtlasSecuritySettings,
        load_atlas_messaging,
        to_channel_config,
    )
    from neuralcore.compat._atlas_embedding import NeuralcoreEmbeddingProvider, register_with_atlas
    from neuralcore.compat._atlas_embedding import (
        NeuralcoreEmbeddingProvider as HuggingFaceEmbeddingProvider,
    )
    from neuralcore.compat._atlas_embedding_types import (
        BatchEmbeddingResult,
        EmbeddingError,
        EmbeddingGenerationError,
        EmbeddingInputType,
        EmbeddingProviderError,
        EmbeddingResult,
    )
    from neuralcore.compat._atlas_vectors import (
        adjacent_similarities,
        best_semantic_match,
        buffer_similarity,
        cosine_similarity,
        semantic_breaks,
    )

_P = "neuralcore.compat."
_NCB = "core.messaging.NCB"

#: name -> (our module, our name)
_OURS: dict[str, tuple[str, str]] = {
    **{n: (_P + "_atlas_bus", n) for n in ("NeuralcoreCognitiveBus",)},
    **{
        n: (_P + "_atlas_bus_types", n)
        for n in ("ChannelConfig", "Message", "Plugin", "SecurityConfig", "SubscriberConfig")
    },
    "TokenBucket": (_P + "_atlas_bus_types", "TokenBucket"),
    **{n: (_P + "_atlas_cache", n) for n in ("CacheEntry", "QueryResultCache")},
    **{
        n: (_P + "_atlas_config", n)
        for n in (
            "AtlasChannelSettings",
            "AtlasKafkaSettings",
            "AtlasMessagingConfig",
            "AtlasSecuritySettings",
            "load_atlas_messaging",
            "to_channel_config",
        )
    },
    **{
        n: (_P + "_atlas_embedding", n)
        for n in ("NeuralcoreEmbeddingProvider", "register_with_atlas")
    },
    **{
        n: (_P + "_atlas_embedding_types", n)
        for n in (
            "BatchEmbeddingResult",
            "EmbeddingError",
            "EmbeddingGenerationError",
            "EmbeddingInputType",
            "EmbeddingProviderError",
            "EmbeddingResult",
        )
    },
    **{
        n: (_P + "_atlas_vectors", n)
        for n in (
            "adjacent_similarities",
            "best_semantic_match",
            "buffer_similarity",
            "cosine_similarity",
            "semantic_breaks",
        )
    },
    "NeuralCognitiveBus": (_P + "_atlas_bus", "NeuralcoreCognitiveBus"),
    "HuggingFaceEmbeddingProvider": (_P + "_atlas_embedding", "NeuralcoreEmbeddingProvider"),
}

#: ATLAS names that follow NEURALCORE_COMPAT -> (ATLAS module, ATLAS name)
_SWITCHED: dict[str, tuple[str, str]] = {
    **{
        n: (_NCB, n)
        for n in (
            "NeuralCognitiveBus",
            "ChannelConfig",
            "Message",
            "Plugin",
            "SecurityConfig",
            "SubscriberConfig",
        )
    },
    "HuggingFaceEmbeddingProvider": (
        "modules.storage.embeddings.huggingface",
        "HuggingFaceEmbeddingProvider",
    ),
    "QueryResultCache": ("modules.storage.retrieval.cache", "QueryResultCache"),
    "cosine_similarity": ("modules.storage.chunking.semantic", "cosine_similarity"),
}

_registered = False

__all__ = (
    "AtlasChannelSettings",
    "AtlasKafkaSettings",
    "AtlasMessagingConfig",
    "AtlasSecuritySettings",
    "BatchEmbeddingResult",
    "CacheEntry",
    "ChannelConfig",
    "EmbeddingError",
    "EmbeddingGenerationError",
    "EmbeddingInputType",
    "EmbeddingProviderError",
    "EmbeddingResult",
    "HuggingFaceEmbeddingProvider",
    "Message",
    "NeuralCognitiveBus",
    "NeuralcoreCognitiveBus",
    "NeuralcoreEmbeddingProvider",
    "Plugin",
    "QueryResultCache",
    "SecurityConfig",
    "SubscriberConfig",
    "TokenBucket",
    "adjacent_similarities",
    "best_semantic_match",
    "buffer_similarity",
    "cosine_similarity",
    "load_atlas_messaging",
    "register_with_atlas",
    "semantic_breaks",
    "to_channel_config",
)


def _original(name: str) -> Any:
    module_name, attr = _SWITCHED[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise MissingDependencyError(
            f"NEURALCORE_COMPAT=off asks for ATLAS's own {name}, but {module_name} "
            f"cannot be imported ({err}); unset NEURALCORE_COMPAT to use neuralcore's"
        ) from err
    return getattr(module, attr)


def __getattr__(name: str) -> Any:
    if name in _SWITCHED and not compat_enabled():
        return _original(name)
    target = _OURS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    if target[0].endswith("_atlas_embedding"):
        _register_once()
    return value


def _register_once() -> None:
    global _registered
    if not _registered:
        _registered = True
        from neuralcore.compat._atlas_embedding import register_with_atlas

        register_with_atlas()


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
