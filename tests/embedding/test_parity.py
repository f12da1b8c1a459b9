"""The parity gate, measured here against sentence-transformers on the same model folder.

The parity set holds prose, code, Markdown, tables, short queries, other languages and
hostile strings (empty, whitespace, emoji, CJK, control and zero-width characters, 5,000
repeated words, 200,000 characters); it shares no text with the calibration set. Every
variant the converted folder can run is measured; the default variant must pass the gate,
the exact variant must reach fp32 parity, and the manifest's record must agree with what
is measured here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuralcore.embedding import EmbeddingEngine, load_model_info
from neuralcore.embedding.parity import (
    benchmark_texts,
    calibration_texts,
    compare,
    hostile_texts,
    parity_queries,
    parity_texts,
)

pytestmark = pytest.mark.slow

GATE_COSINE, GATE_TOP10, EXACT_COSINE = 0.99, 0.95, 0.9999


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return parity_texts()


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
def reference(st_model: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _st_embed(st_model, texts), _st_embed(st_model, parity_queries(texts))


def _measure(model_dir: Path, variant: str, texts: list[str], reference: Any) -> Any:
    engine = EmbeddingEngine(model_dir, variant=variant)
    assert engine.runtime_info.variant == variant
    return compare(engine.embed(texts), engine.embed(parity_queries(texts)), *reference)


def test_parity_set_has_every_kind_of_text(texts: list[str]) -> None:
    assert len(texts) >= 250
    joined = "\n".join(texts)
    assert ">>>" in joined or "def " in joined  # code
    assert "| --- |" in joined or "|---|" in joined  # Markdown tables
    assert any(t.startswith("#") for t in texts)  # Markdown headings
    assert any("+--" in t for t in texts)  # ASCII tables
    assert any(0 < len(t.split()) <= 3 for t in texts)  # short queries
    assert any("\u4e00" <= c <= "\u9fff" for c in joined)  # CJK
    assert any("\u0400" <= c <= "\u04ff" for c in joined)  # Cyrillic
    assert set(hostile_texts()) <= set(texts)
    assert len(parity_queries(texts)) >= 40


def test_parity_and_calibration_sets_are_disjoint(texts: list[str]) -> None:
    calibration = calibration_texts()
    assert len(calibration) >= 200
    assert not set(calibration) & set(texts)
    assert not set(calibration) & set(benchmark_texts(1000))


def test_every_variant_matches_its_manifest_record(
    model_dir: Path, texts: list[str], reference: Any
) -> None:
    info = load_model_info(model_dir)
    assert info.parity, "the converted model has no parity record (was it converted with ST?)"
    report = []
    for variant, row in info.parity.items():
        result = _measure(model_dir, variant, texts, reference)
        passes = result.min_cosine >= GATE_COSINE and result.top10 >= GATE_TOP10
        report.append(f"{variant}: min {result.min_cosine:.5f} top10 {result.top10:.3f}")
        assert result.min_cosine == pytest.approx(row["min_cosine"], abs=2e-3), report
        assert passes == row["passes"], report


def test_default_variant_passes_the_gate(model_dir: Path, texts: list[str], reference: Any) -> None:
    info = load_model_info(model_dir)
    engine = EmbeddingEngine(model_dir)
    assert engine.runtime_info.variant == info.default
    assert engine.runtime_info.chosen_by == "default"
    result = compare(engine.embed(texts), engine.embed(parity_queries(texts)), *reference)
    worst = texts[result.worst][:60]
    assert result.min_cosine >= GATE_COSINE, f"{info.default}: worst {worst!r}"
    assert result.top10 >= GATE_TOP10, f"{info.default}: top-10 overlap {result.top10}"


def test_default_is_the_fastest_passing_variant(model_dir: Path) -> None:
    info = load_model_info(model_dir)
    passing = {n: r["ms_100"] for n, r in info.parity.items() if r["passes"]}
    assert info.default == min(passing, key=passing.__getitem__)
    assert {"fp32", "openvino-int8", "openvino-bf16"} <= set(info.parity)


def test_exact_variant_has_fp32_parity(model_dir: Path, texts: list[str], reference: Any) -> None:
    engine = EmbeddingEngine(model_dir, precision="exact")
    assert engine.runtime_info.variant == load_model_info(model_dir).exact
    result = compare(engine.embed(texts), engine.embed(parity_queries(texts)), *reference)
    assert result.min_cosine >= EXACT_COSINE, texts[result.worst][:60]
    assert result.top10 >= GATE_TOP10


def test_fp32_on_onnx_runtime_is_exact(model_dir: Path, texts: list[str], reference: Any) -> None:
    result = _measure(model_dir, "fp32", texts, reference)
    assert result.min_cosine >= EXACT_COSINE, texts[result.worst][:60]


@pytest.mark.parametrize("variant", ["openvino-int8", "openvino-bf16"])
def test_openvino_variants_pass_the_gate(
    model_dir: Path, texts: list[str], reference: Any, variant: str
) -> None:
    result = _measure(model_dir, variant, texts, reference)
    assert result.min_cosine >= GATE_COSINE, f"worst {texts[result.worst][:60]!r}"
    assert result.top10 >= GATE_TOP10


def test_one_text_at_a_time_passes_the_gate(model_dir: Path, st_model: Any) -> None:
    # a lone short text runs on its own compiled model (one stream of every thread):
    # the same variant, so its vectors must pass the gate as the batches do
    queries = parity_queries(parity_texts())
    texts = [*queries, *hostile_texts(), "?", "This is", "a", " ", "\ud800 lone surrogate"]
    engine = EmbeddingEngine(model_dir)
    alone = np.stack([engine.embed_one(t) for t in texts])
    batched = engine.embed(texts)
    expected = _st_embed(st_model, [t.encode("utf-8", "replace").decode() for t in texts])
    cosines = (alone * expected).sum(axis=1)
    assert cosines.min() >= GATE_COSINE, repr(texts[int(cosines.argmin())][:60])
    # alone and in a batch the int8 graph's bf16 remainder runs at other shapes, so it
    # rounds differently: a fresh conversion measured 0.99985 at worst (the gate is 0.99)
    assert (alone * batched).sum(axis=1).min() > 0.9995
