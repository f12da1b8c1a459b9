"""The only place that opens model graphs: ONNX Runtime sessions and OpenVINO models.

Both are wrapped in a :class:`Runner` (input names + ``run(feeds) -> hidden states``) so
the engine does not care which library executes the graph.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from neuralcore.core import usable_cores
from neuralcore.core._optional import require
from neuralcore.errors import ConfigError, ModelError

__all__ = ("Device", "Runner", "Runtime", "open_runner", "usable_cores")

logger = logging.getLogger(__name__)

Device = Literal["cpu", "cuda", "auto"]
Runtime = Literal["onnxruntime", "openvino"]
Feeds = dict[str, NDArray[np.int64]]
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def _providers(ort: Any, device: Device) -> list[str]:
    available = ort.get_available_providers()
    if device == "cpu":
        return [_CPU]
    if _CUDA in available:
        return [_CUDA, _CPU]
    if device == "cuda":
        logger.warning(
            "device='cuda' asked for but onnxruntime has no CUDA provider (available: %s);"
            " falling back to CPU. Install onnxruntime-gpu on a machine with an NVIDIA GPU.",
            ", ".join(available),
        )
    return [_CPU]


class Runner:
    """An opened graph: ``inputs`` (names it takes) and ``run(feeds)`` -> last hidden state.

    ``streams`` batches can be in flight at once (:meth:`run_many`); each stream has
    ``threads / streams`` threads. ``width`` is the hidden states' last dimension as the
    graph declares it (None where the graph leaves it open).
    """

    def __init__(
        self,
        inputs: list[str],
        description: str,
        *,
        version: str,
        device: str,
        streams: int = 1,
        width: int | None = None,
    ) -> None:
        self.inputs = inputs
        self.description = description
        self.version = version
        self.device = device
        self.streams = streams
        self.width = width

    def run(self, feeds: Feeds) -> NDArray[np.float32]:
        """Execute the graph on one padded batch; the result is the caller's to keep."""
        raise NotImplementedError

    def run_many(self, batches: Iterable[Feeds]) -> Iterator[NDArray[np.float32]]:
        """Execute the graph on each batch, yielding the hidden states in order.

        Each yielded array is valid only until the next one is asked for (the runtime
        reuses its output buffers): pool it before moving on. Up to :attr:`streams`
        batches run at once.
        """
        for feeds in batches:
            yield self.run(feeds)


class _OrtRunner(Runner):
    def __init__(self, path: Path, *, threads: int, device: Device) -> None:
        ort = require("onnxruntime", extra="embedding")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_mem_pattern = False  # shapes vary per batch: patterns would pile up
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=_providers(ort, device))
        except Exception as err:  # onnxruntime raises its own non-RuntimeError classes
            raise ModelError(f"ONNX Runtime cannot load model file {path}: {err}") from err
        self._session = session
        # hand arena memory back after each run: RSS stays bounded across varied shapes
        self._options = ort.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        provider = session.get_providers()[0]
        inputs = [i.name for i in session.get_inputs()]
        shape = session.get_outputs()[0].shape
        super().__init__(
            inputs,
            f"onnxruntime {provider}, {threads} threads",
            version=str(ort.__version__),
            device="cuda" if provider == _CUDA else "cpu",
            width=shape[-1] if shape and isinstance(shape[-1], int) else None,
        )

    def run(self, feeds: Feeds) -> NDArray[np.float32]:
        (hidden,) = self._session.run(None, feeds, self._options)
        result: NDArray[np.float32] = hidden
        return result


class _OpenVinoRunner(Runner):
    """OpenVINO CPU: one stream per thread for many batches, all threads on a lone batch.

    The throughput model (one stream per thread, one batch per stream, several batches at
    once) runs calls of several batches. When the graph's word embeddings are int8 (the
    static int8 graph), their lookup moves to numpy (:class:`_WordEmbeddings`) and a second,
    latency model of the same graph (one stream of all threads) runs calls that fit in one
    batch (one text, a few short texts): it is compiled at load, the throughput model on
    the first call of several batches. Without the table, a compiled model is ~40 MB
    instead of ~100 MB, so both cost ~35 MB more than one did (peak RSS on the benchmark
    303 -> 340 MB, 41% of sentence-transformers'). A graph whose table is not
    int8 (the fp32 graph) gets the throughput model only, and a lone batch runs on one
    stream of ``threads / streams`` threads.

    On 2 cores with all-MiniLM-L6-v2's static int8 graph: streams 1.12x the latency model
    on 1,000 texts (equal on 100); the latency model ~1.5x the one-thread stream on one
    text; see ``neuralcore bench embedding``.

    A failed inference never leaves a stale result behind: inputs are copied into the
    request, each output's shape is checked against its input, and the model that failed
    is compiled afresh (see :meth:`_recompile`). Once every model is compiled the split
    graph is dropped; a recompile checks the files (``verify``) and reads them again.
    """

    def __init__(
        self,
        path: Path,
        *,
        threads: int,
        precision: Literal["f32", "bf16"],
        verify: Callable[[], None] | None = None,
    ) -> None:
        ov = require("openvino", extra="openvino")
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
        }
        cache_dir = _openvino_cache_dir()
        if cache_dir is not None:  # compiled kernels kept on disk: later loads start faster
            config["CACHE_DIR"] = str(cache_dir)
        self._config = config
        self._core = ov.Core()
        # read the graph's weights and the cached blobs into memory instead of mapping them:
        # a mapped file truncated or rewritten while the engine runs (a reinstall, a full
        # disk) killed the process with SIGBUS at the next compile or inference; read, it
        # is a ModelError (the files are checked before any later read) or nothing at all.
        # Costs ~9 MB of peak RSS (285 -> 294 MB on the benchmark).
        self._core.set_property({"ENABLE_MMAP": False})
        self._path = path
        self._verify = verify  # checks the files again before a later read (a recompile)
        self._loaded = False  # True once __init__ is done: later compiles check the files
        self._model: Any = None  # what to compile: the split graph, or the file's path
        self._lookup: _WordEmbeddings | None = None
        self._read_model()
        self._throughput_config: dict[str, Any] | None = None
        self._latency_model: Any = None  # one stream of all threads
        self._latency: Any = None  # its request
        self._streams_model: Any = None  # one stream per thread
        self._requests: list[Any] = []  # its requests, one per stream
        self._compile_lock = threading.Lock()
        if threads > 1:
            self._throughput_config = {
                **config,
                "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": threads,
            }
        # a lone batch on all threads: where the table is split off (both models then cost
        # ~35 MB more than one did), or where there is only one thread anyway
        self._use_latency = threads == 1 or self._lookup is not None
        self._threads = threads
        self._kind = "static int8" if path.suffix == ".xml" else precision
        # until the throughput model is compiled: OpenVINO makes no more streams than the
        # cores it may use (threads=8 on 2 cores gave 2); the compiled count replaces it
        self.streams = 1 if threads == 1 else min(threads, usable_cores())
        if self._use_latency:
            compiled = self._latency_request()
        else:
            self._stream_requests()
            compiled = self._streams_model
        inputs = [
            i.get_any_name() for i in compiled.inputs if _WORD_EMBEDDINGS not in i.get_names()
        ]
        shape = compiled.outputs[0].get_partial_shape()
        last = shape[shape.rank.get_length() - 1] if shape.rank.is_static else None
        super().__init__(
            inputs,
            self._describe(),
            version=str(ov.get_version()).split("-")[0],
            device="cpu",
            streams=self.streams,
            width=last.get_length() if last is not None and last.is_static else None,
        )
        self._loaded = True

    def _describe(self) -> str:
        """The runner in words, with the streams OpenVINO made (or will make)."""
        threads, streams = self._threads, self.streams
        if threads == 1:
            layout = "1 stream"
        elif self._use_latency:
            layout = f"1 stream of {threads} for one batch, {streams} streams for several"
        else:
            layout = f"{streams} streams"
        return f"openvino CPU {self._kind}, {threads} threads ({layout})"

    def _read_model(self) -> None:
        """The graph to compile: the file's path (the disk cache then skips reading it), or,
        when its word-embedding table is int8, the graph without it (looked up in numpy)."""
        path = self._path
        self._model = str(path)
        if path.suffix == ".xml":  # an IR (the static int8 graph): its table may be int8
            try:
                model = self._core.read_model(str(path))
            except Exception as err:  # openvino raises RuntimeError or its own classes
                raise ModelError(f"OpenVINO cannot load model file {path}: {err}") from err
            lookup = _split_word_embeddings(model)
            if lookup is not None:
                self._model, self._lookup = model, lookup

    def _compile(self, config: dict[str, Any]) -> Any:
        """Compile the graph (under ``_compile_lock``); read it first if it was dropped."""
        # after load (a recompile), the files are read again: they must still be the same
        reads_file = self._model is None or isinstance(self._model, str)
        if self._loaded and reads_file and self._verify is not None:
            self._verify()
        if self._model is None:  # the split graph was dropped once every model compiled
            self._read_model()
        try:
            compiled = self._core.compile_model(self._model, "CPU", _usable_cache(config))
        except Exception as err:  # openvino raises RuntimeError or its own classes
            raise ModelError(f"OpenVINO cannot load model file {self._path}: {err}") from err
        return compiled

    def _release_model(self) -> None:
        """Drop the split graph once every model this runner uses is compiled."""
        done = (not self._use_latency or self._latency is not None) and (
            self._throughput_config is None or bool(self._requests)
        )
        if done and not isinstance(self._model, str):
            self._model = None

    def _feeds(self, request: Any, feeds: Feeds) -> Feeds:
        """The feeds to give ``request``; the word embeddings, if split off, are looked up
        straight into the request's own input tensor (shaped for this batch, every value
        written): no float32 array of the batch's size besides it, and none to copy."""
        if self._lookup is not None:
            tensor = request.get_tensor(_WORD_EMBEDDINGS)
            tensor.shape = [*feeds["input_ids"].shape, self._lookup.width]
            self._lookup.fill(feeds["input_ids"], tensor.data)
        return feeds

    def _latency_request(self) -> Any:
        """The latency model's compiled model, compiling it if there is none (at load, or
        after a failure discarded it)."""
        with self._compile_lock:
            if self._latency is None:
                config = {**self._config, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
                compiled = self._compile(config)
                self._latency_model, self._latency = compiled, compiled.create_infer_request()
                self._release_model()
            return self._latency_model

    def _stream_requests(self) -> list[Any]:
        """The throughput model's requests, compiling it on first use (or after a failure)."""
        if not self._requests and self._throughput_config is not None:
            with self._compile_lock:
                if not self._requests:
                    compiled = self._compile(self._throughput_config)
                    streams = max(1, int(compiled.get_property("NUM_STREAMS")))
                    self._streams_model = compiled
                    self._requests = [compiled.create_infer_request() for _ in range(streams)]
                    self.streams = streams
                    self.description = self._describe()
                    self._release_model()
        return self._requests

    def _discard(self, *, latency: bool) -> None:
        """Forget a model after a failed inference; the next call compiles it afresh.

        A new request is not enough: the requests of one compiled stream share its graph,
        and a failed shape inference leaves that graph's cached shapes half updated (the
        next call with the previous call's shape then failed too, in any request). The
        next call compiles the model again (from the disk cache where there is one), after
        checking the files if the graph was dropped; until that succeeds, calls fail.
        """
        with self._compile_lock:
            if latency:
                self._latency_model = self._latency = None
            else:
                self._streams_model, self._requests = None, []

    def run(self, feeds: Feeds) -> NDArray[np.float32]:
        return np.array(self._infer_one(feeds), dtype=np.float32, copy=True)

    def _infer_one(self, feeds: Feeds) -> NDArray[np.float32]:
        """One batch on the latency model (or the first stream); valid until the next call.

        Inputs are copied into the request (``share_inputs=False``) and the output's shape
        is checked against them: a request that failed keeps its previous output, which
        must never come back as this call's. After any failure the model is discarded.
        """
        if self._use_latency:
            self._latency_request()
            request = self._latency
        else:
            request = self._stream_requests()[0]
        try:
            # share_outputs: infer's own return value (a copy of the outputs) is not used
            request.infer(self._feeds(request, feeds), share_inputs=False, share_outputs=True)
            hidden: NDArray[np.float32] = request.get_output_tensor(0).data
            _check_output(hidden, feeds)
        except BaseException:
            self._discard(latency=self._use_latency)
            raise
        return hidden

    def run_many(self, batches: Iterable[Feeds]) -> Iterator[NDArray[np.float32]]:
        iterator = iter(batches)
        first = next(iterator, None)
        if first is None:
            return
        second = next(iterator, None)
        if second is None:  # a lone batch: the latency model where there is one
            yield self._infer_one(first)
            return
        requests = self._stream_requests()
        if not requests:  # one thread: the latency model only
            for feeds in itertools.chain((first, second), iterator):
                yield self._infer_one(feeds)
            return
        yield from self._run_streams(requests, itertools.chain((first, second), iterator))

    def _run_streams(
        self, requests: list[Any], batches: Iterable[Feeds]
    ) -> Iterator[NDArray[np.float32]]:
        free = deque(requests)
        busy: deque[tuple[Any, Feeds]] = deque()
        try:
            for feeds in batches:
                if not free:
                    yield self._finish(busy, free)
                request = free.popleft()
                busy.append((request, feeds))
                request.start_async(self._feeds(request, feeds), share_inputs=False)
            while busy:
                yield self._finish(busy, free)
        except Exception:  # the streams' graphs may keep stale state: start afresh
            self._discard(latency=False)
            raise
        finally:  # an abandoned or failed run: let the requests still running finish
            for request, _ in busy:
                with contextlib.suppress(Exception):  # the run already failed or was abandoned
                    request.wait()

    @staticmethod
    def _finish(busy: deque[tuple[Any, Feeds]], free: deque[Any]) -> NDArray[np.float32]:
        request, feeds = busy.popleft()
        request.wait()
        hidden: NDArray[np.float32] = request.get_output_tensor(0).data
        _check_output(hidden, feeds)
        free.append(request)
        return hidden


def _check_output(hidden: NDArray[Any], feeds: Feeds) -> None:
    """Raise unless ``hidden`` is (rows, tokens, width) for ``feeds``' ids (a stale output)."""
    ids = feeds["input_ids"]
    if hidden.ndim != 3 or hidden.shape[:2] != ids.shape:
        raise ModelError(
            f"the runtime returned hidden states of shape {tuple(hidden.shape)}"
            f" for input ids of shape {tuple(ids.shape)}"
        )


_WORD_EMBEDDINGS = "neuralcore_word_embeddings"


class _WordEmbeddings:
    """An int8 word-embedding table with one scale per row, looked up in numpy.

    The same arithmetic as the graph's ``Convert -> Multiply -> Gather`` (int8 to f32,
    times the row's f32 scale), so the vectors do not change.
    """

    def __init__(self, table: NDArray[np.int8], scale: NDArray[np.float32]) -> None:
        self._table = table
        self._scale = scale
        self.width = int(table.shape[1])

    def __call__(self, ids: NDArray[np.int64]) -> NDArray[np.float32]:
        out = np.empty((*ids.shape, self.width), dtype=np.float32)
        self.fill(ids, out)
        return out

    def fill(self, ids: NDArray[np.int64], out: NDArray[np.float32]) -> None:
        """Write the rows of ``ids`` (rows, tokens) into ``out`` (rows, tokens, width), one
        text at a time: the int8 rows in between are one text's, not the batch's."""
        for row, target in zip(ids, out, strict=True):
            np.multiply(self._table[row], self._scale[row], out=target)


def _split_word_embeddings(model: Any) -> _WordEmbeddings | None:
    """Take the int8 word-embedding lookup out of ``model``; None when it has none.

    The graph's ``Gather(Multiply(Convert(int8 table), row scales), input_ids)`` becomes a
    float input (:data:`_WORD_EMBEDDINGS`) that :class:`_WordEmbeddings` fills. Each
    compiled model would otherwise keep its own dequantized copy of the table.
    """
    ov = require("openvino", extra="openvino")
    for op in model.get_ops():
        if op.get_type_name() != "Gather" or op.get_attributes().get("batch_dims", 0) != 0:
            continue
        table_node, ids_node, axis_node = (op.input_value(i).get_node() for i in range(3))
        if (
            ids_node.get_type_name() != "Parameter"
            or "input_ids" not in ids_node.output(0).get_names()
            or axis_node.get_type_name() != "Constant"
            or np.asarray(axis_node.get_data()).tolist() not in (0, [0])
            or table_node.get_type_name() != "Multiply"
        ):
            continue
        convert, scale_node = (table_node.input_value(i).get_node() for i in range(2))
        if convert.get_type_name() != "Convert" or scale_node.get_type_name() != "Constant":
            continue
        weights = convert.input_value(0).get_node()
        if weights.get_type_name() != "Constant":
            continue
        table = np.array(weights.get_data(), copy=True)
        scale = np.array(scale_node.get_data(), dtype=np.float32, copy=True)
        if (
            table.dtype != np.int8
            or table.ndim != 2
            or scale.shape != (table.shape[0], 1)
            or convert.get_output_element_type(0) != ov.Type.f32
        ):
            continue
        param = ov.opset13.parameter(ov.PartialShape([-1, -1, table.shape[1]]), ov.Type.f32)
        param.output(0).get_tensor().set_names({_WORD_EMBEDDINGS})
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(param.output(0))
        model.add_parameters([param])
        model.validate_nodes_and_infer_types()
        return _WordEmbeddings(table, scale)
    return None


def _usable_cache(config: dict[str, Any]) -> dict[str, Any]:
    """``config``, once its ``CACHE_DIR`` holds nothing OpenVINO could hang on; without it
    when that cannot be made so.

    OpenVINO opens a cached blob without checking what it is: a FIFO (or a socket, a
    device, a link to one) at a blob's path blocked the load forever. Entries that are
    neither regular files nor folders are removed; where one cannot be, the graph is
    compiled without the cache (slower, never stuck).
    """
    folder = config.get("CACHE_DIR")
    if folder is None:
        return config
    try:
        with os.scandir(folder) as entries:
            odd = [
                e.path
                for e in entries
                if not e.is_file(follow_symlinks=False) and not e.is_dir(follow_symlinks=False)
            ]
        for path in odd:
            os.unlink(path)
            logger.warning("removed %s from OpenVINO's cache folder: not a regular file", path)
    except OSError as err:
        logger.warning("compiling without OpenVINO's cache folder %s: %s", folder, err)
        return {k: v for k, v in config.items() if k != "CACHE_DIR"}
    return config


def _openvino_cache_dir() -> Path | None:
    """``<neuralcore home>/openvino-cache``, or None when it cannot be created."""
    from neuralcore.embedding._models import neuralcore_home

    folder = neuralcore_home() / "openvino-cache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def open_runner(
    path: Path,
    *,
    runtime: Runtime,
    threads: int,
    device: Device,
    bf16: bool = False,
    verify: Callable[[], None] | None = None,
) -> Runner:
    """Open a graph with neuralcore's settings on the chosen runtime.

    ONNX Runtime: intra-op = ``threads``, inter-op = 1, CUDA when asked and present.
    OpenVINO: CPU only, one stream of all threads for a call of one batch, one stream per
    thread for several (:meth:`Runner.run_many` keeps them busy), f32 or bf16 precision;
    ``path`` is an ONNX file or an OpenVINO IR ``.xml`` (the static int8 graph, whose
    quantized ops run in int8 and the rest at the f32 hint). ``verify`` (OpenVINO) is called
    before the file is read again, when a model is compiled afresh after a failed inference
    (it should raise when the file no longer matches what was loaded).

    Raises
    ------
    ModelError
        The runtime cannot load the file (foreign or corrupt); the message names it.
    MissingDependencyError
        The runtime is not installed; the message names the extra.
    ConfigError
        OpenVINO with ``device="cuda"``.
    """
    if runtime == "openvino":
        if device == "cuda":
            raise ConfigError("device", device, "the OpenVINO runtime here runs on CPU only")
        precision: Literal["f32", "bf16"] = "bf16" if bf16 else "f32"
        runner: Runner = _OpenVinoRunner(path, threads=threads, precision=precision, verify=verify)
    else:
        runner = _OrtRunner(path, threads=threads, device=device)
    logger.info("loaded %s: %s", path.name, runner.description)
    return runner
