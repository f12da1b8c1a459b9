"""The embedding engine's backend report: the default variant's runtime, or why it is unavailable.

The default variant is chosen when the model is converted (the fastest that passed the
parity gate on this machine) and recorded in the model's manifest; this report reads it.

There is no pure-Python fallback for a transformer: without onnxruntime, creating an
:class:`~neuralcore.embedding.EmbeddingEngine` raises
:class:`~neuralcore.core.MissingDependencyError` naming the ``embedding`` extra.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

from neuralcore.core._backend import BackendInfo

__all__ = ("describe_backend",)

_HINT = 'pip install "neuralcore-runtime[embedding]"'


def describe_backend(engine: str) -> BackendInfo:
    """Report what serves embeddings, without importing onnxruntime.

    Examples
    --------
    >>> describe_backend("embedding").engine
    'embedding'
    """
    from neuralcore.core import usable_cores

    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        detail = f"{', '.join(missing)} not installed; EmbeddingEngine unavailable ({_HINT})"
        return BackendInfo(engine, "python", "none", "", detail)
    runtime, variant_text = _default_variant()
    library = runtime if importlib.util.find_spec(runtime) is not None else "onnxruntime"
    version = _version(library) or _version("onnxruntime-gpu")
    detail = f"{usable_cores()} threads; {variant_text}"
    return BackendInfo(engine, "native", library, version, detail)


def _default_variant(model: str = "all-MiniLM-L6-v2") -> tuple[str, str]:
    """The default variant's runtime and a line about it from the manifest (or why none)."""
    from neuralcore.embedding._models import VARIANTS, convert_hint, read_manifest, resolve_model
    from neuralcore.errors import NeuralcoreError

    try:
        info = read_manifest(resolve_model(model))
    except NeuralcoreError:
        return "onnxruntime", f"{model} not converted: {convert_hint(model)}"
    row = info.parity.get(info.default, {})
    measured = (
        f"min cosine {row['min_cosine']:.4f} vs sentence-transformers on the parity set,"
        f" {row.get('vs_sentence_transformers', 0):.1f}x its speed when converted"
        if "min_cosine" in row
        else "parity not measured"
    )
    return VARIANTS[info.default].runtime, (
        f"default variant {info.default} of {model}: {VARIANTS[info.default].description},"
        f" {measured}; precision='exact' runs {info.exact}"
    )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""
