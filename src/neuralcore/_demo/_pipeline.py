"""The demo's stages: embed chunks and publish them as ingestion events, index events into
HNSW, answer queries; each stage timed.

Ingestion events are ``{"keys", "titles", "texts", "vectors"}`` batches on the channel
``demo.ingest``; whoever indexes them (this process, or another one across a bridge)
subscribes to it, so the bus carries the whole corpus.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from neuralcore._demo._corpus import Chunk
from neuralcore._demo._progress import Progress

__all__ = (
    "DEFAULT_QUERIES",
    "INGEST",
    "RESULTS",
    "DemoIndex",
    "Hit",
    "Timing",
    "embed_and_publish",
    "format_hits",
    "format_timings",
)

INGEST = "demo.ingest"
RESULTS = "demo.results"

DEFAULT_QUERIES = (
    "how do I parse a JSON document into Python objects?",
    "run a shell command and capture its output",
    "split a URL into scheme, host and path",
    "compute a cryptographic hash of a file",
    "parse command-line options and arguments",
    "make a temporary directory that is deleted afterwards",
)


class Timing(NamedTuple):
    """One stage: wall seconds, items handled and their unit, and what exactly was timed.

    ``rate=False`` for a stage whose items/second would mislead (a handful of batch events
    says nothing about the bus's speed).
    """

    stage: str
    seconds: float
    items: int
    unit: str
    what: str = ""
    rate: bool = True


class Hit(NamedTuple):
    """One search result: cosine similarity, source docstring title, chunk text."""

    score: float
    title: str
    text: str


class DemoIndex:
    """HNSW index over chunk vectors plus the chunk texts, fed by ingestion events.

    Examples
    --------
    >>> index = DemoIndex(2)
    >>> index.add_event({"keys": [0], "titles": ["t"], "texts": ["x"], "vectors": [[1.0, 0.0]]})
    >>> index.search(np.array([[1.0, 0.0]], dtype=np.float32), k=1)[0][0].title
    't'
    """

    def __init__(self, dim: int) -> None:
        from neuralcore.vectors import HNSWIndex

        self.hnsw = HNSWIndex(dim, metric="cosine")
        self.docs: dict[int, tuple[str, str]] = {}
        self.seconds = 0.0

    def add_event(self, event: dict[str, Any]) -> None:
        """Index one ingestion event (time spent is added to :attr:`seconds`)."""
        t0 = time.perf_counter()
        keys = [int(k) for k in event["keys"]]
        self.hnsw.add(keys, np.asarray(event["vectors"], dtype=np.float32))
        self.docs.update(zip(keys, zip(event["titles"], event["texts"], strict=True), strict=True))
        self.seconds += time.perf_counter() - t0

    def search(self, queries: NDArray[np.float32], *, k: int) -> list[list[Hit]]:
        """Top ``k`` hits per query row."""
        if not self.docs:
            return [[] for _ in range(len(queries))]
        keys, dists = self.hnsw.search(queries, k=min(k, len(self.docs)))
        return [
            [Hit(1.0 - float(d), *self.docs[int(key)]) for key, d in zip(row_k, row_d, strict=True)]
            for row_k, row_d in zip(np.atleast_2d(keys), np.atleast_2d(dists), strict=True)
        ]


Publish = Callable[[dict[str, Any]], Awaitable[Any]]
Embed = Callable[[list[str]], Awaitable[NDArray[np.float32]]]


async def embed_and_publish(
    chunks: Sequence[Chunk], embed: Embed, publish: Publish, *, batch: int, progress: bool
) -> tuple[Timing, Timing]:
    """Embed ``chunks`` in batches and publish each batch as one ingestion event.

    Returns the ``embed`` timing and the ``publish`` timing: time inside ``publish``,
    which includes the durable SQLite write of each batch event on a persistent channel.
    """
    bar = Progress("embed", len(chunks), unit="chunks") if progress else None
    spent = published = 0.0
    events = 0
    for start in range(0, len(chunks), batch):
        part = chunks[start : start + batch]
        t0 = time.perf_counter()
        vectors = await embed([c.text for c in part])
        spent += time.perf_counter() - t0
        event = {
            "keys": [c.key for c in part],
            "titles": [c.title for c in part],
            "texts": [c.text for c in part],
            "vectors": vectors,
        }
        t1 = time.perf_counter()
        await publish(event)
        published += time.perf_counter() - t1
        events += 1
        if bar is not None:
            bar.advance(len(part))
    if bar is not None:
        bar.close()
    embedded = Timing("embed", spent, len(chunks), "chunks", "all-MiniLM-L6-v2, documents")
    what = (
        f"durable publish of {events} batch event{'' if events == 1 else 's'} of <= {batch}"
        " chunks;"
        " bus speed: neuralcore bench messaging"
    )
    return embedded, Timing("publish", published, events, "events", what, rate=False)


def format_hits(query: str, hits: Sequence[Hit], *, width: int = 90) -> str:
    """The printed answer to one query: rank, score, source and the start of the chunk.

    Examples
    --------
    >>> print(format_hits("q", [Hit(0.5, "json.loads", "json.loads: Deserialize s")]))
    query: q
      1. 0.500  json.loads  -- Deserialize s
    """
    lines = [f"query: {query}"]
    for rank, hit in enumerate(hits, 1):
        body = hit.text.removeprefix(f"{hit.title}: ")
        snippet = body if len(body) <= width else body[: width - 3] + "..."
        lines.append(f"  {rank}. {hit.score:.3f}  {hit.title}  -- {snippet}")
    return "\n".join(lines)


def format_timings(timings: Sequence[Timing], total: float) -> str:
    """The per-stage table: time, items, throughput, and what each row times.

    Examples
    --------
    >>> print(format_timings([Timing("embed", 2.0, 100, "chunks", "the model")], 2.5))
    stage         time          items         throughput  what it times
    embed       2.00 s    100 chunks         50 chunks/s  the model
    total       2.50 s                                    wall time of the whole run
    """
    lines = [f"{'stage':<8}{'time':>10}{'items':>15}{'throughput':>19}  what it times"]
    for t in timings:
        ok = t.rate and t.seconds > 0 and t.items
        rate = f"{t.items / t.seconds:,.0f} {t.unit}/s" if ok else "-"
        row = f"{t.stage:<8}{_secs(t.seconds):>10}{t.items:>7} {t.unit:<7}{rate:>19}  {t.what}"
        lines.append(row.rstrip())
    lines.append(f"{'total':<8}{_secs(total):>10}{'':>15}{'':>19}  wall time of the whole run")
    return "\n".join(lines)


def _secs(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
