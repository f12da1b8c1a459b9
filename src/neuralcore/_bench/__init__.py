"""Benchmarks shipped with the package, so ``neuralcore bench`` works from any install.

Each suite module (``vectors``, ``embedding``, ``messaging``, ``bridges``) has
``main(argv)`` and ``sections(quick)``; :mod:`neuralcore._bench.report` runs them all.
This module registers the ``bench`` command; it imports nothing heavy.
"""

from __future__ import annotations

import argparse
import importlib
import io
import sys
from typing import Any

__all__ = ("SUITES", "register")

# suite -> (what it measures, [(module, extra)] it needs before anything runs)
SUITES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "vectors": (
        "distance kernels and HNSW against pure Python and numpy",
        (("numpy", "vectors"),),
    ),
    "embedding": (
        "all-MiniLM-L6-v2 variants against sentence-transformers",
        (("numpy", "embedding"), ("onnxruntime", "embedding")),
    ),
    "messaging": ("the bus, its codec and SQLite persistence against simpler buses", ()),
    "bridges": (
        "Redis and Kafka bridges against redis-py and confluent-kafka",
        (("redis", "redis"), ("confluent_kafka", "kafka")),
    ),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench [SUITE] [options]`` to the ``neuralcore`` command tree."""
    lines = "\n".join(f"  {name:<10} {text}" for name, (text, _) in SUITES.items())
    parser = sub.add_parser(
        "bench",
        help="run benchmarks, each beside its baseline",
        description="Run benchmarks. Every row times neuralcore beside a baseline in the\n"
        "same run and prints the ratio.\n\nsuites:\n" + lines + "\n\n"
        "Without SUITE every suite runs (several minutes) and bench-report.md is written.\n"
        "'neuralcore bench SUITE --help' shows a suite's own options (given after SUITE).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suite", nargs="?", choices=(*SUITES, "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--out", default="bench-report.md", help="report path (all suites)")
    parser.add_argument("--suites", help="comma-separated subset to run instead of all")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=_run, passthrough=True)


def _run(args: argparse.Namespace) -> int:
    from neuralcore.core import require
    from neuralcore.errors import MissingDependencyError

    if args.suite != "all":  # "all" may be narrowed by --suites; it is checked as it runs
        for module, extra in SUITES[args.suite][1]:
            require(module, extra=extra)
    if isinstance(sys.stdout, io.TextIOWrapper):  # rows show as they come, also through a pipe
        sys.stdout.reconfigure(line_buffering=True)
    argv = (["--quick"] if args.quick else []) + list(args.rest)
    if args.suite != "all" and not {"-h", "--help"} & set(args.rest):
        # a full suite measures for minutes before its table prints: say so at once
        more = "" if args.quick else "; --quick for a shorter run"
        print(
            f"neuralcore bench {args.suite}: measuring each row beside its baseline; the table"
            f" prints when done (minutes on a small machine{more})",
            file=sys.stderr,
            flush=True,
        )
    if args.suite == "all":
        argv += ["--out", args.out] + (["--suites", args.suites] if args.suites else [])
    name = "report" if args.suite == "all" else args.suite
    try:
        module_ = importlib.import_module(f"neuralcore._bench.{name}")
        result: Any = module_.main(argv)
    except ModuleNotFoundError as err:  # a dependency of a baseline column
        if err.name is None or err.name.startswith("neuralcore"):
            raise
        raise MissingDependencyError(
            f'{err.name} is required for this benchmark: pip install "neuralcore-runtime[all]"'
        ) from None
    return int(result)
