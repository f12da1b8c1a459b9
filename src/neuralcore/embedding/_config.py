"""Typed settings of an :class:`~neuralcore.embedding.EmbeddingEngine`."""

from __future__ import annotations

import dataclasses
from typing import Literal

from neuralcore.core._config import Config
from neuralcore.errors import ConfigError

__all__ = ("EmbeddingConfig",)

# upper bounds: a typo (threads=10**6) is an error naming the field, not a hang
_LIMITS = {
    "batch_tokens": 1 << 20,
    "max_length": 1 << 16,
    "threads": 1024,
    "output_dims": 1 << 16,
    "cache_size": 1 << 26,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmbeddingConfig(Config):
    """Settings of an embedding engine, loadable from a dict or YAML.

    Attributes
    ----------
    model : str
        Known model name (looked up in the cache folder) or a converted model folder.
    precision : {"auto", "exact"}
        Used when neither ``quantization`` nor ``runtime`` is given. ``auto`` runs the
        model's default variant: the fastest one that passed the parity gate against
        sentence-transformers when the model was converted (min cosine >= 0.99, top-10
        overlap >= 0.95). ``exact`` runs the fastest variant whose worst cosine was at least
        0.9999 (fp32 parity).
    variant : str, optional
        Pick a variant by its name (``"openvino-int8"``, ``"fp32"``...; ``neuralcore
        models info`` lists them with their measured parity and speed).
    quantization : {None, "int8", "fp16", "bf16"}
        Pick a variant by hand. ``int8``/``fp16``: the folder's quantized graph on ONNX
        Runtime (dynamic int8); ``int8`` with ``runtime="openvino"``: the static int8
        OpenVINO graph (``--openvino-int8`` at conversion); ``bf16``: the fp32 graph at bf16
        precision on OpenVINO.
    runtime : {None, "onnxruntime", "openvino"}
        Library that executes the graph (OpenVINO: CPU only, ``openvino`` extra); None
        means as the chosen variant needs (ONNX Runtime when ``quantization`` is int8/fp16).
    device : {"cpu", "cuda", "auto"}
        ``auto`` uses CUDA when onnxruntime-gpu sees a GPU; ``cuda`` falls back to CPU
        with a warning in the log when it cannot.
    batch_tokens : int
        Token budget of one inference batch (rows x padded length). The default, 512,
        keeps OpenVINO's streams evenly loaded on short texts (1.1-1.2x 1,024 on 100
        docstrings, equal on longer texts; ``neuralcore bench embedding``).
    max_length : int, optional
        Truncation length in tokens; default the model's.
    threads : int, optional
        Intra-op threads; default the cores this process may use.
    normalize : bool, optional
        L2-normalise outputs; default the model's setting.
    output_dims : int, optional
        Keep only the first dims (matryoshka truncation), renormalised.
    output_dtype : {"float32", "float16", "int8", "binary"}
        Form of returned vectors.
    cache_size : int
        Entries of the in-memory embedding cache used by ``embed(..., cache=True)``.
    cache_ttl : float, optional
        Seconds a cached vector stays valid.
    cache_path : str, optional
        SQLite file backing the cache.

    Examples
    --------
    >>> EmbeddingConfig.from_dict({"quantization": "int8", "threads": 2}).threads
    2
    >>> EmbeddingConfig(batch_tokens=0)
    Traceback (most recent call last):
    ...
    neuralcore.errors.ConfigError: config field 'batch_tokens' = 0: must be >= 1
    """

    model: str = "all-MiniLM-L6-v2"
    precision: Literal["auto", "exact"] = "auto"
    variant: str | None = None
    quantization: Literal["int8", "fp16", "bf16"] | None = None
    runtime: Literal["onnxruntime", "openvino"] | None = None
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    batch_tokens: int = 512
    max_length: int | None = None
    threads: int | None = None
    normalize: bool | None = None
    output_dims: int | None = None
    output_dtype: Literal["float32", "float16", "int8", "binary"] = "float32"
    cache_size: int = 10_000
    cache_ttl: float | None = None
    cache_path: str | None = None

    def validate(self) -> None:
        """Range checks; raise :class:`ConfigError` naming the field."""
        for name, limit in _LIMITS.items():
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(name, value, "must be >= 1")
            if value is not None and value > limit:
                raise ConfigError(name, value, f"must be <= {limit:,}")
        if not self.model:
            raise ConfigError("model", self.model, "expected a model name or folder")
        if self.variant is not None:
            from neuralcore.embedding._models import VARIANTS

            if self.variant not in VARIANTS:
                raise ConfigError("variant", self.variant, f"expected one of {', '.join(VARIANTS)}")
            if self.quantization is not None or self.runtime is not None:
                reason = "give either variant or quantization/runtime, not both"
                raise ConfigError("variant", self.variant, reason)
        if self.precision == "exact" and self.quantization is not None:
            reason = "precision='exact' runs the exact variant; leave quantization unset"
            raise ConfigError("quantization", self.quantization, reason)
        if self.quantization == "bf16" and self.runtime == "onnxruntime":
            raise ConfigError("quantization", "bf16", "bf16 needs runtime='openvino'")
        if self.quantization == "fp16" and self.runtime == "openvino":
            reason = "fp16 graphs run on runtime='onnxruntime'; use 'bf16' or 'int8' with openvino"
            raise ConfigError("quantization", self.quantization, reason)
        if self.cache_ttl is not None and self.cache_ttl <= 0:
            raise ConfigError("cache_ttl", self.cache_ttl, "must be > 0 seconds")
        if self.output_dtype == "binary" and self.output_dims is not None and self.output_dims % 8:
            raise ConfigError(
                "output_dims", self.output_dims, "binary output needs a multiple of 8"
            )
