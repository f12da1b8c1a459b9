"""The result, input-type and error types of ATLAS's embedding provider interface, restated.

Errors derive from :class:`~neuralcore.NeuralcoreError`; when ATLAS is importable the
adapter raises subclasses that also derive from ATLAS's own error classes (see
:func:`atlas_flavoured`), so ``except`` clauses on either side catch them.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Iterator
from enum import Enum
from typing import Any

from neuralcore.core._errors import InvalidInputError, ModelError, NeuralcoreError

__all__ = (
    "ATLAS_BASE_MODULE",
    "BatchEmbeddingResult",
    "EmbeddingError",
    "EmbeddingGenerationError",
    "EmbeddingInputType",
    "EmbeddingProviderError",
    "EmbeddingResult",
    "atlas_base",
    "atlas_flavoured",
    "result_types",
)

logger = logging.getLogger(__name__)

ATLAS_BASE_MODULE = "modules.storage.embeddings.base"


class EmbeddingError(NeuralcoreError):
    """Base of the embedding provider's errors."""


class EmbeddingProviderError(EmbeddingError, ModelError):
    """The provider could not start (model missing, bad settings)."""


class EmbeddingGenerationError(EmbeddingError, InvalidInputError):
    """Embedding some input failed."""


class EmbeddingInputType(str, Enum):  # noqa: UP042 - str() as ATLAS's enum
    """Hint for asymmetric models: is the text a query, a document, or something else?

    Examples
    --------
    >>> EmbeddingInputType("search_query") is EmbeddingInputType.QUERY
    True
    """

    DOCUMENT = "search_document"
    QUERY = "search_query"
    CLUSTERING = "clustering"
    CLASSIFICATION = "classification"


@dataclasses.dataclass(slots=True)
class EmbeddingResult:
    """One embedded text: the vector (a list of floats), the text, the model and extras.

    Examples
    --------
    >>> EmbeddingResult(embedding=[0.1, 0.2], text="hi", model="m").dimension
    2
    """

    embedding: list[float]
    text: str
    model: str
    token_count: int | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def dimension(self) -> int:
        """Length of the vector."""
        return len(self.embedding)


@dataclasses.dataclass(slots=True)
class BatchEmbeddingResult:
    """Results of one batch; iterable, indexable and sized like a list of results.

    Examples
    --------
    >>> batch = BatchEmbeddingResult(
    ...     embeddings=[EmbeddingResult(embedding=[1.0], text="a", model="m")], model="m"
    ... )
    >>> len(batch), batch[0].text, batch.vectors
    (1, 'a', [[1.0]])
    """

    embeddings: list[EmbeddingResult]
    model: str
    total_tokens: int | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.embeddings)

    def __iter__(self) -> Iterator[EmbeddingResult]:
        return iter(self.embeddings)

    def __getitem__(self, index: int) -> EmbeddingResult:
        return self.embeddings[index]

    @property
    def vectors(self) -> list[list[float]]:
        """Just the vectors, in input order."""
        return [r.embedding for r in self.embeddings]


def atlas_base() -> Any | None:
    """ATLAS's embedding base module when it can be imported, else ``None``."""
    try:
        module = importlib.import_module(ATLAS_BASE_MODULE)
    except ImportError:
        return None
    return module if hasattr(module, "register_embedding_provider") else None


def atlas_flavoured(cls: type[EmbeddingError]) -> type[EmbeddingError]:
    """``cls``, or a subclass that is also ATLAS's error of the same name when importable.

    Made once per ATLAS module object, so an application that imports ATLAS later (or
    reloads it) gets classes matching the module it has now.

    Examples
    --------
    >>> issubclass(atlas_flavoured(EmbeddingGenerationError), EmbeddingGenerationError)
    True
    """
    base = atlas_base()
    made = _FLAVOURED.get((cls, base))
    if made is None:
        theirs = getattr(base, cls.__name__, None) if base is not None else None
        made = cls
        if isinstance(theirs, type) and issubclass(theirs, Exception):
            made = type(cls.__name__, (cls, theirs), {"__module__": __name__})
        _FLAVOURED[(cls, base)] = made
    return made


# (class, ATLAS module or None) -> the class to raise; a dict, not functools.cache, so a
# newly imported ATLAS module is a new key
_FLAVOURED: dict[tuple[type[EmbeddingError], Any], type[EmbeddingError]] = {}


def result_types() -> tuple[type[Any], type[Any]]:
    """``(EmbeddingResult, BatchEmbeddingResult)``: ATLAS's own classes when ATLAS is
    importable (so its ``isinstance`` checks hold), else the ones restated here.

    Examples
    --------
    >>> result_types() == (EmbeddingResult, BatchEmbeddingResult)  # ATLAS not installed
    True
    """
    base = atlas_base()
    theirs = (getattr(base, "EmbeddingResult", None), getattr(base, "BatchEmbeddingResult", None))
    if all(isinstance(cls, type) for cls in theirs):
        return theirs  # type: ignore[return-value]
    return EmbeddingResult, BatchEmbeddingResult
