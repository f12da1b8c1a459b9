"""EmbeddingEngine: sentence-transformers models on ONNX Runtime."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple, cast

import numpy as np
from numpy.typing import NDArray

from neuralcore.core._optional import require
from neuralcore.embedding._cache import EmbeddingCache
from neuralcore.embedding._config import EmbeddingConfig
from neuralcore.embedding._models import (
    VARIANTS,
    ModelInfo,
    graph_files,
    read_manifest,
    resolve_model,
    verify_files,
)
from neuralcore.embedding._pooling import OutputDtype, finalize, l2_normalize, pool
from neuralcore.embedding._session import open_runner, usable_cores
from neuralcore.errors import ConfigError, InputTypeError, ModelError

__all__ = ("EmbeddingEngine", "RuntimeInfo")

logger = logging.getLogger(__name__)

_MAX_ROWS = 256
_CHARS_PER_TOKEN_CAP = 100  # texts are clipped to max_length * this many characters first
# OpenVINO prepares kernels per input shape (slow the first time, and kept in memory):
# padding its batches to a multiple of a few tokens bounds the number of widths. Results do
# not change (padding is masked); ONNX Runtime int8 would (per-batch activation ranges).
# The multiple grows with the width so padding stays a small share of the work: 4 up to 32
# tokens, 8 up to 64, 16 above (24 widths up to 256). One 9-token query padded to 16 cost
# ~25% more than at 12 (1.41 vs 1.12 ms on 2 threads); on the 100 benchmark texts this pads
# 11,344 tokens for 10,226 real ones, against 11,792 with a flat 16.
_OPENVINO_PAD_STEPS = ((32, 4), (64, 8))
_OPENVINO_PAD_MULTIPLE = 16


class RuntimeInfo(NamedTuple):
    """What an :class:`EmbeddingEngine` runs on (``engine.runtime_info``).

    Attributes
    ----------
    runtime : {"onnxruntime", "openvino"}
        The library executing the graph.
    version : str
        Its version.
    variant : str
        The model variant (``"openvino-int8"``, ``"fp32"``, ...; see ``neuralcore models
        info``).
    description : str
        The variant in words (``"static int8 (NNCF) on OpenVINO"``).
    threads : int
        Intra-op threads.
    device : str
        ``"cpu"`` or ``"cuda"``.
    chosen_by : {"default", "exact", "explicit"}
        The model's default variant, ``precision="exact"``, or ``quantization``/``runtime``.
    streams : int
        Batches that run at once, each on ``threads / streams`` threads (OpenVINO: one
        stream per thread; ONNX Runtime: one stream of all threads). On OpenVINO's static
        int8 graph a call that fits in one batch (one text, a few short ones) runs on all
        threads instead (a second compiled model, one stream).

    Examples
    --------
    >>> RuntimeInfo("openvino", "2026.4", "openvino-int8", "static int8", 2, "cpu", "default")[2]
    'openvino-int8'
    """

    runtime: str
    version: str
    variant: str
    description: str
    threads: int
    device: str
    chosen_by: str
    streams: int = 1


class _Request:
    """One caller's texts waiting for the engine; whoever runs the engine fills it."""

    __slots__ = ("done", "error", "result", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = threading.Event()
        self.result: NDArray[np.float32] | None = None
        self.error: BaseException | None = None


class EmbeddingEngine:
    """Sentence embeddings on ONNX Runtime, a drop-in for sentence-transformers inference.

    Parameters
    ----------
    model : str or path
        Known model name (converted into the cache folder, ``$NEURALCORE_HOME/models``)
        or a converted model folder (``neuralcore models convert``).
    precision : {"auto", "exact"}
        ``auto`` (default) runs the model's default variant: the fastest one that passed
        the parity gate against sentence-transformers (min cosine >= 0.99, top-10
        retrieval overlap >= 0.95) when the model was converted on this machine.
        ``exact`` runs the fastest variant with fp32 parity (min cosine >= 0.9999).
        ``neuralcore models info NAME`` shows both and the measurements behind them.
    variant : str, optional
        Pick a variant by name instead (``"fp32"``, ``"int8"``, ``"openvino-bf16"``,
        ``"openvino-int8"``, ``"openvino-int8-bf16"``...; ``neuralcore models info``).
    quantization : {None, "int8", "fp16", "bf16"}
        Or pick a variant by precision: dynamic int8 or fp16 on ONNX Runtime, bf16 or
        static int8 on OpenVINO (``runtime="openvino"``).
    runtime : {None, "onnxruntime", "openvino"}
        Library that runs the graph; with ``quantization=None``, ``"onnxruntime"`` is fp32
        on ONNX Runtime and ``"openvino"`` fp32 on OpenVINO. OpenVINO needs the
        ``openvino`` extra.
    device : {"cpu", "cuda", "auto"}
        Execution provider; CUDA needs onnxruntime-gpu and a GPU, else CPU with a warning.
    batch_tokens : int
        Token budget per inference batch (rows x longest row); see
        :class:`EmbeddingConfig`.
    max_length : int, optional
        Truncation length in tokens (default: the model's, 256 for all-MiniLM-L6-v2).
    threads : int, optional
        Intra-op threads (default: cores this process may use; inter-op is 1).
    normalize : bool, optional
        L2-normalise (default: as the model was trained).
    output_dims : int, optional
        Matryoshka truncation to the first dims, renormalised.
    output_dtype : {"float32", "float16", "int8", "binary"}
        Type of returned vectors (``binary`` packs signs, 8 dims per byte).
    cache : EmbeddingCache, optional
        Cache used by ``embed(..., cache=True)``; default a 10,000-entry LRU.

    Raises
    ------
    ModelNotFoundError
        No converted model of that name or folder; the message says how to convert one.
    ModelError
        A model file is missing, truncated or foreign; the message names it.
    MissingDependencyError
        onnxruntime or tokenizers is missing (``pip install "neuralcore-runtime[embedding]"``).

    Examples
    --------
    >>> engine = EmbeddingEngine("all-MiniLM-L6-v2")
    >>> engine.embed(["hello world", "goodbye"]).shape
    (2, 384)
    >>> float(engine.embed_one("hello") @ engine.embed_one("hello")) > 0.999
    True
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "all-MiniLM-L6-v2",
        *,
        precision: Literal["auto", "exact"] = "auto",
        variant: str | None = None,
        quantization: Literal["int8", "fp16", "bf16"] | None = None,
        runtime: Literal["onnxruntime", "openvino"] | None = None,
        device: Literal["cpu", "cuda", "auto"] = "cpu",
        batch_tokens: int = 512,
        max_length: int | None = None,
        threads: int | None = None,
        normalize: bool | None = None,
        output_dims: int | None = None,
        output_dtype: OutputDtype = "float32",
        cache: EmbeddingCache | None = None,
    ) -> None:
        if not isinstance(model, str | os.PathLike):
            raise InputTypeError(
                f"model must be a model name or a folder path, got {type(model).__name__}"
            )
        if cache is not None and not isinstance(cache, EmbeddingCache):
            kind = type(cache).__name__
            raise ConfigError("cache", kind, f"must be an EmbeddingCache or None, not a {kind}")
        config = EmbeddingConfig(
            model=os.fspath(model),
            precision=precision,
            variant=variant,
            quantization=quantization,
            runtime=runtime,
            device=device,
            batch_tokens=batch_tokens,
            max_length=max_length,
            threads=threads,
            normalize=normalize,
            output_dims=output_dims,
            output_dtype=output_dtype,
        )
        self._load(config, cache)

    @classmethod
    def from_config(cls, config: EmbeddingConfig) -> EmbeddingEngine:
        """Build an engine from an :class:`EmbeddingConfig` (cache settings included).

        Examples
        --------
        >>> engine = EmbeddingEngine.from_config(EmbeddingConfig(output_dims=128))
        >>> engine.dimension
        128
        """
        if not isinstance(config, EmbeddingConfig):
            raise InputTypeError(f"config must be an EmbeddingConfig, got {type(config).__name__}")
        engine = cls.__new__(cls)
        cache = EmbeddingCache(
            max_entries=config.cache_size, ttl=config.cache_ttl, path=config.cache_path
        )
        engine._load(config, cache)
        return engine

    def _load(self, config: EmbeddingConfig, cache: EmbeddingCache | None) -> None:
        self.config = config
        folder = resolve_model(config.model)
        info = read_manifest(folder)
        variant, chosen_by = _choose_variant(config, info)
        spec = VARIANTS[variant]
        graph = info.graphs.get(spec.graph)
        if graph is None:
            flag = {
                "int8": "--quantize int8",
                "fp16": "--quantize fp16",
                "openvino-int8": "--openvino-int8",
            }.get(spec.graph, "")
            raise ModelError(
                f"model {info.name!r} in {folder} has no {spec.graph} graph; convert it again"
                f" with `neuralcore models convert SRC -o {folder} {flag}`"
            )
        verify_files(info, [*graph_files(graph), "tokenizer.json"])
        limit = info.position_limit
        if info.max_positions and limit is not None and info.max_positions > limit:
            raise ModelError(
                f"model manifest {folder / 'neuralcore.json'} is invalid: field 'max_positions'"
                f" = {info.max_positions} exceeds the position table of model {info.name!r}"
                f" ({limit} tokens)"
            )
        if config.max_length is not None and limit is not None and config.max_length > limit:
            raise ModelError(
                f"max_length={config.max_length} exceeds the position limit of model"
                f" {info.name!r} ({limit} tokens); use max_length <= {limit}"
            )
        if config.max_length is None and limit is not None and info.max_length > limit:
            raise ModelError(
                f"model manifest {folder / 'neuralcore.json'} is invalid: field 'max_length'"
                f" = {info.max_length} exceeds the model's position limit ({limit} tokens)"
            )
        self._info = info
        self._max_length = config.max_length or info.max_length
        self._normalize = info.normalize if config.normalize is None else config.normalize
        if config.output_dims is not None and config.output_dims > info.dimension:
            reason = f"exceeds the model's dimension {info.dimension}"
            raise ConfigError("output_dims", config.output_dims, reason)
        self._tokenizer = _load_tokenizer(folder / "tokenizer.json", self._max_length)
        self._pad_id = _pad_id(self._tokenizer)
        self._pad_multiple = _OPENVINO_PAD_MULTIPLE if spec.runtime == "openvino" else 1
        self._threads = config.threads or usable_cores()
        self._runner = open_runner(
            folder / graph,
            runtime=spec.runtime,
            threads=self._threads,
            device=config.device,
            bf16=spec.precision == "bf16",
            verify=lambda: verify_files(info, graph_files(graph)),
        )
        width = self._runner.width
        if width is not None and width != info.dimension:
            raise ModelError(
                f"model manifest {folder / 'neuralcore.json'} is invalid: field 'dimension'"
                f" = {info.dimension} does not match the hidden size of graph {graph} ({width})"
            )
        self._runtime_info = RuntimeInfo(
            runtime=spec.runtime,
            version=self._runner.version,
            variant=variant,
            description=spec.description,
            threads=self._threads,
            device=self._runner.device,
            chosen_by=chosen_by,
            streams=self._runner.streams,
        )
        self._cache = cache
        self._cache_id = _cache_id(
            info,
            variant=variant,
            graph=graph,
            max_length=self._max_length,
            normalize=self._normalize,
        )
        self._run_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Request] = []

    @property
    def runtime_info(self) -> RuntimeInfo:
        """What runs this engine: runtime, its version, variant, threads, device, and why.

        Examples
        --------
        >>> info = EmbeddingEngine().runtime_info
        >>> info.chosen_by, info.variant == EmbeddingEngine().model_info.default
        ('default', True)
        >>> EmbeddingEngine(precision="exact").runtime_info.chosen_by
        'exact'
        """
        info, streams = self._runtime_info, self._runner.streams
        # the streams OpenVINO made are known once its throughput model is compiled
        return info if info.streams == streams else info._replace(streams=streams)

    @property
    def dimension(self) -> int:
        """Width of returned vectors (after ``output_dims``)."""
        return self.config.output_dims or self._info.dimension

    @property
    def model_info(self) -> ModelInfo:
        """The model's manifest (name, dimension, pooling, prefixes, files...)."""
        return self._info

    @property
    def cache(self) -> EmbeddingCache:
        """The embedding cache used by ``embed(..., cache=True)`` (created on first use)."""
        if self._cache is None:
            self._cache = EmbeddingCache(max_entries=self.config.cache_size)
        return self._cache

    def __repr__(self) -> str:
        info = self._runtime_info
        return (
            f"EmbeddingEngine({self._info.name!r}, variant={info.variant!r},"
            f" runtime={info.runtime!r}, threads={info.threads}, streams={info.streams},"
            f" dimension={self.dimension})"
        )

    def embed(self, texts: Sequence[str], *, cache: bool = False) -> NDArray[Any]:
        """Embed texts into an ``(n, dimension)`` array (float32 unless configured otherwise).

        Parameters
        ----------
        texts : sequence of str
            The texts; an empty sequence gives a ``(0, dimension)`` array.
        cache : bool
            Look vectors up in / store them into :attr:`cache` by content hash.

        Raises
        ------
        InputTypeError
            ``texts`` is a single string, or an item is not a str (the index is named).

        Examples
        --------
        >>> engine = EmbeddingEngine()
        >>> engine.embed([]).shape
        (0, 384)
        >>> engine.embed(["a", 1])
        Traceback (most recent call last):
        ...
        neuralcore.errors.InputTypeError: texts[1] must be str, got int
        """
        items = _check_texts(texts)
        vectors = self._cached(items) if cache else self._submit(items)
        return finalize(
            vectors,
            dims=self.config.output_dims,
            normalize=self._normalize,
            dtype=self.config.output_dtype,
        )

    def embed_one(self, text: str) -> NDArray[Any]:
        """Embed one text into a ``(dimension,)`` vector.

        Examples
        --------
        >>> EmbeddingEngine().embed_one("").shape
        (384,)
        """
        if not isinstance(text, str):
            raise InputTypeError(f"text must be str, got {type(text).__name__}")
        vector: NDArray[Any] = self.embed([text])[0]
        return vector

    def embed_queries(self, texts: Sequence[str], *, cache: bool = False) -> NDArray[Any]:
        """Embed search queries, with the model's query prefix (e5: ``"query: "``).

        Examples
        --------
        >>> EmbeddingEngine().embed_queries(["where is the cat?"]).shape
        (1, 384)
        """
        prefix = self._info.query_prefix
        return self.embed([prefix + t for t in _check_texts(texts)], cache=cache)

    def embed_documents(self, texts: Sequence[str], *, cache: bool = False) -> NDArray[Any]:
        """Embed documents, with the model's document prefix (e5: ``"passage: "``).

        Examples
        --------
        >>> EmbeddingEngine().embed_documents(["The cat sleeps."]).shape
        (1, 384)
        """
        prefix = self._info.document_prefix
        return self.embed([prefix + t for t in _check_texts(texts)], cache=cache)

    async def embed_async(self, texts: Sequence[str], *, cache: bool = False) -> NDArray[Any]:
        """Like :meth:`embed`, run in a worker thread so the event loop keeps running.

        Concurrent calls from many tasks are batched together.

        Examples
        --------
        >>> asyncio.run(EmbeddingEngine().embed_async(["hi"])).shape
        (1, 384)
        """
        items = _check_texts(texts)
        return await asyncio.to_thread(self.embed, items, cache=cache)

    def embed_iter(
        self, texts: Iterable[str], *, chunk_size: int = 1024, cache: bool = False
    ) -> Iterator[NDArray[Any]]:
        """Embed a stream of texts chunk by chunk, holding one chunk in memory at a time.

        Yields one ``(<= chunk_size, dimension)`` array per chunk, in input order.

        Examples
        --------
        >>> engine = EmbeddingEngine()
        >>> [a.shape for a in engine.embed_iter(("t%d" % i for i in range(5)), chunk_size=2)]
        [(2, 384), (2, 384), (1, 384)]
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InputTypeError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        if isinstance(texts, str | bytes):
            raise InputTypeError("texts must be an iterable of str, not a single str/bytes")
        try:
            iterator, start = iter(texts), 0
        except TypeError:
            raise InputTypeError(
                f"texts must be an iterable of str, got {type(texts).__name__}"
            ) from None
        while chunk := list(itertools.islice(iterator, chunk_size)):
            yield self.embed(_check_texts(chunk, offset=start), cache=cache)
            start += len(chunk)

    # -- inference -------------------------------------------------------------------------

    def _cached(self, items: list[str]) -> NDArray[np.float32]:
        cache = self.cache
        keys = [EmbeddingCache.key(self._cache_id, t) for t in items]
        # a normalising engine's vectors are unit length: a stored row that is not is damaged
        found = [cache.get(k, self._info.dimension, unit_norm=self._normalize) for k in keys]
        missing = [i for i, v in enumerate(found) if v is None]
        out = np.empty((len(items), self._info.dimension), dtype=np.float32)
        if missing:
            fresh = self._submit([items[i] for i in missing])
            for row, i in enumerate(missing):
                cache.put(keys[i], fresh[row])
                out[i] = fresh[row]
        for i, vector in enumerate(found):
            if vector is not None:
                out[i] = vector
        return out

    def _submit(self, items: list[str]) -> NDArray[np.float32]:
        """Run ``items``, combined with whatever other threads queued meanwhile.

        One thread at a time runs the session (it already uses every core); the one that
        gets the lock takes all pending requests and embeds them as one sorted batch set.
        """
        if not items:
            return np.empty((0, self._info.dimension), dtype=np.float32)
        request = _Request(items)
        with self._pending_lock:
            self._pending.append(request)
        with self._run_lock:
            if not request.done.is_set():
                with self._pending_lock:
                    taken, self._pending = self._pending, []
                self._run_requests(taken)
        if request.error is not None:
            raise request.error
        return cast("NDArray[np.float32]", request.result)

    def _run_requests(self, taken: list[_Request]) -> None:
        try:
            vectors = self._infer([t for r in taken for t in r.texts])
        except BaseException as err:
            for r in taken:
                r.error = err
                r.done.set()
            raise
        start = 0
        for r in taken:
            r.result = vectors[start : start + len(r.texts)]
            start += len(r.texts)
            r.done.set()

    def _infer(self, texts: list[str]) -> NDArray[np.float32]:
        """Tokenize once, run length-sorted batches (several at once where the runtime has
        streams), pool each batch as it comes back."""
        encodings = self._encode(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self._info.dimension), dtype=np.float32)
        plan = [order[rows] for rows in _batches(lengths[order], self.config.batch_tokens)]
        masks: list[NDArray[np.int64]] = []

        def feeds() -> Iterator[dict[str, NDArray[np.int64]]]:
            for index in plan:
                ids, mask = self._pad([encodings[i].ids for i in index])
                masks.append(mask)
                yield self._feeds(ids, mask)

        try:
            for index, hidden in zip(plan, self._runner.run_many(feeds()), strict=True):
                out[index] = self._pool(hidden, masks.pop(0))
        except Exception as err:  # the runtimes' own exception classes
            raise ModelError(f"inference failed for model {self._info.name!r}: {err}") from err
        return out

    def _encode(self, texts: list[str]) -> list[Any]:
        cap = self._max_length * _CHARS_PER_TOKEN_CAP
        clipped = [t if len(t) <= cap else t[:cap] for t in texts]
        try:
            return list(self._tokenizer.encode_batch(clipped))
        except TypeError:  # lone surrogates (undecodable bytes) cannot cross into Rust
            # each becomes "?", deterministically (the same text always gives the same vector)
            fixed = [t.encode("utf-8", "replace").decode("utf-8") for t in clipped]
            return list(self._tokenizer.encode_batch(fixed))

    def _pad(self, rows: list[list[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        width = max(len(r) for r in rows)
        multiple = self._pad_multiple
        if multiple > 1:
            multiple = next((m for top, m in _OPENVINO_PAD_STEPS if width <= top), multiple)
        rounded = -(-width // multiple) * multiple
        width = max(width, min(rounded, self._max_length))
        ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def _feeds(
        self, ids: NDArray[np.int64], mask: NDArray[np.int64]
    ) -> dict[str, NDArray[np.int64]]:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {n: feeds[n] for n in self._runner.inputs}

    def _pool(self, hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        vectors = pool(hidden, mask, self._info.pooling)
        return l2_normalize(vectors) if self._normalize else vectors


def _choose_variant(config: EmbeddingConfig, info: ModelInfo) -> tuple[str, str]:
    """The variant to run and why: explicit settings, else the manifest's default/exact."""
    q, runtime = config.quantization, config.runtime
    if config.variant is not None:
        return config.variant, "explicit"
    if q is not None or runtime is not None:
        if runtime == "openvino" or q == "bf16":
            name = {"int8": "openvino-int8", "bf16": "openvino-bf16"}.get(q or "", "openvino-fp32")
        else:
            name = q or "fp32"
        return name, "explicit"
    chosen_by = "exact" if config.precision == "exact" else "default"
    name = info.exact if chosen_by == "exact" else info.default
    if VARIANTS[name].runtime == "openvino" and importlib.util.find_spec("openvino") is None:
        fallback = info.exact if VARIANTS[info.exact].runtime == "onnxruntime" else "fp32"
        logger.warning(
            "model %s: %s variant %s needs OpenVINO, which is not installed"
            ' (pip install "neuralcore-runtime[openvino]"); running %s on ONNX Runtime',
            info.name,
            chosen_by,
            name,
            fallback,
        )
        return fallback, chosen_by
    return name, chosen_by


def _cache_id(
    info: ModelInfo, *, variant: str, graph: str, max_length: int, normalize: bool
) -> str:
    """Everything that changes the cached (pre-``finalize``) vector, hashed into the key.

    Output dims and dtype are applied after the cache, so they are not part of it.
    """
    parts = [
        info.name,
        variant,
        info.files.get(graph, ""),
        info.files.get("tokenizer.json", ""),
        info.pooling,
        str(info.dimension),
        str(max_length),
        "normalized" if normalize else "raw",
    ]
    return "\x1f".join(parts)


def _batches(sorted_lengths: NDArray[np.int64], budget: int) -> Iterator[slice]:
    """Consecutive slices of length-sorted rows whose padded size fits ``budget`` tokens."""
    start, n = 0, len(sorted_lengths)
    while start < n:
        end = start + 1
        while (
            end < n
            and end - start < _MAX_ROWS
            and (end - start + 1) * int(sorted_lengths[end]) <= budget
        ):
            end += 1
        yield slice(start, end)
        start = end


def _check_texts(texts: Iterable[str], *, offset: int = 0) -> list[str]:
    if isinstance(texts, str | bytes):
        raise InputTypeError(
            f"texts must be a sequence of str, got a single {type(texts).__name__};"
            " use embed_one() or wrap it in a list"
        )
    try:
        items = list(texts)
    except TypeError as err:
        raise InputTypeError(
            f"texts must be a sequence of str, got {type(texts).__name__}"
        ) from err
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InputTypeError(f"texts[{i + offset}] must be str, got {type(item).__name__}")
    return items


def _load_tokenizer(path: os.PathLike[str], max_length: int) -> Any:
    tokenizers = require("tokenizers", extra="embedding")
    try:
        tokenizer = tokenizers.Tokenizer.from_file(os.fspath(path))
    except Exception as err:  # tokenizers raises plain Exception subclasses
        raise ModelError(f"cannot read tokenizer file {path}: {err}") from err
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def _pad_id(tokenizer: Any) -> int:
    for token in ("[PAD]", "<pad>", "<|endoftext|>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0
