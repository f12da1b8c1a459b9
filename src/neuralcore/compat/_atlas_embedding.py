"""An embedding provider with ATLAS's interface, running on neuralcore's EmbeddingEngine.

It takes the same constructor options as ATLAS's local (sentence-transformers) provider,
so ATLAS's ``rag.embeddings.huggingface`` settings apply unchanged, and it registers itself
in ATLAS's provider registry (as ``"neuralcore"``, and as ``"huggingface"`` when that name
is free) once ATLAS is importable. Inference runs in a worker thread; the event loop is
never blocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from neuralcore.compat._atlas_embedding_types import (
    BatchEmbeddingResult,
    EmbeddingGenerationError,
    EmbeddingInputType,
    EmbeddingProviderError,
    EmbeddingResult,
    atlas_base,
    atlas_flavoured,
)
from neuralcore.core._errors import MissingDependencyError, NeuralcoreError

try:
    import numpy as np
    from numpy.typing import NDArray
except ModuleNotFoundError as _err:  # the no-extras install
    if _err.name != "numpy":
        raise
    _HINT = 'pip install "neuralcore-runtime[embedding]"'
    raise MissingDependencyError(
        f"numpy is required for the ATLAS embedding provider: {_HINT}"
    ) from _err

__all__ = ("NeuralcoreEmbeddingProvider", "register_with_atlas")

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_KNOWN_DIMENSIONS = {"all-MiniLM-L6-v2": 384, "all-mpnet-base-v2": 768, "bge-small-en-v1.5": 384}


class _Engine(Protocol):
    """The part of :class:`neuralcore.embedding.EmbeddingEngine` the provider uses."""

    def embed(self, texts: Sequence[str], /) -> NDArray[np.float32]: ...
    def embed_queries(self, texts: Sequence[str], /) -> NDArray[np.float32]: ...
    def embed_documents(self, texts: Sequence[str], /) -> NDArray[np.float32]: ...


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
        Largest batch handed to the engine at once (also ``max_batch_size``).
    show_progress
        Accepted for compatibility; no progress output.
    cache_folder
        Where converted models live (``NEURALCORE_HOME``) when ``model`` is a name.
    max_workers
        Accepted for compatibility; the engine runs its own thread pool.
    quantization
        neuralcore's own option: ``"int8"`` (CPU) or ``"fp16"`` graphs; fp32 by default.
    engine
        An existing ``EmbeddingEngine`` to share (skips loading a model).

    Examples
    --------
    >>> provider = NeuralcoreEmbeddingProvider(model="all-MiniLM-L6-v2")
    >>> provider.name, provider.dimension, provider.is_initialized
    ('neuralcore', 384, False)
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
        """Provider name: ``"neuralcore"``."""
        return "neuralcore"

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
        """Largest batch embedded at once."""
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

        engine: _Engine = EmbeddingEngine(
            self._model_path(), quantization=self._quantization, normalize=self._normalize
        )
        return engine

    def _model_path(self) -> str:
        """``model``, or its converted folder inside ``cache_folder`` when there is one."""
        if self._cache_folder:
            for candidate in (Path(self._cache_folder) / "models", Path(self._cache_folder)):
                if (candidate / self._model_name / "neuralcore.json").is_file():
                    return str(candidate / self._model_name)
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
        """Embed many texts, in slices of ``max_batch_size``."""
        if not self._initialized:
            await self.initialize()
        if not texts:
            return BatchEmbeddingResult(embeddings=[], model=self._model_name)
        vectors = await asyncio.to_thread(self._run, list(texts), input_type)
        results = [
            EmbeddingResult(embedding=row, text=text, model=self._model_name)
            for text, row in zip(texts, vectors.tolist(), strict=True)
        ]
        return BatchEmbeddingResult(embeddings=results, model=self._model_name)

    def _run(self, texts: list[str], input_type: EmbeddingInputType | None) -> NDArray[Any]:
        engine = self._engine
        if engine is None:
            raise atlas_flavoured(EmbeddingProviderError)("provider is shut down")
        embed = engine.embed
        if input_type is EmbeddingInputType.QUERY:
            embed = engine.embed_queries
        elif input_type is EmbeddingInputType.DOCUMENT:
            embed = engine.embed_documents
        try:
            parts = [
                embed(texts[i : i + self._batch_size])
                for i in range(0, len(texts), self._batch_size)
            ]
        except NeuralcoreError as err:
            raise atlas_flavoured(EmbeddingGenerationError)(f"embedding failed: {err}") from err
        return np.concatenate(parts, axis=0)

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
