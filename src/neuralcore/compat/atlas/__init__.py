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
    from neuralcore.compat.atlas._cache import CacheEntry, QueryResultCache
    from neuralcore.compat.atlas._settings import (
        AtlasChannelSettings,
        AtlasKafkaSettings,
        AtlasMessagingConfig,
        AtlasSecuritySettings,
        load_atlas_messaging,
        to_channel_config,
    )
    from neuralcore.compat.atlas._vectors import (
        EmbeddingVector,
        accelerated,
        adjacent_similarities,
        best_semantic_match,
        buffer_similarity,
        cosine_similarity,
        semantic_breaks,
    )
    from neuralcore.compat.atlas.bus._bus import NeuralcoreCognitiveBus
    from neuralcore.compat.atlas.bus._bus import NeuralcoreCognitiveBus as NeuralCognitiveBus
    from neuralcore.compat.atlas.bus._types import (
        ChannelConfig,
        Message,
        Plugin,
        SecurityConfig,
        SubscriberConfig,
        TokenBucket,
    )
    from neuralcore.compat.atlas.embedding._provider import (
        NeuralcoreEmbeddingProvider,
        register_with_atlas,
    )
    from neuralcore.compat.atlas.embedding._provider import (
        NeuralcoreEmbeddingProvider as HuggingFaceEmbeddingProvider,
    )
    from neuralcore.compat.atlas.embedding._types import (
        BatchEmbeddingResult,
        EmbeddingError,
        EmbeddingGenerationError,
        EmbeddingInputType,
        EmbeddingProviderError,
        EmbeddingResult,
    )

_P = "neuralcore.compat.atlas."
_NCB = "core.messaging.NCB"
_BUS, _BUS_TYPES = _P + "bus._bus", _P + "bus._types"
_PROVIDER, _EMB_TYPES = _P + "embedding._provider", _P + "embedding._types"

#: name -> (our module, our name)
_OURS: dict[str, tuple[str, str]] = {
    "NeuralcoreCognitiveBus": (_BUS, "NeuralcoreCognitiveBus"),
    "NeuralCognitiveBus": (_BUS, "NeuralcoreCognitiveBus"),
    **{
        n: (_BUS_TYPES, n)
        for n in ("ChannelConfig", "Message", "Plugin", "SecurityConfig", "SubscriberConfig")
    },
    "TokenBucket": (_BUS_TYPES, "TokenBucket"),
    **{n: (_P + "_cache", n) for n in ("CacheEntry", "QueryResultCache")},
    **{
        n: (_P + "_settings", n)
        for n in (
            "AtlasChannelSettings",
            "AtlasKafkaSettings",
            "AtlasMessagingConfig",
            "AtlasSecuritySettings",
            "load_atlas_messaging",
            "to_channel_config",
        )
    },
    "NeuralcoreEmbeddingProvider": (_PROVIDER, "NeuralcoreEmbeddingProvider"),
    "HuggingFaceEmbeddingProvider": (_PROVIDER, "NeuralcoreEmbeddingProvider"),
    "register_with_atlas": (_PROVIDER, "register_with_atlas"),
    **{
        n: (_EMB_TYPES, n)
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
        n: (_P + "_vectors", n)
        for n in (
            "EmbeddingVector",
            "accelerated",
            "adjacent_similarities",
            "best_semantic_match",
            "buffer_similarity",
            "cosine_similarity",
            "semantic_breaks",
        )
    },
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
    "EmbeddingVector",
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
    "accelerated",
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
    if target[0] == _PROVIDER:
        _register_once()
    return value


def _register_once() -> None:
    global _registered
    if not _registered:
        _registered = True
        from neuralcore.compat.atlas.embedding._provider import register_with_atlas

        register_with_atlas()


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
