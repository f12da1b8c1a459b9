"""An embedding provider with ATLAS's interface, running on neuralcore's EmbeddingEngine.

It takes the same constructor options as ATLAS's local (sentence-transformers) provider,
so ATLAS's ``rag.embeddings.huggingface`` settings apply unchanged; its ``name`` is
ATLAS's (``"huggingface"``), and it registers itself in ATLAS's provider registry (as
``"neuralcore"``, and as ``"huggingface"`` when that name is free) once ATLAS is
importable. Results are ATLAS's own result classes when ATLAS is importable.

Speed: the engine is built with its defaults (the fastest variant that passes parity) and
gets whole batches, which it splits by its token budget; ``batch_size`` is not used to
slice. Inference runs in a worker thread; the event loop is never blocked. numpy is only
imported when vectors are computed, so importing this module never needs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from neuralcore.compat.atlas.embedding._types import (
    EmbeddingGenerationError,
    EmbeddingInputType,
    EmbeddingProviderError,
    atlas_base,
    atlas_flavoured,
    result_types,
)
from neuralcore.core._errors import ModelNotFoundError, NeuralcoreError

if TYPE_CHECKING:
    from neuralcore.compat.atlas.embedding._types import BatchEmbeddingResult, EmbeddingResult

__all__ = ("NeuralcoreEmbeddingProvider", "register_with_atlas")

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_KNOWN_DIMENSIONS = {"all-MiniLM-L6-v2": 384, "all-mpnet-base-v2": 768, "bge-small-en-v1.5": 384}


class _Engine(Protocol):
    """The part of :class:`neuralcore.embedding.EmbeddingEngine` the provider uses."""

    def embed(self, texts: Sequence[str], /) -> Any: ...
    def embed_queries(self, texts: Sequence[str], /) -> Any: ...
    def embed_documents(self, texts: Sequence[str], /) -> Any: ...


class NeuralcoreEmbeddingProvider:
    """ATLAS-compatible embedding provider backed by neuralcore's ONNX engine.

    Parameters
    ----------
    model
        Model name or converted-model folder (default ``"all-MiniLM-L6-v2"``).
    device, trust_remote_code, config_manager
        Accepted for compatibility with ATLAS's settings; the engine picks its own device.
    normalize_embeddings
        L2-normalise vectors (applied by the engine).
    batch_size
        Reported as ``max_batch_size``; the engine batches by its token budget instead.
    show_progress
        Accepted for compatibility; no progress output.
    cache_folder
        Where converted models live (``NEURALCORE_HOME``) when ``model`` is a name.
    max_workers
        Accepted for compatibility; the engine runs its own thread pool.
    quantization
        neuralcore's own option: ``"int8"`` (CPU) or ``"fp16"`` graphs; by default the
        engine's default variant.
    engine
        An existing ``EmbeddingEngine`` to share (skips loading a model).

    Examples
    --------
    >>> provider = NeuralcoreEmbeddingProvider(model="all-MiniLM-L6-v2")
    >>> provider.name, provider.dimension, provider.is_initialized
    ('huggingface', 384, False)
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        normalize_embeddings: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        max_workers: int = 1,
        config_manager: Any = None,
        quantization: Literal["int8", "fp16"] | None = None,
        engine: Any = None,
    ) -> None:
        if batch_size < 1:
            raise atlas_flavoured(EmbeddingProviderError)(f"batch_size must be >= 1: {batch_size}")
        self._model_name = model
        self._normalize = normalize_embeddings
        self._batch_size = batch_size
        self._cache_folder = cache_folder
        self._quantization = quantization
        self._engine: _Engine | None = engine
        self._dimension = _engine_dimension(engine) or _KNOWN_DIMENSIONS.get(model, 384)
        self._initialized = engine is not None
        self._init_lock: asyncio.Lock | None = None

    # -- properties of ATLAS's interface ----------------------------------------------------

    @property
    def name(self) -> str:
        """Provider name: ``"huggingface"``, as ATLAS's local provider it stands in for."""
        return "huggingface"

    @property
    def model_name(self) -> str:
        """The model identifier given at construction."""
        return self._model_name

    @property
    def dimension(self) -> int:
        """Vector width (the model's, once initialised)."""
        return self._dimension

    @property
    def supports_batch(self) -> bool:
        """Always ``True``: the engine batches natively."""
        return True

    @property
    def supports_input_type(self) -> bool:
        """``True`` when the model embeds queries and documents differently (prefixes)."""
        info = getattr(self._engine, "model_info", None)
        return bool(getattr(info, "query_prefix", "") or getattr(info, "document_prefix", ""))

    @property
    def max_batch_size(self) -> int:
        """The ``batch_size`` given (ATLAS's callers size their batches by it)."""
        return self._batch_size

    @property
    def max_input_tokens(self) -> int | None:
        """Token limit of the model (longer inputs are truncated), once known."""
        info = getattr(self._engine, "model_info", None)
        limit = getattr(info, "max_length", None)
        return int(limit) if limit else None

    @property
    def is_initialized(self) -> bool:
        """Whether the model is loaded."""
        return self._initialized

    # -- lifecycle --------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Load the model (in a worker thread); a no-op when already loaded.

        Raises
        ------
        EmbeddingProviderError
            the model cannot be found or loaded; the message says how to convert it.
        """
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:  # concurrent first calls load the model once
            if self._initialized:
                return
            try:
                self._engine = await asyncio.to_thread(self._make_engine)
            except NeuralcoreError as err:
                raise atlas_flavoured(EmbeddingProviderError)(
                    f"cannot load embedding model {self._model_name!r}: {err}"
                ) from err
            self._dimension = _engine_dimension(self._engine) or self._dimension
            self._initialized = True
        logger.info(
            "neuralcore embedding model %s ready (dim %d)", self._model_name, self.dimension
        )

    def _make_engine(self) -> _Engine:
        from neuralcore.embedding import EmbeddingEngine

        options: dict[str, Any] = {"normalize": self._normalize}
        if self._quantization is not None:  # else the engine's default (fastest) variant
            options["quantization"] = self._quantization
        try:
            engine: _Engine = EmbeddingEngine(self._model_path(), **options)
        except ModelNotFoundError as err:
            raise ModelNotFoundError(_convert_hint(self._model_name, err)) from err
        return engine

    def _model_path(self) -> str:
        """The converted folder for ``model``: in ``cache_folder``, under its short name
        (``sentence-transformers/all-MiniLM-L6-v2`` is ``all-MiniLM-L6-v2``), or as given."""
        short = _short_name(self._model_name)
        if self._cache_folder:
            for candidate in (Path(self._cache_folder) / "models", Path(self._cache_folder)):
                for name in (self._model_name, short):
                    if (candidate / name / "neuralcore.json").is_file():
                        return str(candidate / name)
        given = Path(self._model_name).expanduser()
        if given.is_dir() and not (given / "neuralcore.json").is_file():
            return short  # a sentence-transformers folder: its converted twin, by name
        if "/" in self._model_name and not given.exists():
            return short  # a hub id: the converted model of the same name
        return self._model_name

    async def shutdown(self) -> None:
        """Release the model."""
        close = getattr(self._engine, "close", None)
        if callable(close):
            close()
        self._engine = None
        self._initialized = False

    # -- embedding --------------------------------------------------------------------------

    async def embed_text(
        self, text: str, *, input_type: EmbeddingInputType | None = None
    ) -> EmbeddingResult:
        """Embed one text.

        Raises
        ------
        EmbeddingGenerationError
            the engine rejected the input or failed.
        """
        batch = await self.embed_batch([text], input_type=input_type)
        return batch.embeddings[0]

    async def embed_batch(
        self, texts: Sequence[str], *, input_type: EmbeddingInputType | None = None
    ) -> BatchEmbeddingResult:
        """Embed many texts in one engine call (it batches by its token budget)."""
        if not self._initialized:
            await self.initialize()
        result_cls, batch_cls = result_types()
        rows = await asyncio.to_thread(self._run, list(texts), input_type) if texts else []
        results = [
            result_cls(embedding=row, text=text, model=self._model_name)
            for text, row in zip(texts, rows, strict=True)
        ]
        batch: BatchEmbeddingResult = batch_cls(embeddings=results, model=self._model_name)
        return batch

    def _run(self, texts: list[str], input_type: EmbeddingInputType | None) -> list[Any]:
        engine = self._engine
        if engine is None:
            raise atlas_flavoured(EmbeddingProviderError)("provider is shut down")
        embed = engine.embed
        if input_type is EmbeddingInputType.QUERY:
            embed = engine.embed_queries
        elif input_type is EmbeddingInputType.DOCUMENT:
            embed = engine.embed_documents
        try:
            matrix = embed(texts)  # one call: the engine batches by its token budget
        except NeuralcoreError as err:
            raise atlas_flavoured(EmbeddingGenerationError)(f"embedding failed: {err}") from err
        return _vectors(matrix)

    async def embed_query(self, text: str) -> EmbeddingResult:
        """Embed a search query (query prefix applied when the model has one)."""
        return await self.embed_text(text, input_type=self._hint(EmbeddingInputType.QUERY))

    async def embed_document(self, text: str) -> EmbeddingResult:
        """Embed a document for indexing (document prefix applied when the model has one)."""
        return await self.embed_text(text, input_type=self._hint(EmbeddingInputType.DOCUMENT))

    async def embed_documents(self, texts: Sequence[str]) -> BatchEmbeddingResult:
        """Embed documents for indexing."""
        return await self.embed_batch(texts, input_type=self._hint(EmbeddingInputType.DOCUMENT))

    def _hint(self, kind: EmbeddingInputType) -> EmbeddingInputType | None:
        return kind if self.supports_input_type else None

    async def health_check(self, timeout: float = 5.0) -> bool:
        """Embed a probe text within ``timeout`` seconds; ``False`` (logged) on failure."""
        try:
            result = await asyncio.wait_for(self.embed_text("health check"), timeout)
        except (NeuralcoreError, TimeoutError, OSError) as err:
            logger.warning("neuralcore embedding health check failed: %s", err)
            return False
        return result.dimension == self.dimension


def _vectors(matrix: Any) -> list[Any]:
    """Rows as lists of floats (ATLAS's type) that keep their float64 row for similarity."""
    from neuralcore.compat.atlas._np import real_numpy
    from neuralcore.compat.atlas._vectors import EmbeddingVector

    np = real_numpy()
    if np is None or not hasattr(matrix, "astype"):
        return [list(row) for row in matrix.tolist()]
    rows64 = matrix.astype(np.float64)
    return [EmbeddingVector(row.tolist(), row) for row in rows64]


def _short_name(model: str) -> str:
    return Path(model.rstrip("/\\")).name or model


def _convert_hint(model: str, err: NeuralcoreError) -> str:
    """The engine's "not converted" error, with the command that converts this model."""
    from neuralcore.embedding import neuralcore_home

    given = Path(model).expanduser()
    target = neuralcore_home() / "models" / _short_name(model)
    if given.is_dir() and (given / "config.json").is_file():
        return (
            f"{model} is a sentence-transformers folder, not a converted neuralcore model; "
            f"convert it once with `neuralcore models convert {given} -o {target}` "
            "(needs the convert extra; where ATLAS pins protobuf<6, run it from a separate "
            "environment as docs/migration.md shows; inference needs no onnx)"
        )
    return str(err)


def _engine_dimension(engine: Any) -> int | None:
    for owner in (engine, getattr(engine, "model_info", None)):
        value = getattr(owner, "dimension", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def register_with_atlas(*, names: Sequence[str] = ("neuralcore", "huggingface")) -> bool:
    """Register :class:`NeuralcoreEmbeddingProvider` in ATLAS's provider registry.

    ``"neuralcore"`` is always (re)registered; any other name only while it is free, so an
    application whose own provider still registers under that name keeps it. The class is
    also made a virtual subclass of ATLAS's ``EmbeddingProvider`` ABC.

    Returns
    -------
    bool
        ``False`` when ATLAS is not importable (nothing done).

    Examples
    --------
    >>> register_with_atlas()  # ATLAS is not installed here
    False
    """
    base = atlas_base()
    if base is None:
        return False
    base.EmbeddingProvider.register(NeuralcoreEmbeddingProvider)
    taken = set(base.list_embedding_providers())
    for i, name in enumerate(names):
        if i == 0 or name not in taken:
            base.register_embedding_provider(name)(NeuralcoreEmbeddingProvider)
    logger.debug("registered the neuralcore embedding provider with ATLAS as %s", names)
    return True
