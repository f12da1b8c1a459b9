"""The public surface is pinned: a name cannot appear or vanish by accident."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import neuralcore

EXPECTED = {
    # engines
    "EmbeddingEngine", "VectorOps", "MessageBus", "HNSWIndex",
    # vectors
    "cosine_similarity", "cosine_distance", "dot", "euclidean_distance",
    "sqeuclidean_distance", "normalize", "top_k",
    # embedding
    "EmbeddingCache", "EmbeddingConfig", "ModelInfo", "convert_model",
    # messaging
    "BusConfig", "ChannelConfig", "DeadLetter", "Message", "Priority", "Subscription",
    # core
    "BackendInfo", "backend_info", "__version__",
    "NeuralcoreError", "ConfigError", "InvalidInputError", "DimensionMismatchError",
    "NonFiniteError", "InputTypeError", "MissingDependencyError", "IndexFileError",
    "KeyNotFoundError", "ModelError", "ModelNotFoundError", "SerializationError",
    "MessagingError", "ChannelNotFoundError", "BusClosedError", "QueueFullError",
    "RateLimitedError", "AuthorizationError", "RequestTimeoutError", "PersistenceError",
    "BridgeConnectionError",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(neuralcore.__all__) == EXPECTED
    assert len(neuralcore.__all__) == len(EXPECTED)


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in neuralcore.__all__:
        value = getattr(neuralcore, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_import_is_cheap() -> None:
    code = (
        "import sys, json, neuralcore; "
        "print(json.dumps(sorted(m for m in ('numpy', 'onnxruntime', 'msgspec', 'redis', "
        "'confluent_kafka', 'torch', 'tokenizers', 'hnswlib', 'sqlite3') if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        neuralcore.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
