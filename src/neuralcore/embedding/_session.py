"""The only place that opens model graphs: ONNX Runtime sessions and OpenVINO models.

Both are wrapped in a :class:`Runner` (input names + ``run(feeds) -> hidden states``) so
the engine does not care which library executes the graph.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
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
    ``threads / streams`` threads.
    """

    def __init__(
        self, inputs: list[str], description: str, *, version: str, device: str, streams: int = 1
    ) -> None:
        self.inputs = inputs
        self.description = description
        self.version = version
        self.device = device
        self.streams = streams

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
        super().__init__(
            inputs,
            f"onnxruntime {provider}, {threads} threads",
            version=str(ort.__version__),
            device="cuda" if provider == _CUDA else "cpu",
        )

    def run(self, feeds: Feeds) -> NDArray[np.float32]:
        (hidden,) = self._session.run(None, feeds, self._options)
        result: NDArray[np.float32] = hidden
        return result


class _OpenVinoRunner(Runner):
    """OpenVINO CPU, one stream per thread (throughput hint) when there are several threads.

    A batch runs on one stream of one thread, several batches at once. On 2 cores, with
    all-MiniLM-L6-v2's static int8 graph, that was ~1.25x the one-stream, two-thread
    latency setting on 100 texts, and no slower on one short text (kernels that small gain
    little from a second thread); see ``neuralcore bench embedding``.
    """

    def __init__(self, path: Path, *, threads: int, precision: Literal["f32", "bf16"]) -> None:
        ov = require("openvino", extra="openvino")
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "THROUGHPUT" if threads > 1 else "LATENCY",
            "NUM_STREAMS": threads,
        }
        cache_dir = _openvino_cache_dir()
        if cache_dir is not None:  # compiled kernels kept on disk: later loads start faster
            config["CACHE_DIR"] = str(cache_dir)
        try:
            compiled = ov.Core().compile_model(str(path), "CPU", config)
            streams = max(1, int(compiled.get_property("NUM_STREAMS")))
            self._requests = [compiled.create_infer_request() for _ in range(streams)]
        except Exception as err:  # openvino raises RuntimeError or its own classes
            raise ModelError(f"OpenVINO cannot load model file {path}: {err}") from err
        inputs = [i.get_any_name() for i in compiled.inputs]
        kind = "static int8" if path.suffix == ".xml" else precision
        super().__init__(
            inputs,
            f"openvino CPU {kind}, {threads} threads in {streams} streams",
            version=str(ov.get_version()).split("-")[0],
            device="cpu",
            streams=streams,
        )

    def run(self, feeds: Feeds) -> NDArray[np.float32]:
        request = self._requests[0]
        request.infer(feeds, share_inputs=True)
        # the request reuses its output buffer on the next call: copy
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def run_many(self, batches: Iterable[Feeds]) -> Iterator[NDArray[np.float32]]:
        free = deque(self._requests)
        busy: deque[Any] = deque()
        try:
            for feeds in batches:
                if not free:
                    yield self._finish(busy, free)
                request = free.popleft()
                request.start_async(feeds, share_inputs=False)
                busy.append(request)
            while busy:
                yield self._finish(busy, free)
        finally:  # an abandoned or failed run: let the requests still running finish
            for request in busy:
                request.wait()

    @staticmethod
    def _finish(busy: deque[Any], free: deque[Any]) -> NDArray[np.float32]:
        request = busy.popleft()
        request.wait()
        free.append(request)
        hidden: NDArray[np.float32] = request.get_output_tensor(0).data
        return hidden


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
    path: Path, *, runtime: Runtime, threads: int, device: Device, bf16: bool = False
) -> Runner:
    """Open a graph with neuralcore's settings on the chosen runtime.

    ONNX Runtime: intra-op = ``threads``, inter-op = 1, CUDA when asked and present.
    OpenVINO: CPU only, one stream per thread (:meth:`Runner.run_many` keeps them busy),
    f32 or bf16 inference precision;
    ``path`` is an ONNX file or an OpenVINO IR ``.xml`` (the static int8 graph, whose
    quantized ops run in int8 and the rest at the f32 hint).

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
        runner: Runner = _OpenVinoRunner(path, threads=threads, precision="bf16" if bf16 else "f32")
    else:
        runner = _OrtRunner(path, threads=threads, device=device)
    logger.info("loaded %s: %s", path.name, runner.description)
    return runner
