"""The ATLAS-compatible embedding provider: interface, result types, registry, real model."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuralcore.compat.atlas import (
    BatchEmbeddingResult,
    EmbeddingGenerationError,
    EmbeddingInputType,
    EmbeddingProviderError,
    EmbeddingResult,
    NeuralcoreEmbeddingProvider,
    register_with_atlas,
)
from neuralcore.core import InvalidInputError, ModelNotFoundError, NeuralcoreError


class FakeInfo:
    max_length = 128
    query_prefix = "query: "
    document_prefix = "passage: "


class FakeEngine:
    """Records calls; vector = [len(text), kind code, 1.0] per text."""

    dimension = 3
    model_info = FakeInfo()

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = fail

    def _vecs(self, kind: str, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        self.calls.append((kind, list(texts)))
        if self.fail:
            raise InvalidInputError("bad text")
        code = {"plain": 0.0, "query": 1.0, "doc": 2.0}[kind]
        return np.array([[len(t), code, 1.0] for t in texts], dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        return self._vecs("plain", texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        return self._vecs("query", texts)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        return self._vecs("doc", texts)


def test_result_types_have_atlas_fields() -> None:
    r = EmbeddingResult(embedding=[0.1, 0.2, 0.3], text="t", model="m", token_count=5)
    assert (r.dimension, r.token_count, r.metadata) == (3, 5, {})
    batch = BatchEmbeddingResult(embeddings=[r, r], model="m", total_tokens=10)
    assert len(batch) == 2
    assert [x.text for x in batch] == ["t", "t"]
    assert batch[1] is r
    assert batch.vectors == [[0.1, 0.2, 0.3]] * 2
    assert EmbeddingInputType.QUERY.value == "search_query"
    assert EmbeddingInputType("clustering") is EmbeddingInputType.CLUSTERING


def test_properties_before_and_after_init() -> None:
    p = NeuralcoreEmbeddingProvider(model="all-MiniLM-L6-v2", batch_size=8)
    assert (p.name, p.model_name, p.dimension, p.max_batch_size) == (
        "huggingface",
        "all-MiniLM-L6-v2",
        384,
        8,
    )
    assert p.supports_batch
    assert not p.is_initialized
    engine = FakeEngine()
    q = NeuralcoreEmbeddingProvider(engine=engine)
    assert q.is_initialized
    assert (q.dimension, q.supports_input_type, q.max_input_tokens) == (3, True, 128)


async def test_embed_methods_route_by_input_type_and_batch() -> None:
    engine = FakeEngine()
    p = NeuralcoreEmbeddingProvider(engine=engine, batch_size=2)
    one = await p.embed_text("abc")
    assert one.embedding == [3.0, 0.0, 1.0]
    assert (one.text, one.model) == ("abc", "all-MiniLM-L6-v2")
    assert (await p.embed_query("q")).embedding[1] == 1.0
    assert (await p.embed_document("d")).embedding[1] == 2.0
    docs = await p.embed_documents(["a", "bb", "ccc"])
    assert [r.text for r in docs] == ["a", "bb", "ccc"]
    assert docs.vectors == [[1.0, 2.0, 1.0], [2.0, 2.0, 1.0], [3.0, 2.0, 1.0]]
    # one engine call: the engine batches by its token budget, batch_size does not slice
    assert engine.calls[-1] == ("doc", ["a", "bb", "ccc"])
    assert all(type(v) is not list and isinstance(v, list) for v in docs.vectors)
    assert len(await p.embed_batch([])) == 0
    assert await p.health_check()


async def test_engine_errors_become_generation_errors_and_fail_health() -> None:
    p = NeuralcoreEmbeddingProvider(engine=FakeEngine(fail=True))
    with pytest.raises(EmbeddingGenerationError, match="bad text") as info:
        await p.embed_text("x")
    assert isinstance(info.value, NeuralcoreError)
    assert not await p.health_check(timeout=1.0)


async def test_missing_model_is_a_provider_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURALCORE_HOME", str(tmp_path))
    p = NeuralcoreEmbeddingProvider(model="no-such-model")
    with pytest.raises(EmbeddingProviderError) as info:
        await p.initialize()
    assert isinstance(info.value.__cause__, ModelNotFoundError)
    assert not p.is_initialized


def test_bad_batch_size() -> None:
    with pytest.raises(EmbeddingProviderError, match="batch_size"):
        NeuralcoreEmbeddingProvider(batch_size=0)


async def test_shutdown_then_reinitialise_on_use() -> None:
    p = NeuralcoreEmbeddingProvider(engine=FakeEngine())
    await p.shutdown()
    assert not p.is_initialized


_FAKE_BASE = '''
"""A stand-in for ATLAS's embedding base module (registry + ABC + errors)."""
import abc
import dataclasses

class EmbeddingError(Exception):
    pass

class EmbeddingGenerationError(EmbeddingError):
    pass

class EmbeddingProvider(abc.ABC):
    pass

@dataclasses.dataclass(slots=True)
class EmbeddingResult:
    embedding: list
    text: str
    model: str
    token_count: int = None
    metadata: dict = dataclasses.field(default_factory=dict)

@dataclasses.dataclass(slots=True)
class BatchEmbeddingResult:
    embeddings: list
    model: str
    total_tokens: int = None
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def vectors(self):
        return [r.embedding for r in self.embeddings]

_REG = {}

def register_embedding_provider(name):
    def deco(cls):
        _REG[name] = cls
        return cls
    return deco

def list_embedding_providers():
    return sorted(_REG)
'''


@pytest.fixture
def fake_atlas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    pkg = tmp_path / "modules" / "storage" / "embeddings"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "modules", tmp_path / "modules" / "storage", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "base.py").write_text(textwrap.dedent(_FAKE_BASE))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "modules" or m.startswith("modules.")]:
        monkeypatch.delitem(sys.modules, name)
    import modules.storage.embeddings.base as base

    yield base
    for name in [m for m in sys.modules if m == "modules" or m.startswith("modules.")]:
        del sys.modules[name]  # the stand-in must not leak into other tests


def test_registers_with_atlas_when_importable(fake_atlas: Any) -> None:
    fake_atlas._REG["huggingface"] = object  # the app's own provider is already there
    assert register_with_atlas()
    assert fake_atlas._REG["neuralcore"] is NeuralcoreEmbeddingProvider
    assert fake_atlas._REG["huggingface"] is object  # a taken name is left alone
    assert isinstance(
        NeuralcoreEmbeddingProvider(engine=FakeEngine()), fake_atlas.EmbeddingProvider
    )
    del fake_atlas._REG["huggingface"]
    assert register_with_atlas()
    assert fake_atlas._REG["huggingface"] is NeuralcoreEmbeddingProvider


async def test_errors_are_also_atlas_errors_when_importable(fake_atlas: Any) -> None:
    p = NeuralcoreEmbeddingProvider(engine=FakeEngine(fail=True))
    with pytest.raises(fake_atlas.EmbeddingGenerationError) as info:
        await p.embed_text("x")
    assert isinstance(info.value, EmbeddingGenerationError)


async def test_results_are_atlas_result_classes_when_importable(fake_atlas: Any) -> None:
    p = NeuralcoreEmbeddingProvider(engine=FakeEngine())
    batch = await p.embed_batch(["a", "bb"])
    assert isinstance(batch, fake_atlas.BatchEmbeddingResult)
    assert all(isinstance(r, fake_atlas.EmbeddingResult) for r in batch.embeddings)
    assert batch.vectors == [[1.0, 0.0, 1.0], [2.0, 0.0, 1.0]]
    assert isinstance(await p.embed_text("x"), fake_atlas.EmbeddingResult)
    assert isinstance(await p.embed_batch([]), fake_atlas.BatchEmbeddingResult)


def test_standalone_without_atlas() -> None:
    assert register_with_atlas() is False


@pytest.fixture(scope="module")
def real_provider() -> NeuralcoreEmbeddingProvider:
    """The provider as ATLAS gets it: the model's default variant (the fastest that passed
    the parity gate at conversion)."""
    from neuralcore.embedding import load_model_info

    try:
        load_model_info("all-MiniLM-L6-v2")
    except ModelNotFoundError:
        pytest.fail("all-MiniLM-L6-v2 is not converted; run `bash scripts/post_install.sh`")
    return NeuralcoreEmbeddingProvider()


async def test_real_model_ranks_related_text_higher(
    real_provider: NeuralcoreEmbeddingProvider,
) -> None:
    from neuralcore.compat.atlas import cosine_similarity

    batch = await real_provider.embed_documents(
        ["The cat sat on the mat.", "A kitten rests on a rug.", "Quarterly revenue rose 4%."]
    )
    cat, kitten, revenue = batch.vectors
    assert real_provider.dimension == 384
    assert len(cat) == 384
    assert np.linalg.norm(cat) == pytest.approx(1.0, abs=1e-3)
    assert cosine_similarity(cat, kitten) > cosine_similarity(cat, revenue) + 0.2
    q = await real_provider.embed_query("The cat sat on the mat.")
    assert cosine_similarity(q.embedding, cat) > 0.999  # alone or in a batch: same vector


async def test_concurrent_first_calls_load_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    made: list[FakeEngine] = []

    def make(self: NeuralcoreEmbeddingProvider) -> FakeEngine:
        made.append(FakeEngine())
        return made[-1]

    monkeypatch.setattr(NeuralcoreEmbeddingProvider, "_make_engine", make)
    p = NeuralcoreEmbeddingProvider()
    results = await asyncio.gather(*(p.embed_text(t) for t in ("a", "bb", "ccc")))
    assert [r.embedding[0] for r in results] == [1.0, 2.0, 3.0]
    assert len(made) == 1
    assert p.dimension == 3


async def test_vectors_are_lists_that_keep_their_float64_row() -> None:
    from neuralcore.compat.atlas import EmbeddingVector, cosine_similarity

    p = NeuralcoreEmbeddingProvider(engine=FakeEngine())
    docs = await p.embed_batch(["a" * 20, "b" * 21])
    a, b = docs.vectors
    assert isinstance(a, EmbeddingVector)
    assert a == [20.0, 0.0, 1.0]
    assert a.row64 is not None
    assert a.row64.dtype == np.float64
    assert cosine_similarity(a, b) == pytest.approx(cosine_similarity(list(a), list(b)), 1e-15)


def test_sentence_transformers_folder_error_names_the_convert_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setenv("NEURALCORE_HOME", str(tmp_path / "home"))
    folder = tmp_path / "my-st-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    p = NeuralcoreEmbeddingProvider(model=str(folder))
    with pytest.raises(EmbeddingProviderError) as info:
        asyncio.run(p.initialize())
    text = str(info.value)
    assert "sentence-transformers folder" in text
    assert f"neuralcore models convert {folder} -o " in text
    assert str(tmp_path / "home") in text  # where the converted model must go


async def test_hub_id_loads_the_converted_model_of_that_name(
    real_provider: NeuralcoreEmbeddingProvider,
) -> None:
    p = NeuralcoreEmbeddingProvider(model="sentence-transformers/all-MiniLM-L6-v2")
    await p.initialize()
    assert (p.dimension, p.model_name) == (384, "sentence-transformers/all-MiniLM-L6-v2")
    await p.shutdown()
