"""The OpenVINO runner: word embeddings looked up in numpy, and its two compiled models.

The static int8 graph's word-embedding table is taken out of the graph at load (each
compiled model would keep its own dequantized copy); a call of one batch runs on a
latency model (one stream of all threads), a call of several on the throughput model
(one stream per thread). These tests check that neither changes a vector.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from neuralcore.embedding import EmbeddingEngine
from neuralcore.embedding._session import (
    _WORD_EMBEDDINGS,
    _OpenVinoRunner,
    _split_word_embeddings,
)

TEXTS = [
    "",
    "a short query",
    "def add(a, b):\n    return a + b",
    "| col | value |\n|-----|-------|\n| x   | 1     |",
    "Der schnelle braune Fuchs springt über den faulen Hund. " * 20,
]


def _feeds(engine: EmbeddingEngine, texts: list[str]) -> dict[str, np.ndarray]:
    ids, mask = engine._pad([e.ids for e in engine._encode(texts)])
    return engine._feeds(ids, mask)


def test_split_graph_gives_the_whole_graphs_hidden_states(model_dir: Path) -> None:
    import openvino as ov

    path = model_dir / "model_int8_openvino.xml"
    engine = EmbeddingEngine(model_dir, variant="openvino-int8", threads=1)
    feeds = _feeds(engine, TEXTS)
    config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    whole = ov.Core().compile_model(str(path), "CPU", config)
    expected = whole.create_infer_request().infer(feeds)[0]

    model = ov.Core().read_model(str(path))
    lookup = _split_word_embeddings(model)
    assert lookup is not None  # the static int8 graph's table is int8
    assert _WORD_EMBEDDINGS in {n for i in model.inputs for n in i.get_names()}
    split = ov.Core().compile_model(model, "CPU", config)
    got = split.create_infer_request().infer(
        {**feeds, _WORD_EMBEDDINGS: lookup(feeds["input_ids"])}
    )
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-5)


def test_graph_without_an_int8_table_is_left_whole(model_dir: Path) -> None:
    import openvino as ov

    model = ov.Core().read_model(str(model_dir / "model.onnx"))  # fp32 table
    before = len(model.inputs)
    assert _split_word_embeddings(model) is None
    assert len(model.inputs) == before


@pytest.mark.parametrize("threads", [1, 2])
def test_one_batch_and_many_batches_give_the_same_vectors(model_dir: Path, threads: int) -> None:
    # batch_tokens=64: the long text is a batch of its own, so TEXTS runs as several batches
    engine = EmbeddingEngine(model_dir, variant="openvino-int8", threads=threads, batch_tokens=64)
    runner = engine._runner
    assert isinstance(runner, _OpenVinoRunner)
    assert "input_ids" in runner.inputs
    assert _WORD_EMBEDDINGS not in runner.inputs
    together = engine.embed(TEXTS)
    alone = np.stack([engine.embed_one(t) for t in TEXTS])
    assert (alone * together).sum(axis=1).min() > 0.9999
    # lone batches ran on the latency model; several batches on the streams (2 threads)
    assert runner._latency is not None
    assert bool(runner._requests) == (threads == 2)  # the streams' model, compiled on use


def test_exact_variant_runs_on_streams_only(model_dir: Path) -> None:
    engine = EmbeddingEngine(model_dir, variant="openvino-bf16", threads=2)
    runner = engine._runner
    assert isinstance(runner, _OpenVinoRunner)
    # the fp32 graph keeps its table: one compiled model, a lone batch on one stream
    assert runner._latency is None
    assert runner._requests  # compiled at load
    vectors = engine.embed(TEXTS)
    alone = np.stack([engine.embed_one(t) for t in TEXTS])
    assert (alone * vectors).sum(axis=1).min() > 0.9999


def _bad_feeds(runner: _OpenVinoRunner, rows: int, tokens: int) -> dict[str, np.ndarray]:
    """Input ids longer than the model's 512 positions: the runtime's shape check fails."""
    ids = np.full((rows, tokens), 1000, dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    feeds["token_type_ids"] = np.zeros_like(ids)
    return {n: feeds[n] for n in runner.inputs}


@pytest.mark.parametrize("variant", ["openvino-int8-bf16", "openvino-bf16"])
def test_a_failed_inference_leaves_no_stale_vectors(model_dir: Path, variant: str) -> None:
    # a request that failed keeps its last output, and its compiled graph keeps half
    # updated shapes (the next call of the previous shape failed too, in any request)
    engine = EmbeddingEngine(model_dir, variant=variant, threads=2, batch_tokens=64)
    runner = engine._runner
    assert isinstance(runner, _OpenVinoRunner)
    reference = EmbeddingEngine(model_dir, variant=variant, threads=2, batch_tokens=64)
    expected_one = reference.embed(["a short query"])
    expected_many = reference.embed(TEXTS)
    before = engine.embed(["something else entirely"])  # the request's last output
    assert (before @ expected_one.T).item() < 0.9
    for batches in ([(1, 600)], [(3, 600), (2, 16)], [(2, 16), (1, 700)], [(1, 513)]):
        with pytest.raises(RuntimeError):  # the engine wraps it as ModelError
            list(runner.run_many(_bad_feeds(runner, *b) for b in batches))
        one = engine.embed(["a short query"])
        assert (one @ expected_one.T).item() > 0.9999, batches
        many = engine.embed(TEXTS)
        assert (many * expected_many).sum(axis=1).min() > 0.9999, batches


def test_output_of_the_wrong_shape_is_refused(model_dir: Path) -> None:
    from neuralcore.embedding._session import _check_output
    from neuralcore.errors import ModelError

    feeds = {"input_ids": np.zeros((2, 16), dtype=np.int64)}
    _check_output(np.zeros((2, 16, 384), dtype=np.float32), feeds)
    for shape in [(1, 16, 384), (2, 32, 384), (2, 16)]:
        with pytest.raises(ModelError, match="shape"):
            _check_output(np.zeros(shape, dtype=np.float32), feeds)


def test_one_text_from_threads_and_asyncio_at_once(model_dir: Path) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    engine = EmbeddingEngine(model_dir, threads=2)
    texts = [f"query number {i} about {w}" for i, w in enumerate(["cats", "tax", "code"] * 8)]
    expected = EmbeddingEngine(model_dir, threads=2).embed(texts)
    with ThreadPoolExecutor(8) as pool:
        got = np.stack(list(pool.map(engine.embed_one, texts)))

    async def gather() -> list[np.ndarray]:
        return await asyncio.gather(*(engine.embed_async([t]) for t in texts))

    got_async = np.concatenate(asyncio.run(gather()))
    assert (got * expected).sum(axis=1).min() > 0.9999
    assert (got_async * expected).sum(axis=1).min() > 0.9999


def test_padding_widths_grow_with_the_width_and_stay_few(model_dir: Path) -> None:
    engine = EmbeddingEngine(model_dir, variant="openvino-int8-bf16", max_length=256)
    widths = {w: engine._pad([[1] * w])[0].shape[1] for w in range(1, 257)}
    assert all(w <= p <= 256 for w, p in widths.items())
    assert all(p - w < (4 if w <= 32 else 8 if w <= 64 else 16) for w, p in widths.items())
    assert len(set(widths.values())) == 24  # 4..32 by 4, 40..64 by 8, 80..256 by 16
    fp32 = EmbeddingEngine(model_dir, variant="fp32")  # ONNX Runtime: no padding beyond the row
    assert fp32._pad([[1] * 9, [1] * 3])[0].shape == (2, 9)


@pytest.mark.parametrize(
    ("variant", "name"),
    [("openvino-int8-bf16", "model_int8_openvino.bin"), ("openvino-bf16", "model.onnx")],
)
def test_a_recompile_checks_the_files_again(model_copy: Path, variant: str, name: str) -> None:
    from neuralcore.errors import ModelError

    original = (model_copy / name).resolve()
    engine = EmbeddingEngine(model_copy, variant=variant, threads=2, batch_tokens=64)
    runner = engine._runner
    assert isinstance(runner, _OpenVinoRunner)
    expected = engine.embed(TEXTS)  # every model compiled (the split graph is then dropped)
    assert runner._model is None or isinstance(runner._model, str)
    damaged = bytearray(original.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (model_copy / name).unlink()  # a new file (the old one stays mapped where it is in use)
    (model_copy / name).write_bytes(bytes(damaged))
    with pytest.raises(RuntimeError):  # the failed model is discarded
        list(runner.run_many([_bad_feeds(runner, 1, 600)]))
    for _ in range(2):  # compiled afresh only from files that match the manifest
        with pytest.raises(ModelError, match=re.escape(name)):
            engine.embed(["a short query"])
    (model_copy / name).unlink()  # the original back: the next call compiles and matches
    (model_copy / name).symlink_to(original)
    assert (engine.embed(TEXTS) * expected).sum(axis=1).min() > 0.9999


def test_word_embeddings_are_looked_up_into_the_requests_own_tensor(model_dir: Path) -> None:
    # a float32 array of the batch's size (plus an int8 one) built in numpy and then
    # copied into the request (share_inputs=False) raised peak memory with batch_tokens
    import tracemalloc

    engine = EmbeddingEngine(model_dir, variant="openvino-int8-bf16", threads=2)
    runner = engine._runner
    assert isinstance(runner, _OpenVinoRunner)
    texts = [f"{i} " + "cat dog " * 120 for i in range(16)]
    expected = np.stack([engine.embed_one(t) for t in texts])
    feeds = _feeds(engine, texts)
    batch_bytes = feeds["input_ids"].size * 384 * 4  # 16 x 256 x 384 float32: 6.3 MB
    for batches in ([feeds], [feeds, feeds, feeds]):  # the latency model, then the streams
        tracemalloc.start()
        try:
            for hidden in runner.run_many(batches):
                assert hidden.shape == (*feeds["input_ids"].shape, 384)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < batch_bytes / 8, f"{peak / 2**20:.1f} MB allocated for one batch"
    assert (engine.embed(texts) * expected).sum(axis=1).min() > 0.9999


@pytest.mark.parametrize("variant", ["openvino-int8-bf16", "openvino-bf16"])
def test_streams_reported_are_the_streams_openvino_made(model_dir: Path, variant: str) -> None:
    # threads beyond the cores: OpenVINO makes no more streams than cores (8 -> 2 here);
    # runtime_info and the description said the thread count
    from neuralcore.core import usable_cores

    threads = usable_cores() + 6
    engine = EmbeddingEngine(model_dir, variant=variant, threads=threads, batch_tokens=64)
    runner = engine._runner
    assert isinstance(runner, _OpenVinoRunner)
    assert engine.runtime_info.threads == threads
    assert engine.runtime_info.streams <= usable_cores()
    engine.embed([f"filler text {i} about queues " * 5 for i in range(40)])  # the streams
    made = len(runner._requests)
    assert made >= 1
    assert engine.runtime_info.streams == made == runner.streams
    assert f"{made} streams" in runner.description
    assert f"{threads} streams" not in runner.description
