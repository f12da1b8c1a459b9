"""``neuralcore demo``: chunk the standard library's docs, embed, index, persist, query.

Runs on embedded defaults with no server: docstrings of the stdlib (read from source) are
chunked, embedded with all-MiniLM-L6-v2 (its default variant), published as ingestion events on a
durable (SQLite) bus channel, indexed into HNSW by a subscriber, then a handful of queries
are answered with their top hits and per-stage timings. ``--redis URL`` or ``--kafka
SERVERS`` runs the indexer in a second process, fed over a bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ("main", "register")

DEFAULT_MAX_DOCS = 800
_DESCRIPTION = (
    "Chunk the standard library's docstrings, embed them (all-MiniLM-L6-v2), publish them"
    " through a durable bus channel into an HNSW index, and answer queries, timing each"
    " stage. Needs the embedding extra and a converted model (make setup)."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the ``neuralcore`` command tree."""
    parser = sub.add_parser("demo", help="run the end-to-end demo", description=_DESCRIPTION)
    _add_arguments(parser)
    parser.set_defaults(run=_run)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-docs", type=int, default=DEFAULT_MAX_DOCS,
        help="docstrings to ingest (default %(default)s)",
    )  # fmt: skip
    p.add_argument("-q", "--query", action="append", dest="queries", help="a query (repeatable)")
    p.add_argument("-k", type=int, default=3, help="hits per query (default %(default)s)")
    p.add_argument(
        "--batch", type=int, default=64,
        help="chunks per embedding batch and per bus event (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--variant",
        help="model variant, e.g. int8 or openvino-bf16 (default: the model's default variant;"
        " 'neuralcore models info all-MiniLM-L6-v2' lists them)",
    )
    p.add_argument(
        "--data-dir", type=Path,
        help="folder for the bus's SQLite file (default: $NEURALCORE_HOME/demo)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    remote = p.add_mutually_exclusive_group()
    remote.add_argument("--redis", metavar="URL", help="index in a second process over Redis")
    remote.add_argument("--kafka", metavar="SERVERS", help="index in a second process over Kafka")
    p.add_argument(
        "--role", choices=("producer", "indexer"), default="producer", help=argparse.SUPPRESS
    )
    p.add_argument("--run-id", default="", help=argparse.SUPPRESS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``neuralcore demo`` alone; returns the exit status (2 on an error, printed).

    Examples
    --------
    >>> main(["--max-docs", "0"])
    2
    """
    from neuralcore.errors import NeuralcoreError

    parser = argparse.ArgumentParser(prog="neuralcore demo", description=_DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return _run(args)
    except NeuralcoreError as err:
        print(f"neuralcore: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from neuralcore.errors import InvalidInputError

    for name, value in (("--max-docs", args.max_docs), ("-k", args.k), ("--batch", args.batch)):
        if value < 1:
            raise InvalidInputError(f"demo: {name} must be >= 1, got {value}")
    import neuralcore.embedding  # noqa: F401  (the install hint, before anything runs)

    if args.role == "indexer":
        from neuralcore._demo._remote import run_indexer

        return asyncio.run(run_indexer(args))
    return asyncio.run(_produce(args))


def _say(args: argparse.Namespace, text: str) -> None:
    """A progress line on stderr, so the first seconds are not silent."""
    if not args.no_progress:
        print(f"demo: {text}", file=sys.stderr, flush=True)


async def _produce(args: argparse.Namespace) -> int:
    from neuralcore._demo._pipeline import format_hits, format_timings

    started = time.perf_counter()
    if args.redis or args.kafka:  # fail in a second, before loading anything
        from neuralcore._demo._remote import probe

        await probe(args)
    _say(args, f"reading up to {args.max_docs} stdlib docstrings ...")
    timings, chunks = _load_corpus(args.max_docs)
    _say(args, f"loading all-MiniLM-L6-v2 ({args.variant or 'default variant'}) ...")
    engine = _engine(args.variant)
    queries = list(args.queries or _default_queries())
    bus_file = _bus_file(args.data_dir)
    print(
        f"neuralcore demo: {timings[0].items} stdlib docstrings -> {len(chunks)} chunks,"
        f" all-MiniLM-L6-v2 ({_engine_line(engine)}), HNSW index,"
        f" durable bus channel 'demo.ingest' in {bus_file}"
    )
    if args.redis or args.kafka:
        from neuralcore._demo._remote import run_producer

        remote = await run_producer(args, engine, chunks, queries, bus_file)
        timings += remote.timings
        answers = remote.answers
    else:
        more, answers = await _run_local(args, engine, chunks, queries, bus_file)
        timings += more
    for query, hits in zip(queries, answers, strict=True):
        print()
        print(format_hits(query, hits))
    print()
    print(format_timings(timings, time.perf_counter() - started))
    print(f"\nThe bus's SQLite file is kept at {bus_file}; the next run replaces it.")
    return 0


def _default_queries() -> tuple[str, ...]:
    from neuralcore._demo._pipeline import DEFAULT_QUERIES

    return DEFAULT_QUERIES


def _bus_file(data_dir: Path | None) -> Path:
    """The demo's SQLite file, in a named folder; a previous run's file is replaced."""
    from neuralcore.embedding import neuralcore_home

    folder = data_dir if data_dir is not None else neuralcore_home() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo-bus.sqlite"
    for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        old.unlink(missing_ok=True)
    return path


def _engine_line(engine: Any) -> str:
    """Runtime, variant, threads and streams the engine runs with (``engine.runtime_info``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> info = SimpleNamespace(variant="fp32", runtime="onnxruntime", version="1.22.0",
    ...                        threads=2, streams=1)
    >>> _engine_line(SimpleNamespace(runtime_info=info))
    'fp32 on onnxruntime 1.22.0, 2 threads, 1 stream'
    """
    info = engine.runtime_info
    streams = f"{info.streams} stream{'s' if info.streams != 1 else ''}"
    return f"{info.variant} on {info.runtime} {info.version}, {info.threads} threads, {streams}"


def _load_corpus(max_docs: int) -> tuple[list[Any], list[Any]]:
    from neuralcore._demo._corpus import chunk_docs, stdlib_docs
    from neuralcore._demo._pipeline import Timing

    t0 = time.perf_counter()
    docs = stdlib_docs(max_docs)
    t1 = time.perf_counter()
    chunks = chunk_docs(docs)
    t2 = time.perf_counter()
    return [
        Timing("corpus", t1 - t0, len(docs), "docs", "read stdlib docstrings from source"),
        Timing("chunk", t2 - t1, len(chunks), "chunks", "split into <= 700-char chunks"),
    ], chunks


def _engine(variant: str | None) -> Any:
    from neuralcore.embedding import EmbeddingEngine

    if variant is None:
        return EmbeddingEngine("all-MiniLM-L6-v2")
    return EmbeddingEngine("all-MiniLM-L6-v2", variant=variant)


async def _run_local(
    args: argparse.Namespace, engine: Any, chunks: list[Any], queries: list[str], bus_file: Path
) -> tuple[list[Any], list[Any]]:
    from neuralcore._demo._pipeline import INGEST, DemoIndex, Timing, embed_and_publish
    from neuralcore.messaging import BusConfig, MessageBus

    index = DemoIndex(engine.dimension)
    bus = MessageBus(BusConfig(persistence_path=str(bus_file)))
    try:
        bus.create_channel(INGEST, persistent=True)
        bus.subscribe(INGEST, lambda m: index.add_event(m.payload), name="indexer")
        await bus.start()
        embedded, published = await embed_and_publish(
            chunks, _embed_fn(engine), lambda e: bus.publish_async(INGEST, e),
            batch=args.batch, progress=not args.no_progress,
        )  # fmt: skip
        await bus.drain(timeout=60.0)
        answers, query_timing = _answer(engine, index, queries, args.k)
    finally:
        await bus.stop()
    index_timing = Timing(
        "index", index.seconds, len(index.docs), "vectors", "HNSW add, in the bus subscriber"
    )
    return [embedded, published, index_timing, query_timing], answers


def _embed_fn(engine: Any) -> Any:
    async def embed(texts: list[str]) -> Any:
        return await asyncio.to_thread(engine.embed_documents, texts)

    return embed


def _answer(engine: Any, index: Any, queries: list[str], k: int) -> tuple[list[Any], Any]:
    from neuralcore._demo._pipeline import Timing

    t0 = time.perf_counter()
    vectors = engine.embed_queries(queries)
    answers = index.search(vectors, k=k)
    took = time.perf_counter() - t0
    return answers, Timing("query", took, len(queries), "queries", "embed query + HNSW search")
