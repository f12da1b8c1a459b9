"""neuralcore: native-speed embeddings, vector search and messaging for Python AI apps.

Importing ``neuralcore`` is cheap: each public name loads its engine on first use.

Examples
--------
>>> import neuralcore
>>> neuralcore.cosine_similarity([1.0, 0.0], [1.0, 0.0])
1.0
>>> neuralcore.MessageBus.__module__
'neuralcore'
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The one list of public names. Type checkers read these imports as written; at run time
# the same statements are read by _exports() and each name loads lazily on first access.
# Adding a public name is one line here (``Name as Name`` marks it re-exported for mypy),
# plus the pinned list in tests/test_public_api.py.
if TYPE_CHECKING:  # one name per line, combined per module (hence no isort here)
    from neuralcore.core import BackendInfo as BackendInfo  # noqa: I001
    from neuralcore.core import backend_info as backend_info
    from neuralcore.embedding import (
        EmbeddingCache as EmbeddingCache,
        EmbeddingConfig as EmbeddingConfig,
        EmbeddingEngine as EmbeddingEngine,
        ModelInfo as ModelInfo,
        convert_model as convert_model,
    )
    from neuralcore.errors import (
        AuthorizationError as AuthorizationError,
        BridgeConnectionError as BridgeConnectionError,
        BusClosedError as BusClosedError,
        ChannelNotFoundError as ChannelNotFoundError,
        ConfigError as ConfigError,
        DimensionMismatchError as DimensionMismatchError,
        IndexFileError as IndexFileError,
        InputTypeError as InputTypeError,
        InvalidInputError as InvalidInputError,
        KeyNotFoundError as KeyNotFoundError,
        MessagingError as MessagingError,
        MissingDependencyError as MissingDependencyError,
        ModelError as ModelError,
        ModelNotFoundError as ModelNotFoundError,
        NeuralcoreError as NeuralcoreError,
        NonFiniteError as NonFiniteError,
        PersistenceError as PersistenceError,
        QueueFullError as QueueFullError,
        RateLimitedError as RateLimitedError,
        RequestTimeoutError as RequestTimeoutError,
        SerializationError as SerializationError,
    )
    from neuralcore.messaging import (
        BusConfig as BusConfig,
        ChannelConfig as ChannelConfig,
        DeadLetter as DeadLetter,
        Message as Message,
        MessageBus as MessageBus,
        Priority as Priority,
        Subscription as Subscription,
    )
    from neuralcore.vectors import (
        Corpus as Corpus,
        HNSWIndex as HNSWIndex,
        VectorOps as VectorOps,
        cosine_distance as cosine_distance,
        cosine_similarity as cosine_similarity,
        dot as dot,
        euclidean_distance as euclidean_distance,
        normalize as normalize,
        sqeuclidean_distance as sqeuclidean_distance,
        top_k as top_k,
    )

_exported: dict[str, str] | None = None


def _exports() -> dict[str, str]:
    """Public name -> module it is imported from, read from the ``TYPE_CHECKING`` list above.

    The same idea as SPEC 1's ``lazy_loader.attach_stub``: the import statements a type
    checker reads are the single source, so the lazy map and ``__all__`` cannot drift.
    """
    global _exported
    if _exported is None:
        import ast
        from pathlib import Path

        tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
        block = next(
            node
            for node in tree.body
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        )
        _exported = {
            alias.asname or alias.name: str(node.module)
            for node in block.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
    return _exported


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return ("__version__", *sorted(_exports()))
    module_name = _exports().get(name)
    if module_name is None:
        raise AttributeError(f"module 'neuralcore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    if "._" in getattr(value, "__module__", ""):  # defined in a private module:
        value.__module__ = __name__  # show the public path in reprs and tracebacks
    if getattr(value, "__module__", None) == __name__:
        # doctest would collect its examples here (see _Neuralcore): kept on the type
        setattr(type(sys.modules[__name__]), name, staticmethod(value))  # staticmethod: unbound
    else:
        # homed in a public module (the vector functions): doctest leaves it to that module,
        # and a __dict__ entry is the plain module lookup (no descriptor call per access)
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_exports()))


class _Neuralcore(types.ModuleType):
    """This module's type, which keeps each public name whose ``__module__`` is this one.

    Kept on the type rather than in the module's ``__dict__``, such a name is found by
    the plain attribute lookup (no ``__getattr__`` call), and doctest, which reads
    ``__dict__``, does not collect an object's examples a second time here, without the
    names of the module that defines it (the class itself is not kept in ``__dict__``
    either, for the same reason). Names homed in a public module (``__module__`` is
    ``neuralcore.vectors``, say) go into ``__dict__`` instead, which doctest skips for
    them and which saves the descriptor call on every ``neuralcore.name`` access.
    """


sys.modules[__name__].__class__ = _Neuralcore
del _Neuralcore
