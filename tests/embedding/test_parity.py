"""Parity with sentence-transformers itself on the same model folder (real texts)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuralcore._bench.embedding import stdlib_texts
from neuralcore.embedding import EmbeddingEngine
from neuralcore.embedding._convert import calibration_texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    texts = stdlib_texts(300)
    assert len(texts) == 300
    return texts


@pytest.fixture(scope="module")
def st_model(source_dir: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # third-party import-time deprecation notices
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(source_dir), device="cpu")
    assert model.max_seq_length == 256
    return model


def _st_embed(model: Any, texts: list[str]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.encode(texts, batch_size=32), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(st_model: Any, corpus: list[str]) -> np.ndarray:
    return _st_embed(st_model, corpus)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def test_fp32_matches_sentence_transformers(
    engine: EmbeddingEngine, corpus: list[str], reference: np.ndarray
) -> None:
    cos = _cosines(engine.embed(corpus), reference)
    assert cos.min() >= 0.9999, f"worst text: {corpus[int(cos.argmin())][:80]!r}"


@pytest.fixture(scope="module")
def queries(corpus: list[str]) -> list[str]:
    return [t.splitlines()[0] for t in corpus[1::6]]


@pytest.fixture(scope="module")
def exact_top10(st_model: Any, queries: list[str], reference: np.ndarray) -> np.ndarray:
    return np.argsort(-(reference @ _st_embed(st_model, queries).T), axis=0)[:10]


def _check_int8(
    engine: EmbeddingEngine,
    corpus: list[str],
    queries: list[str],
    reference: np.ndarray,
    exact: np.ndarray,
) -> None:
    vectors = engine.embed(corpus)
    cos = _cosines(vectors, reference)
    assert cos.min() >= 0.99, f"worst text: {corpus[int(cos.argmin())][:80]!r}"
    ours = np.argsort(-(vectors @ engine.embed(queries).T), axis=0)[:10]
    overlap = [len(set(exact[:, q]) & set(ours[:, q])) / 10 for q in range(len(queries))]
    assert np.mean(overlap) >= 0.9, f"mean top-10 overlap {np.mean(overlap):.3f}"


def test_int8_stays_close_and_retrieves_the_same(
    engine_int8: EmbeddingEngine,
    corpus: list[str],
    queries: list[str],
    reference: np.ndarray,
    exact_top10: np.ndarray,
) -> None:
    _check_int8(engine_int8, corpus, queries, reference, exact_top10)


def test_openvino_static_int8_stays_close_and_retrieves_the_same(
    engine_openvino_int8: EmbeddingEngine,
    corpus: list[str],
    queries: list[str],
    reference: np.ndarray,
    exact_top10: np.ndarray,
) -> None:
    _check_int8(engine_openvino_int8, corpus, queries, reference, exact_top10)


def test_calibration_texts_are_not_the_parity_or_benchmark_texts() -> None:
    calibration = calibration_texts()
    assert len(calibration) == 500
    assert not set(calibration) & set(stdlib_texts(1000))


def test_openvino_bf16_matches_sentence_transformers(
    model_dir: Path, corpus: list[str], reference: np.ndarray
) -> None:
    pytest.importorskip("openvino", reason="openvino (the openvino extra) not installed")
    engine = EmbeddingEngine(model_dir, runtime="openvino", quantization="bf16")
    cos = _cosines(engine.embed(corpus), reference)
    assert cos.min() >= 0.999, f"worst text: {corpus[int(cos.argmin())][:80]!r}"
