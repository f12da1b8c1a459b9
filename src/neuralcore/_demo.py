"""``neuralcore demo``: chunk the standard library's docs, embed, index, persist, query.

Runs on embedded defaults with no server: docstrings of the stdlib (read from source) are
chunked, embedded with all-MiniLM-L6-v2 (int8 ONNX), published as ingestion events on a
durable (SQLite) bus channel, indexed into HNSW by a subscriber, then a handful of queries
are answered with their top hits, per-stage timings and throughput. ``--redis URL`` or
``--kafka SERVERS`` runs the indexer in a second process, fed over a bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralcore._demo_corpus import Chunk, chunk_docs, stdlib_docs
from neuralcore._demo_pipeline import (
    DEFAULT_QUERIES,
    INGEST,
    DemoIndex,
    Timing,
    embed_and_publish,
    format_hits,
    format_timings,
)

__all__ = ("main",)

DEFAULT_MAX_DOCS = 800


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="neuralcore demo",
        description="Chunk the standard library's docstrings, embed them (all-MiniLM-L6-v2), "
        "publish them through a durable bus channel into an HNSW index, answer queries.",
    )
    p.add_argument(
        "--max-docs",
        type=int,
        default=DEFAULT_MAX_DOCS,
        help="docstrings to ingest (default %(default)s)",
    )
    p.add_argument("-q", "--query", action="append", dest="queries", help="a query (repeatable)")
    p.add_argument("-k", type=int, default=3, help="hits per query (default 3)")
    p.add_argument(
        "--batch",
        type=int,
        default=64,
        help="chunks per embedding batch and event (default %(default)s)",
    )
    p.add_argument("--quantization", choices=("int8", "fp32"), default="int8", help="model graph")
    p.add_argument("--data-dir", type=Path, help="keep the bus's SQLite file here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    remote = p.add_mutually_exclusive_group()
    remote.add_argument("--redis", metavar="URL", help="index in a second process over Redis")
    remote.add_argument("--kafka", metavar="SERVERS", help="index in a second process over Kafka")
    p.add_argument(
        "--role", choices=("producer", "indexer"), default="producer", help=argparse.SUPPRESS
    )
    p.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``neuralcore demo``; returns the exit status.

    Examples
    --------
    >>> main(["--max-docs", "0"])
    neuralcore demo: --max-docs must be >= 1
    2
    """
    args = _parser().parse_args(_strip_separator(sys.argv[1:] if argv is None else argv))
    if args.max_docs < 1 or args.k < 1 or args.batch < 1:
        print("neuralcore demo: --max-docs must be >= 1" if args.max_docs < 1 else
              "neuralcore demo: -k and --batch must be >= 1")  # fmt: skip
        return 2
    if args.role == "indexer":
        from neuralcore._demo_remote import run_indexer

        return asyncio.run(run_indexer(args))
    return asyncio.run(_produce(args))


def _strip_separator(argv: Sequence[str]) -> list[str]:
    """Drop a leading ``--`` (``neuralcore demo -- --max-docs 50`` passes options through)."""
    items = list(argv)
    return items[1:] if items[:1] == ["--"] else items


async def _produce(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    timings, chunks = _load_corpus(args.max_docs)
    queries = list(args.queries or DEFAULT_QUERIES)
    engine = _engine(args.quantization)
    print(
        f"neuralcore demo: {timings[0].items} stdlib docstrings -> {len(chunks)} chunks, "
        f"all-MiniLM-L6-v2 ({args.quantization}), HNSW index, durable bus channel {INGEST!r}"
    )
    if args.redis or args.kafka:
        from neuralcore._demo_remote import run_producer

        remote = await run_producer(args, engine, chunks, queries)
        timings += remote.timings
        answers = remote.answers
    else:
        more, answers = await _run_local(args, engine, chunks, queries)
        timings += more
    for query, hits in zip(queries, answers, strict=True):
        print()
        print(format_hits(query, hits))
    print()
    print(format_timings(timings, time.perf_counter() - started))
    return 0


def _load_corpus(max_docs: int) -> tuple[list[Timing], list[Chunk]]:
    t0 = time.perf_counter()
    docs = stdlib_docs(max_docs)
    t1 = time.perf_counter()
    chunks = chunk_docs(docs)
    t2 = time.perf_counter()
    return [
        Timing("corpus", t1 - t0, len(docs), "docs"),
        Timing("chunk", t2 - t1, len(chunks), "chunks"),
    ], chunks


def _engine(quantization: str) -> Any:
    from neuralcore.embedding import EmbeddingEngine

    return EmbeddingEngine(
        "all-MiniLM-L6-v2", quantization="int8" if quantization == "int8" else None
    )


async def _run_local(
    args: argparse.Namespace, engine: Any, chunks: list[Chunk], queries: list[str]
) -> tuple[list[Timing], list[Any]]:
    from neuralcore.messaging import BusConfig, MessageBus

    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="neuralcore-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    index = DemoIndex(engine.dimension)
    bus = MessageBus(BusConfig(persistence_path=str(folder / "demo-bus.sqlite")))
    try:
        bus.create_channel(INGEST, persistent=True)
        bus.subscribe(INGEST, lambda m: index.add_event(m.payload), name="indexer")
        await bus.start()
        embedded, published = await embed_and_publish(
            chunks,
            _embed_fn(engine),
            lambda e: bus.publish_async(INGEST, e),
            batch=args.batch,
            progress=not args.no_progress,
        )
        await bus.drain(timeout=60.0)
        answers, query_timing = _answer(engine, index, queries, args.k)
    finally:
        await bus.stop()
        if args.data_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    index_timing = Timing("index", index.seconds, len(index.docs), "vectors")
    return [embedded, published, index_timing, query_timing], answers


def _embed_fn(engine: Any) -> Any:
    async def embed(texts: list[str]) -> Any:
        return await asyncio.to_thread(engine.embed_documents, texts)

    return embed


def _answer(engine: Any, index: DemoIndex, queries: list[str], k: int) -> tuple[list[Any], Timing]:
    t0 = time.perf_counter()
    vectors = engine.embed_queries(queries)
    answers = index.search(vectors, k=k)
    return answers, Timing("query", time.perf_counter() - t0, len(queries), "queries")
