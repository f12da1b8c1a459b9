"""``neuralcore bench vectors``: the vector kernels against pure Python and naive numpy.

Columns: ``pure Python`` is neuralcore's own stdlib fallback on lists (what runs without
numpy, and what ATLAS runs today); ``numpy naive`` recomputes norms on every call, the way
most application code does; ``neuralcore`` is the default (native) backend on float32
arrays. The HNSW rows come from :mod:`neuralcore._bench._hnsw`. ``--kernels`` adds the
measurements behind the choice of kernel library per shape.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

from neuralcore._bench._common import (
    Row,
    Section,
    _fmt,
    format_section,
    machine_line,
    median_seconds,
    ratio_text,
)

__all__ = ("kernel_rows", "main", "progress_line", "rows", "sections")

_log = logging.getLogger(__name__)
PURE, NAIVE, OURS = "pure Python", "numpy naive", "neuralcore"
PRE, RAW, METHOD = "numpy pre-normalised", "simsimd (raw)", "VectorOps method"
NK_RAW, MATMUL = "numkong (raw)", "matmul only"
NO_GLUE = "Python kernel"
DIM = 384


def _timer(quick: bool) -> Callable[[Callable[[], object]], float]:
    repeat, min_time = (3, 0.02) if quick else (7, 0.1)
    return lambda fn: median_seconds(fn, repeat=repeat, min_time=min_time)


def _data(n: int, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _naive() -> dict[str, Callable[..., Any]]:
    """The numpy code an application writes by hand: norms recomputed on every call."""
    import numpy as np

    norm = np.linalg.norm

    def top10(q: Any, m: Any) -> Any:
        s = m @ q / (norm(m, axis=1) * norm(q))
        idx = np.argpartition(-s, 10)[:10]
        return idx[np.argsort(-s[idx])]

    return {
        "pair": lambda a, b: float(np.dot(a, b) / (norm(a) * norm(b))),
        "many": lambda q, m: m @ q / (norm(m, axis=1) * norm(q)),
        "all": lambda a, b: (a @ b.T) / np.outer(norm(a, axis=1), norm(b, axis=1)),
        "l2": lambda a, b: float(norm(a - b)),
        "normalize": lambda a: a / norm(a),
        "top10": top10,
    }


def _scaled(
    time: Callable[[Callable[[], object]], float], fn: Callable[[], object], k: float
) -> float:
    return time(fn) * k


def rows(quick: bool = False, on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """Time every case for the three contenders (float32, 384-d).

    ``on_row`` is called with each row as soon as it is measured (a run takes minutes).
    """
    out: list[Row] = []
    for row in _rows(quick):
        out.append(row)
        if on_row is not None:
            on_row(row)
    return out


def _rows(quick: bool) -> Iterator[Row]:
    import neuralcore.vectors as nv
    from neuralcore.vectors import VectorOps

    t, naive, pure = _timer(quick), _naive(), VectorOps(backend="python")
    m = _data(100_000, 1)
    a, b, m1k, m10k = m[0].copy(), m[1].copy(), m[:1_000], m[:10_000]
    al, bl, m1kl = a.tolist(), b.tolist(), m1k.tolist()
    sub = 2 if quick else 10  # all-pairs rows timed in pure Python, then scaled
    yield Row("cosine, 1 pair", {
        PURE: t(lambda: pure.cosine_similarity(al, bl)),
        NAIVE: t(lambda: naive["pair"](a, b)),
        OURS: t(lambda: nv.cosine_similarity(a, b)),
    })  # fmt: skip
    yield Row("cosine, 1 vs 1,000", {
        PURE: t(lambda: pure.cosine_similarity(al, m1kl)),
        NAIVE: t(lambda: naive["many"](a, m1k)),
        OURS: t(lambda: nv.cosine_similarity(a, m1k)),
    })  # fmt: skip
    yield Row("cosine, 1 vs 10,000", {
        PURE: _scaled(t, lambda: pure.cosine_similarity(al, m1kl), 10),
        NAIVE: t(lambda: naive["many"](a, m10k)),
        OURS: t(lambda: nv.cosine_similarity(a, m10k)),
    }, note="pure: 1,000 rows x 10")  # fmt: skip
    yield Row("cosine, 1,000 x 1,000 all pairs", {
        PURE: _scaled(t, lambda: pure.cosine_similarity(m1kl[:sub], m1kl), 1_000 / sub),
        NAIVE: t(lambda: naive["all"](m1k, m[1_000:2_000])),
        OURS: t(lambda: nv.cosine_similarity(m1k, m[1_000:2_000])),
    }, note=f"pure: {sub} x 1,000 scaled")  # fmt: skip
    yield Row("L2, 1 pair", {
        PURE: t(lambda: pure.euclidean_distance(al, bl)),
        NAIVE: t(lambda: naive["l2"](a, b)),
        OURS: t(lambda: nv.euclidean_distance(a, b)),
    })  # fmt: skip
    yield Row("normalize, 1 vector", {
        PURE: t(lambda: pure.normalize(al)),
        NAIVE: t(lambda: naive["normalize"](a)),
        OURS: t(lambda: nv.normalize(a)),
    })  # fmt: skip
    yield Row("top-10 of 100,000 (cosine, 1 query)", {
        PURE: _scaled(t, lambda: pure.top_k(al, m1kl, 10), 100),
        NAIVE: t(lambda: naive["top10"](a, m)),
        OURS: t(lambda: nv.top_k(a, m, 10)),
    }, note="pure: 1,000 rows x 100")  # fmt: skip
    yield from _overhead_rows(quick, a, b)
    yield from _corpus_rows(quick, naive, m)


def _interleaved(fns: dict[str, Callable[[], object]], quick: bool) -> dict[str, float]:
    """Seconds per call for each contender, timed in alternating rounds (best round each).

    On a shared, loaded machine a contender timed alone can land in a quiet or a busy
    spell; alternating short rounds and keeping each one's fastest round compares them
    under the same conditions, which is what the ratios need.
    """
    import time

    number = {}
    for name, fn in fns.items():  # calls per round: about 5 ms each
        fn()
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < 0.005:
            fn()
            count += 1
        number[name] = max(1, count)
    best = dict.fromkeys(fns, math.inf)
    for _ in range(10 if quick else 40):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / number[name])
    return best


def _overhead_rows(quick: bool, a: Any, b: Any) -> Iterator[Row]:
    """The documented function against the method and against SimSIMD itself, one pair."""
    import simsimd

    import neuralcore
    from neuralcore import cosine_similarity
    from neuralcore.core import is_available
    from neuralcore.vectors import VectorOps

    ops, raw = VectorOps(), simsimd.cosine
    contenders: dict[str, Callable[[], object]] = {RAW: lambda: raw(a, b)}
    if is_available("numkong"):  # the kernel neuralcore calls, timed bare
        angular = importlib.import_module("numkong").angular
        contenders[NK_RAW] = lambda: angular(a, b)
    # the Python kernel the compiled glue wraps (what serves when it is not built)
    python_kernel = getattr(cosine_similarity, "fallback", cosine_similarity)
    values = _interleaved({
        **contenders,
        METHOD: lambda: ops.cosine_similarity(a, b),
        "neuralcore.cosine_similarity": lambda: neuralcore.cosine_similarity(a, b),
        NO_GLUE: lambda: python_kernel(a, b),
        OURS: lambda: cosine_similarity(a, b),
    }, quick)  # fmt: skip
    note = (
        "neuralcore: the function (from neuralcore import cosine_similarity); "
        f"{NO_GLUE}: the Python kernel alone (no compiled glue); "
        "interleaved rounds, best of each; every column includes its timing lambda"
    )
    yield Row("cosine, 1 pair: call overhead", values, note=note)


def _corpus_rows(quick: bool, naive: dict[str, Callable[..., Any]], m: Any) -> Iterator[Row]:
    """Corpus (rows normalised once) against numpy on a pre-normalised matrix and naive."""
    import numpy as np

    from neuralcore.vectors import Corpus

    q, queries, m1k = m[0].copy(), m[:1_000].copy(), m[1_000:2_000]
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    unit1k = unit[1_000:2_000].copy()
    big, small = Corpus(m), Corpus(m1k)
    norm = np.linalg.norm

    def pre_many(u: Any) -> Any:
        return u @ (q / norm(q))

    def pre_top(u: Any, x: Any) -> Any:
        s = u @ (x / norm(x))
        idx = np.argpartition(-s, 10)[:10]
        return idx[np.argsort(-s[idx])]

    note = "interleaved rounds, best of each"
    all_pairs_note = f"{note}; numpy pre-normalised: stored rows once, queries per call"
    yield Row("Corpus: cosine, 1 query vs 1,000", _interleaved({
        NAIVE: lambda: naive["many"](q, m1k),
        PRE: lambda: pre_many(unit1k),
        OURS: lambda: small.cosine(q),
    }, quick), note=note)  # fmt: skip
    yield Row("Corpus: top-10 of 100,000, 1 query", _interleaved({
        NAIVE: lambda: naive["top10"](q, m),
        PRE: lambda: pre_top(unit, q),
        OURS: lambda: big.top_k(q, 10),
    }, quick), note=note)  # fmt: skip
    unit_queries = queries / norm(queries, axis=1, keepdims=True)
    all_pairs_note += f"; {MATMUL}: both sides normalised beforehand (the bound: one GEMM)"
    yield Row("Corpus: cosine, 1,000 x 1,000 all pairs", _interleaved({
        NAIVE: lambda: naive["all"](queries, m1k),
        PRE: lambda: (queries / norm(queries, axis=1, keepdims=True)) @ unit1k.T,
        MATMUL: lambda: unit_queries @ unit1k.T,
        OURS: lambda: small.cosine(queries),
    }, quick), note=all_pairs_note)  # fmt: skip


def kernel_rows(quick: bool = False) -> tuple[list[Row], list[str]]:
    """The library comparison behind the per-shape kernel choice (cosine, float32, 384-d).

    NumKong (SimSIMD's successor, installed with USearch) is timed when present.
    """
    import numpy as np
    import simsimd

    from neuralcore.core import is_available

    nk: Any = importlib.import_module("numkong") if is_available("numkong") else None

    t = _timer(quick)
    m = _data(2_000, 2)
    q, m1k, other = m[0].copy(), m[:1_000], m[1_000:]
    unit = m1k / np.linalg.norm(m1k, axis=1, keepdims=True)

    def blas_norms(x: Any, y: Any) -> Any:
        xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
        return xn @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T

    def ss(x: Any, y: Any, threads: int = 1) -> Any:
        return simsimd.cdist(x, y, metric="cosine", out_dtype="float32", threads=threads)

    cols = ["numpy, norms per call", "numpy, pre-normalised", "numkong", "simsimd", "simsimd 2 thr"]
    out = [
        Row("1 pair", {
            cols[0]: t(lambda: float(q @ m[1] / (np.linalg.norm(q) * np.linalg.norm(m[1])))),
            cols[2]: t(lambda: nk.angular(q, m[1])) if nk else math.nan,
            cols[3]: t(lambda: simsimd.cosine(q, m[1])),
        }),
        Row("1 vs 1,000", {
            cols[0]: t(lambda: blas_norms(q[None, :], m1k)),
            cols[1]: t(lambda: unit @ q),
            cols[2]: t(lambda: nk.cdist(q[None, :], m1k, metric="angular")) if nk else math.nan,
            cols[3]: t(lambda: ss(q[None, :], m1k)),
            cols[4]: t(lambda: ss(q[None, :], m1k, 2)),
        }),
        Row("1,000 x 1,000", {
            cols[0]: t(lambda: blas_norms(m1k, other)),
            cols[1]: t(lambda: unit @ unit.T),
            cols[2]: t(lambda: nk.cdist(m1k, other, metric="angular")) if nk else math.nan,
            cols[3]: t(lambda: ss(m1k, other)),
            cols[4]: t(lambda: ss(m1k, other, 2)),
        }),
    ]  # fmt: skip
    return out, cols


def _hnsw_rows(quick: bool, **options: Any) -> list[Row]:
    try:
        module = importlib.import_module("neuralcore._bench._hnsw")
    except ModuleNotFoundError as err:
        if err.name != "neuralcore._bench._hnsw":
            raise
        _log.warning("neuralcore._bench._hnsw is missing: no HNSW rows")
        return []
    result: list[Row] = module.hnsw_rows(quick, **options)
    return result


def _columns(all_rows: list[Row]) -> list[str]:
    """pure, naive, any extra contenders the other rows bring, then ours last."""
    extra = [c for r in all_rows for c in r.values if c not in (PURE, NAIVE, OURS)]
    return [PURE, NAIVE, *dict.fromkeys(extra), OURS]


def progress_line(row: Row) -> str:
    """One measured row as a line, printed while the rest of the table is still running.

    Examples
    --------
    >>> progress_line(Row("cosine, 1 pair", {NAIVE: 3e-6, "faiss": 2e-6, OURS: 5e-7}))
    'measured cosine, 1 pair: numpy naive 3.00 us, faiss 2.00 us, neuralcore 500 ns (6.0x numpy naive)'
    >>> progress_line(Row("recall", {OURS: 0.96}, unit="value"))
    'measured recall: neuralcore 0.96'
    """  # noqa: E501
    values = ", ".join(f"{c} {_fmt(v, row.unit)}" for c, v in row.values.items())
    baseline = next((c for c in (NAIVE, PURE) if c in row.values), None)
    ratio = "-"
    if baseline is not None and OURS in row.values:
        ratio = ratio_text(row.values[baseline], row.values[OURS], row.unit)
    return f"measured {row.case}: {values}" + (f" ({ratio} {baseline})" if ratio != "-" else "")


def sections(
    quick: bool = False,
    *,
    hnsw: bool = True,
    on_row: Callable[[Row], None] | None = None,
    kernels: bool = True,
    hnsw_options: dict[str, Any] | None = None,
) -> list[Section]:
    """The vectors section of ``neuralcore bench all`` (kernel rows, then the HNSW rows).

    ``on_row`` sees each row as soon as it is measured (the HNSW rows come as one group).
    ``kernels=False`` skips the kernel and Corpus rows; ``hnsw_options`` go to
    :func:`neuralcore._bench._hnsw.hnsw_rows` (``n``, ``parts``).
    """
    from neuralcore.vectors._select import describe_backend

    all_rows = rows(quick, on_row=on_row) if kernels else []
    if hnsw:
        hnsw_rows = _hnsw_rows(quick, **(hnsw_options or {}))
        if on_row is not None:
            for row in hnsw_rows:
                on_row(row)
        all_rows += hnsw_rows
    info = describe_backend("vectors")
    notes = (
        f"float32, {DIM}-d, median per call. neuralcore backend: {info.library} {info.version} "
        f"({info.detail}). Pure Python runs on lists; rows marked 'scaled' time a subset."
    )
    return [Section("Vectors", all_rows, _columns(all_rows), OURS, notes)]


def main(argv: list[str]) -> int:
    """Print the vectors benchmark table (``--quick`` for a fast run)."""
    parser = argparse.ArgumentParser(prog="neuralcore bench vectors")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--kernels", action="store_true", help="also compare kernel libraries")
    parser.add_argument("--no-hnsw", action="store_true", help="skip the (slow) HNSW rows")
    parser.add_argument("--no-kernels", action="store_true", help="skip the kernel and Corpus rows")
    parser.add_argument(
        "--hnsw-size", type=int, default=None, help="HNSW points (default 100,000; 20,000 quick)"
    )
    parser.add_argument(
        "--hnsw-parts",
        default=None,
        help="comma-separated HNSW row groups: search,faiss,equal,storage (or i8, bf16),file,"
        "libraries (default all)",
    )
    parser.add_argument(
        "--hnsw-cache",
        default=None,
        help="folder: reuse the f32 HNSW index an earlier run built there (else build, save)",
    )
    args = parser.parse_args(argv)
    options: dict[str, Any] = {}
    if args.hnsw_size is not None:
        options["n"] = args.hnsw_size
    if args.hnsw_cache is not None:
        options["cache"] = args.hnsw_cache
    if args.hnsw_parts is not None:
        options["parts"] = tuple(p.strip() for p in args.hnsw_parts.split(",") if p.strip())
    print(f"Machine: {machine_line()}\n", flush=True)
    found = sections(
        args.quick,
        hnsw=not args.no_hnsw,
        on_row=_print_row,
        kernels=not args.no_kernels,
        hnsw_options=options,
    )
    print(flush=True)
    for section in found:
        print(format_section(section), flush=True)
    if args.kernels:
        krows, cols = kernel_rows(args.quick)
        kernels = Section("Kernel choice (cosine, float32)", krows, cols, "simsimd")
        print(format_section(kernels), flush=True)
    return 0


def _print_row(row: Row) -> None:
    print(progress_line(row), flush=True)
