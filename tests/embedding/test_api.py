"""The public names of neuralcore.embedding are pinned."""

import neuralcore.embedding


def test_public_names_are_pinned() -> None:
    assert neuralcore.embedding.__all__ == (
        "KNOWN_MODELS",
        "CacheStats",
        "EmbeddingCache",
        "EmbeddingConfig",
        "EmbeddingEngine",
        "KnownModel",
        "ModelInfo",
        "RuntimeInfo",
        "convert_model",
        "neuralcore_home",
    )
    for name in neuralcore.embedding.__all__:
        assert getattr(neuralcore.embedding, name) is not None


def test_known_models_cover_the_issue_list() -> None:
    assert set(neuralcore.embedding.KNOWN_MODELS) == {
        "all-MiniLM-L6-v2",
        "all-mpnet-base-v2",
        "bge-small-en-v1.5",
        "bge-base-en-v1.5",
        "e5-small-v2",
    }
