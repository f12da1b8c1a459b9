"""The public surface of neuralcore.compat is pinned, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import neuralcore.compat
import neuralcore.compat.atlas as atlas

ATLAS_NAMES = (
    "AtlasChannelSettings", "AtlasKafkaSettings", "AtlasMessagingConfig", "AtlasSecuritySettings",
    "BatchEmbeddingResult", "CacheEntry", "ChannelConfig", "EmbeddingError",
    "EmbeddingGenerationError", "EmbeddingInputType", "EmbeddingProviderError", "EmbeddingResult",
    "EmbeddingVector", "HuggingFaceEmbeddingProvider", "Message", "NeuralCognitiveBus",
    "NeuralcoreCognitiveBus", "NeuralcoreEmbeddingProvider", "Plugin", "QueryResultCache",
    "SecurityConfig", "SubscriberConfig", "TokenBucket", "accelerated", "adjacent_similarities",
    "best_semantic_match", "buffer_similarity", "cosine_similarity", "load_atlas_messaging",
    "register_with_atlas", "semantic_breaks", "to_channel_config",
)  # fmt: skip


def test_exported_names_are_pinned() -> None:
    assert atlas.__all__ == ATLAS_NAMES
    assert neuralcore.compat.__all__ == ("ENV_VAR", "compat_enabled")


def test_every_exported_name_resolves() -> None:
    for name in atlas.__all__:
        assert getattr(atlas, name) is not None, name


def test_import_loads_nothing_heavy() -> None:
    code = (
        "import sys, neuralcore.compat, neuralcore.compat.atlas\n"
        "heavy = {'numpy', 'onnxruntime', 'redis', 'confluent_kafka', 'sqlite3', 'yaml'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
