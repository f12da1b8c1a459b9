"""EmbeddingEngine behaviour on the real converted all-MiniLM-L6-v2."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from neuralcore.core import (
    ConfigError,
    InputTypeError,
    MissingDependencyError,
    ModelError,
    usable_cores,
)
from neuralcore.embedding import EmbeddingCache, EmbeddingConfig, EmbeddingEngine, RuntimeInfo

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Return the number of items in a container.",
    "a",
    "Open file and return a stream. Raise OSError upon failure." * 5,
    "Embeddings map text to vectors so that similar meanings land close together.",
]


def _runtime_of(variant: str) -> str:
    """The runtime a variant names (``openvino-*`` on OpenVINO, the rest on ONNX Runtime)."""
    return "openvino" if variant.startswith("openvino") else "onnxruntime"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.asarray((a * b).sum(axis=-1))


def test_embed_returns_unit_float32_rows(engine: EmbeddingEngine) -> None:
    vectors = engine.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert engine.dimension == 384


def test_similar_texts_are_closer_than_unrelated(engine: EmbeddingEngine) -> None:
    a, b, c = engine.embed(["A cat sits on the mat.", "A kitten rests on a rug.", "Tax law."])
    assert a @ b > a @ c + 0.2


def test_batch_result_matches_one_by_one(engine: EmbeddingEngine) -> None:
    batch = engine.embed(TEXTS)
    single = np.stack([engine.embed_one(t) for t in TEXTS])
    assert _cos(batch, single).min() > 0.99999


def test_input_order_survives_length_sorting(engine: EmbeddingEngine) -> None:
    order = [3, 0, 4, 2, 1]
    shuffled = engine.embed([TEXTS[i] for i in order])
    np.testing.assert_allclose(shuffled, engine.embed(TEXTS)[order], atol=1e-5)


@pytest.mark.parametrize("budget", [1, 64, 100_000])
def test_batch_budget_does_not_change_vectors(model_dir: Path, budget: int) -> None:
    reference = EmbeddingEngine(model_dir, batch_tokens=4096).embed(TEXTS)
    vectors = EmbeddingEngine(model_dir, batch_tokens=budget).embed(TEXTS)
    assert _cos(vectors, reference).min() > 0.99999


def test_empty_inputs(engine: EmbeddingEngine) -> None:
    assert engine.embed([]).shape == (0, 384)
    assert engine.embed([]).dtype == np.float32
    empty = engine.embed_one("")
    assert empty.shape == (384,)
    assert np.isfinite(empty).all()
    assert abs(float(np.linalg.norm(empty)) - 1.0) < 1e-5


@pytest.mark.parametrize(
    ("texts", "index", "kind"),
    [(["ok", 3], 1, "int"), ([None], 0, "NoneType"), (["a", "b", b"c"], 2, "bytes")],
)
def test_non_str_items_name_the_index(
    engine: EmbeddingEngine, texts: list[object], index: int, kind: str
) -> None:
    with pytest.raises(InputTypeError, match=rf"texts\[{index}\] must be str, got {kind}"):
        engine.embed(texts)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine.embed_queries(texts)  # type: ignore[arg-type]


def test_a_single_string_is_refused(engine: EmbeddingEngine) -> None:
    with pytest.raises(InputTypeError, match="embed_one"):
        engine.embed("hello")
    with pytest.raises(InputTypeError, match="got int"):
        engine.embed_one(5)  # type: ignore[arg-type]


def test_megabyte_text_is_truncated_quickly(engine: EmbeddingEngine) -> None:
    words = " ".join(f"word{i % 97}" for i in range(200_000))[: 1 << 20]
    start = time.perf_counter()
    big = engine.embed_one(words)
    assert time.perf_counter() - start < 5.0
    # truncation at 256 tokens: the first few thousand characters decide the vector
    assert _cos(big, engine.embed_one(words[:5000])) > 0.9999


@pytest.mark.parametrize(
    "text",
    [
        "broken \udcff\udcfe bytes",  # undecodable bytes kept by surrogateescape
        "control \x00\x01\x07\x1b chars\r\n\t",
        "emoji 😀🎉👍🏽 and flags 🇫🇷",
        "中文文本嵌入测试 日本語のテキスト 한국어",
        "\u200b\u200d\ufeff",
    ],
)
def test_odd_text_gives_a_valid_vector(engine: EmbeddingEngine, text: str) -> None:
    vector = engine.embed_one(text)
    assert vector.shape == (384,)
    assert np.isfinite(vector).all()
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_max_length_is_configurable(model_dir: Path, engine: EmbeddingEngine) -> None:
    long_text = TEXTS[3] * 4
    short = EmbeddingEngine(model_dir, max_length=16)
    assert _cos(short.embed_one(long_text), engine.embed_one(long_text)) < 0.99
    # the truncated vector is the vector of the truncated text
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(16)
    head = tokenizer.decode(tokenizer.encode(long_text).ids)
    assert _cos(short.embed_one(long_text), engine.embed_one(head)) > 0.999


def test_output_dims_truncate_and_renormalise(model_dir: Path, engine: EmbeddingEngine) -> None:
    small = EmbeddingEngine(model_dir, variant="fp32", output_dims=128)
    vectors = small.embed(TEXTS)
    assert vectors.shape == (5, 128)
    assert small.dimension == 128
    full = engine.embed(TEXTS)[:, :128]
    np.testing.assert_allclose(vectors, full / np.linalg.norm(full, axis=1, keepdims=True), 1e-5)
    with pytest.raises(ConfigError, match="output_dims"):
        EmbeddingEngine(model_dir, output_dims=1000)


def test_output_dtypes(model_dir: Path, engine: EmbeddingEngine) -> None:
    full = engine.embed(TEXTS)
    half = EmbeddingEngine(model_dir, variant="fp32", output_dtype="float16").embed(TEXTS)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, full, atol=1e-3)
    int8 = EmbeddingEngine(model_dir, variant="fp32", output_dtype="int8").embed(TEXTS)
    assert int8.dtype == np.int8
    np.testing.assert_allclose(int8 / 127.0, full, atol=0.5 / 127 + 1e-6)
    binary = EmbeddingEngine(model_dir, variant="fp32", output_dtype="binary").embed(TEXTS)
    assert (binary.dtype, binary.shape) == (np.uint8, (5, 48))
    np.testing.assert_array_equal(np.unpackbits(binary, axis=1).astype(bool), full > 0)


def test_normalize_can_be_turned_off(model_dir: Path, engine: EmbeddingEngine) -> None:
    raw = EmbeddingEngine(model_dir, variant="fp32", normalize=False).embed(TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert _cos(raw, engine.embed(TEXTS)).min() > 0.99999


def test_query_and_document_prefixes(model_copy: Path, engine: EmbeddingEngine) -> None:
    manifest = json.loads((model_copy / "neuralcore.json").read_text())
    manifest.update(query_prefix="query: ", document_prefix="passage: ")
    (model_copy / "neuralcore.json").write_text(json.dumps(manifest))
    prefixed = EmbeddingEngine(model_copy, variant="fp32")
    np.testing.assert_allclose(
        prefixed.embed_queries(["red apples"]), engine.embed(["query: red apples"]), atol=1e-5
    )
    np.testing.assert_allclose(
        prefixed.embed_documents(["red apples"]), engine.embed(["passage: red apples"]), atol=1e-5
    )
    # all-MiniLM-L6-v2 itself is symmetric: no prefix
    np.testing.assert_allclose(engine.embed_queries(TEXTS), engine.embed(TEXTS), atol=1e-6)


def test_embed_iter_streams_in_order(engine: EmbeddingEngine) -> None:
    chunks = list(engine.embed_iter(iter(TEXTS), chunk_size=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    np.testing.assert_allclose(np.concatenate(chunks), engine.embed(TEXTS), atol=1e-5)
    endless = (f"text number {i}" for i in itertools.count())
    first = list(itertools.islice(engine.embed_iter(endless, chunk_size=3), 2))
    assert [c.shape for c in first] == [(3, 384), (3, 384)]
    with pytest.raises(InputTypeError, match=r"texts\[4\]"):
        list(engine.embed_iter(["a", "b", "c", "d", 5], chunk_size=2))  # type: ignore[list-item]
    with pytest.raises(InputTypeError, match="chunk_size"):
        list(engine.embed_iter(TEXTS, chunk_size=0))


async def test_embed_async_does_not_block_the_loop(engine: EmbeddingEngine) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    vectors = await engine.embed_async(TEXTS * 40)
    elapsed = time.perf_counter() - start
    task.cancel()
    assert vectors.shape == (200, 384)
    np.testing.assert_allclose(vectors[:5], engine.embed(TEXTS), atol=1e-5)
    assert ticks >= max(2, int(elapsed / 0.005 / 4))  # the loop kept turning meanwhile


async def test_concurrent_tasks_get_their_own_vectors(engine: EmbeddingEngine) -> None:
    groups = [[f"{t} ({i})" for t in TEXTS[: 1 + i % 5]] for i in range(12)]
    results = await asyncio.gather(*(engine.embed_async(g) for g in groups))
    for group, result in zip(groups, results, strict=True):
        assert _cos(result, engine.embed(group)).min() > 0.99999


def test_threads_share_one_engine_safely(engine: EmbeddingEngine) -> None:
    groups = [[f"thread {i} says {t}" for t in TEXTS[: 1 + i % 5]] for i in range(16)]
    expected = [engine.embed(g) for g in groups]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(worker, len(groups), 8):
            results[i] = engine.embed(groups[i])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        assert _cos(results[i], want).min() > 0.99999


def test_cache_returns_the_same_vectors_and_counts_hits(model_dir: Path) -> None:
    engine = EmbeddingEngine(model_dir, variant="fp32")
    first = engine.embed(TEXTS, cache=True)
    assert engine.cache.stats().misses == 5
    second = engine.embed([*TEXTS, "new text"], cache=True)
    np.testing.assert_array_equal(second[:5], first)
    stats = engine.cache.stats()
    assert (stats.hits, stats.misses, stats.size) == (5, 6, 6)
    np.testing.assert_allclose(second, engine.embed([*TEXTS, "new text"]), atol=1e-6)


def test_a_non_unit_cached_row_is_recomputed_by_a_normalising_engine(
    model_dir: Path, tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "cache.sqlite"
    engine = EmbeddingEngine(model_dir, variant="fp32", cache=EmbeddingCache(path=path))
    first = engine.embed(["alpha"], cache=True)
    engine.cache.close()
    with sqlite3.connect(path) as db:  # the row halved: finite, the right size, not unit
        (count,) = db.execute("SELECT count(*) FROM vectors").fetchone()
        assert count == 1
        db.execute("UPDATE vectors SET vector = ?", ((0.5 * first[0]).tobytes(),))
    again = EmbeddingEngine(model_dir, variant="fp32", cache=EmbeddingCache(path=path))
    np.testing.assert_allclose(again.embed(["alpha"], cache=True), first, atol=1e-6)
    stats = again.cache.stats()
    assert (stats.damaged, stats.hits) == (1, 0)


@pytest.mark.parametrize("cache", [{}, "x", [], 3])
def test_a_cache_of_the_wrong_type_is_a_config_error(model_dir: Path, cache: object) -> None:
    with pytest.raises(ConfigError, match=rf"'cache' = .*{type(cache).__name__}"):
        EmbeddingEngine(model_dir, variant="fp32", cache=cache)  # type: ignore[arg-type]


def test_from_config_and_yaml(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "embed.yaml"
    path.write_text(f"embedding:\n  model: {model_dir}\n  output_dims: 64\n  cache_size: 3\n")
    config = EmbeddingConfig.from_yaml(path, section="embedding")
    engine = EmbeddingEngine.from_config(config)
    assert engine.embed(TEXTS, cache=True).shape == (5, 64)
    assert engine.cache.stats().size == 3
    with pytest.raises(ConfigError, match=r"embedding\.threads"):
        EmbeddingConfig.from_dict({"threads": 0}, path="embedding")
    with pytest.raises(ConfigError, match="quantization"):
        EmbeddingConfig.from_dict({"quantization": "int4"})


def test_threads_default_to_usable_cores(engine: EmbeddingEngine, model_dir: Path) -> None:
    import os

    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))
    assert engine.runtime_info.threads == usable_cores()
    assert EmbeddingEngine(model_dir, threads=1).runtime_info.threads == 1


def test_cuda_request_falls_back_to_cpu_with_a_message(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu present: no fallback to observe")
    with caplog.at_level(logging.WARNING, logger="neuralcore.embedding._session"):
        engine = EmbeddingEngine(model_dir, variant="fp32", device="cuda")
    assert "falling back to CPU" in caplog.text
    assert engine.embed_one("still works").shape == (384,)


def test_missing_onnxruntime_names_the_extra(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neuralcore

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"neuralcore-runtime\[embedding\]"):
        EmbeddingEngine(model_dir, variant="fp32")
    info = neuralcore.backend_info()["embedding"]
    assert "embedding" in info.detail
    assert info.library == "none"


def test_backend_info_reports_the_default_variant(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neuralcore
    from neuralcore.embedding import load_model_info

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "all-MiniLM-L6-v2").symlink_to(model_dir)
    monkeypatch.setenv("NEURALCORE_HOME", str(tmp_path))
    default = load_model_info(model_dir).default
    info = neuralcore.backend_info()["embedding"]
    assert (info.backend, info.library) == ("native", _runtime_of(default))
    assert f"default variant {default} of all-MiniLM-L6-v2" in info.detail
    assert "min cosine" in info.detail


def test_importing_the_package_loads_no_onnxruntime() -> None:
    code = (
        "import sys, neuralcore.embedding; "
        "print(sorted(m for m in ('onnxruntime', 'torch', 'tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runtime_and_precision_combinations_are_checked(model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="bf16"):
        EmbeddingEngine(model_dir, quantization="bf16", runtime="onnxruntime")
    with pytest.raises(ConfigError, match="variant"):
        EmbeddingEngine(model_dir, variant="int4")
    with pytest.raises(ConfigError, match="variant"):
        EmbeddingEngine(model_dir, variant="fp32", quantization="int8")
    with pytest.raises(ConfigError, match="quantization"):
        EmbeddingEngine(model_dir, precision="exact", quantization="int8")
    with pytest.raises(ConfigError, match="precision"):
        EmbeddingConfig.from_dict({"precision": "fast"})
    with pytest.raises(ConfigError, match="fp16"):
        EmbeddingEngine(model_dir, quantization="fp16", runtime="openvino")
    with pytest.raises(ConfigError, match="runtime"):
        EmbeddingConfig.from_dict({"runtime": "tensorrt"})


@pytest.fixture(scope="module")
def engine_openvino(model_dir: Path) -> EmbeddingEngine:
    return EmbeddingEngine(model_dir, runtime="openvino", quantization="bf16")


def test_openvino_bf16_agrees_with_fp32(
    engine_openvino: EmbeddingEngine, engine: EmbeddingEngine
) -> None:
    assert "openvino" in repr(engine_openvino)
    vectors = engine_openvino.embed(TEXTS)
    assert vectors.dtype == np.float32
    assert _cos(vectors, engine.embed(TEXTS)).min() > 0.999
    assert engine_openvino.embed([]).shape == (0, 384)


def test_openvino_refuses_cuda_and_foreign_files(model_copy: Path) -> None:
    with pytest.raises(ConfigError, match="CPU only"):
        EmbeddingEngine(model_copy, runtime="openvino", device="cuda")
    (model_copy / "model.onnx").unlink()
    (model_copy / "model.onnx").write_bytes(b"garbage" * 100)
    manifest = json.loads((model_copy / "neuralcore.json").read_text())
    manifest["files"]["model.onnx"] = hashlib.sha256(b"garbage" * 100).hexdigest()
    (model_copy / "neuralcore.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"OpenVINO cannot load model file .*model\.onnx"):
        EmbeddingEngine(model_copy, runtime="openvino")


def test_openvino_static_int8_agrees_with_fp32(
    engine_openvino_int8: EmbeddingEngine, engine: EmbeddingEngine
) -> None:
    assert "variant='openvino-int8'" in repr(engine_openvino_int8)
    vectors = engine_openvino_int8.embed(TEXTS)
    assert (vectors.dtype, vectors.shape) == (np.float32, (5, 384))
    # parity on every kind of text is in test_parity.py
    assert _cos(vectors, engine.embed(TEXTS)).min() > 0.99
    assert engine_openvino_int8.embed([]).shape == (0, 384)
    # ranges are fixed at conversion: a text's vector does not depend on its batch
    alone = np.stack([engine_openvino_int8.embed_one(t) for t in TEXTS])
    assert _cos(alone, vectors).min() > 0.9999


def test_openvino_static_int8_has_its_own_cache_entries(model_dir: Path) -> None:
    cache = EmbeddingCache()  # shared by the two engines
    openvino_int8 = EmbeddingEngine(model_dir, variant="openvino-int8", cache=cache)
    dynamic_int8 = EmbeddingEngine(model_dir, variant="int8", cache=cache)
    text = ["the same text, two variants"]
    a = openvino_int8.embed(text, cache=True)
    b = dynamic_int8.embed(text, cache=True)
    assert cache.stats().misses == 2  # the second engine did not reuse the first's entry
    assert not np.array_equal(a, b)


def test_default_engine_reports_what_runs(default_engine: EmbeddingEngine) -> None:
    info = default_engine.runtime_info
    assert isinstance(info, RuntimeInfo)
    assert info.variant == default_engine.model_info.default
    assert (info.runtime, info.chosen_by, info.device) == (
        _runtime_of(info.variant),
        "default",
        "cpu",
    )
    assert info.threads == usable_cores()
    # OpenVINO: one stream per thread, each batch on one; ONNX Runtime: one stream
    assert info.streams == (info.threads if info.runtime == "openvino" else 1)
    assert info.version
    assert info.variant in repr(default_engine)
    with pytest.raises(AttributeError):
        info.variant = "fp32"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "variant"),
    [
        ({"quantization": "int8"}, "int8"),
        ({"runtime": "openvino"}, "openvino-fp32"),
        ({"quantization": "bf16"}, "openvino-bf16"),
        ({"quantization": "int8", "runtime": "openvino"}, "openvino-int8"),
        ({"variant": "openvino-int8-bf16"}, "openvino-int8-bf16"),
    ],
)
def test_explicit_settings_pick_the_variant(
    model_dir: Path, kwargs: dict[str, str], variant: str
) -> None:
    info = EmbeddingEngine(model_dir, **kwargs).runtime_info  # type: ignore[arg-type]
    assert (info.variant, info.chosen_by) == (variant, "explicit")


def test_default_variant_falls_back_without_openvino(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = json.loads((model_copy / "neuralcore.json").read_text())
    manifest.update(default="openvino-int8", exact="fp32")
    (model_copy / "neuralcore.json").write_text(json.dumps(manifest))
    monkeypatch.setitem(sys.modules, "openvino", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a)
    )
    with caplog.at_level(logging.WARNING):
        engine = EmbeddingEngine(model_copy)
    assert engine.runtime_info.variant == "fp32"
    assert "needs OpenVINO" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threads": 10**6}, "threads"),
        ({"threads": 0}, "threads"),
        ({"batch_tokens": 10**12}, "batch_tokens"),
        ({"max_length": 10**9}, "max_length"),
        ({"output_dims": 10**9}, "output_dims"),
        ({"threads": "2"}, "threads"),
        ({"threads": True}, "threads"),
    ],
)
def test_huge_or_wrong_counts_are_config_errors(
    model_dir: Path, kwargs: dict[str, object], field: str
) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=field):
        EmbeddingEngine(model_dir, **kwargs)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 5


def test_none_model_and_none_texts_are_type_errors(engine: EmbeddingEngine) -> None:
    with pytest.raises(InputTypeError, match="model must be"):
        EmbeddingEngine(None)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="NoneType"):
        list(engine.embed_iter(None))  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="NoneType"):
        engine.embed(None)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="EmbeddingConfig"):
        EmbeddingEngine.from_config(None)  # type: ignore[arg-type]


def test_lone_surrogates_are_replaced_deterministically(engine: EmbeddingEngine) -> None:
    broken = "caf\udce9 au lait"  # what os.fsdecode makes of undecodable bytes
    first = engine.embed([broken, "ok"])
    again = engine.embed([broken])
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_allclose(first[0], engine.embed_one("caf? au lait"), atol=1e-6)
    assert np.isfinite(first).all()


@pytest.mark.parametrize("max_length", [513, 1024, 65_536])
def test_max_length_beyond_the_position_limit_is_refused_at_construction(
    model_dir: Path, max_length: int
) -> None:
    with pytest.raises(ModelError, match=f"max_length={max_length}.*position limit.*512"):
        EmbeddingEngine(model_dir, max_length=max_length)


def test_max_length_at_the_position_limit_embeds_long_text(model_dir: Path) -> None:
    engine = EmbeddingEngine(model_dir, max_length=512)
    vectors = engine.embed(["word " * 5_000, "short"])
    assert vectors.shape == (2, 384)
    assert np.isfinite(vectors).all()
