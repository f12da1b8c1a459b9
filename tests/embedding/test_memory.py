"""ONNX Runtime's arena must not grow without bound across varied input shapes."""

from __future__ import annotations

import random

import pytest

from neuralcore.embedding import EmbeddingEngine

psutil = pytest.importorskip("psutil", reason="psutil (dev extra) measures RSS")


@pytest.mark.slow
def test_rss_is_bounded_over_1000_mixed_batches(engine_int8: EmbeddingEngine) -> None:
    rng = random.Random(3)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "vector",
        "search",
        "engine",
        "token",
        "model",
        "runtime",
    ]

    def batch() -> list[str]:
        # mostly short rows of 1-4 texts, every 40th batch long: many distinct shapes
        longest = 220 if rng.random() < 0.025 else 50
        rows = rng.randint(1, 4)
        return [" ".join(rng.choices(words, k=rng.randint(1, longest))) for _ in range(rows)]

    process = psutil.Process()
    for _ in range(150):  # warm-up: the arena reaches its working size
        engine_int8.embed(batch())
    before = process.memory_info().rss
    # ~200 distinct shapes (1-4 rows x up to ~60 tokens, some ~250): each seen several times
    for _ in range(850):
        engine_int8.embed(batch())
    growth_mb = (process.memory_info().rss - before) / 2**20
    assert growth_mb < 40, f"RSS grew {growth_mb:.1f} MB over 850 batches"
