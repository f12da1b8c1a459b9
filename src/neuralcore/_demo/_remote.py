"""The demo across two processes: this one embeds and publishes, a child indexes and answers.

Both buses bridge ``demo.ingest`` and ``demo.results`` over Redis (Streams) or Kafka, under
a per-run prefix so runs never see each other's messages. The child announces itself with
``ready`` messages until the first ingestion event arrives; the producer then streams the
corpus, and finally a ``done`` event carrying the total and the query vectors; the child
answers on ``demo.results`` once it has indexed everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from neuralcore._demo._corpus import Chunk
from neuralcore._demo._pipeline import (
    INGEST,
    RESULTS,
    DemoIndex,
    Hit,
    Timing,
    embed_and_publish,
)
from neuralcore.core import BridgeConnectionError

__all__ = ("RemoteResult", "probe", "run_indexer", "run_producer")

_READY_TIMEOUT = 60.0
_PROBE_TIMEOUT = 3.0
_ANSWER_TIMEOUT = 300.0
_CHILD = "import sys; from neuralcore._demo import main; sys.exit(main(sys.argv[1:]))"


def _address(args: argparse.Namespace) -> tuple[str, str, int] | None:
    """(server kind, host, port) of the server to probe; None for a Unix socket."""
    if args.redis:
        parts = urllib.parse.urlsplit(args.redis)
        if parts.scheme not in ("redis", "rediss"):
            return None
        try:
            port = parts.port or 6379
        except ValueError:
            raise BridgeConnectionError("the --redis URL has a bad port") from None
        return "Redis", parts.hostname or "127.0.0.1", port
    host, _, port_text = args.kafka.split(",")[0].strip().rpartition(":")
    if not port_text.isdigit():
        raise BridgeConnectionError(f"--kafka wants HOST:PORT, got {args.kafka!r}")
    return "Kafka", host.strip("[]") or "127.0.0.1", int(port_text)


async def probe(args: argparse.Namespace) -> None:
    """Open (and close) a TCP connection to the server, so a wrong address fails at once.

    The message names host and port only: a URL may carry a password.
    """
    address = _address(args)
    if address is None:
        return
    kind, host, port = address
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        reason = f"no answer within {_PROBE_TIMEOUT:.0f} s"
    except socket.gaierror as err:
        reason = f"unknown host ({err.strerror})"
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)  # "Connection refused"
    else:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise BridgeConnectionError(f"cannot reach the {kind} server at {host}:{port}: {reason}")


class RemoteResult(NamedTuple):
    """Timings of the bridged run and the child's answers (one hit list per query)."""

    timings: list[Timing]
    answers: list[list[Hit]]


def _bridge(args: argparse.Namespace, run_id: str, role: str) -> Any:
    channels = (INGEST, RESULTS)
    if args.redis:
        from neuralcore.messaging.bridges import RedisBridge, RedisBridgeConfig

        return RedisBridge(
            RedisBridgeConfig(
                url=args.redis, channels=channels, group=f"demo-{role}", prefix=f"ncdemo:{run_id}:"
            )
        )
    from neuralcore.messaging.bridges import KafkaBridge, KafkaBridgeConfig

    return KafkaBridge(
        KafkaBridgeConfig(
            bootstrap=args.kafka,
            channels=channels,
            group=f"demo-{role}-{run_id}",
            topic_prefix=f"ncdemo.{run_id}.",
            partitions=1,
        )
    )


async def _next(inbox: asyncio.Queue[dict[str, Any]], kind: str, timeout: float) -> dict[str, Any]:
    """The next message of type ``kind`` (others are skipped) or ``TimeoutError``."""
    async with asyncio.timeout(timeout):
        while True:
            item = await inbox.get()
            if item.get("type") == kind:
                return item


async def run_producer(
    args: argparse.Namespace,
    engine: Any,
    chunks: list[Chunk],
    queries: list[str],
    bus_file: Path,
) -> RemoteResult:
    """Embed and publish ``chunks`` to an indexer child over the bridge; collect answers."""
    from neuralcore.messaging import BusConfig, MessageBus

    run_id = args.run_id or uuid.uuid4().hex[:10]
    bus = MessageBus(BusConfig(persistence_path=str(bus_file)))
    bus.create_channel(INGEST, persistent=True)
    bus.create_channel(RESULTS)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    bus.subscribe(RESULTS, lambda m: inbox.put_nowait(m.payload), name="results")
    await bus.add_bridge(_bridge(args, run_id, "producer"))
    await bus.start()
    child = await _spawn(args, run_id)
    try:
        await _ready(inbox, child, "the server")
        return await _stream(args, bus, inbox, engine, chunks, queries)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            child.kill()  # it may wait for messages that will never come
        raise
    finally:
        await bus.stop()
        await _reap(child)


async def _stream(
    args: argparse.Namespace,
    bus: Any,
    inbox: asyncio.Queue[dict[str, Any]],
    engine: Any,
    chunks: list[Chunk],
    queries: list[str],
) -> RemoteResult:

    async def embed(texts: list[str]) -> Any:
        return await asyncio.to_thread(engine.embed_documents, texts)

    embedded, published = await embed_and_publish(
        chunks, embed, lambda e: bus.publish_async(INGEST, e), batch=args.batch,
        progress=not args.no_progress,
    )  # fmt: skip
    t0 = time.perf_counter()
    done = {
        "type": "done",
        "total": len(chunks),
        "k": args.k,
        "queries": engine.embed_queries(queries),
    }
    await bus.publish_async(INGEST, done)
    reply = await _next(inbox, "answers", _ANSWER_TIMEOUT)
    wait = time.perf_counter() - t0
    answers = [[Hit(float(s), str(t), str(x)) for s, t, x in hits] for hits in reply["answers"]]
    remote = Timing(
        "index", float(reply["index_seconds"]), int(reply["indexed"]), "vectors",
        "HNSW add, in the indexer process",
    )  # fmt: skip
    what = "embed query + search in the indexer process, reply over the bridge"
    roundtrip = Timing("query", wait, len(queries), "queries", what)
    return RemoteResult([embedded, published, remote, roundtrip], answers)


async def _ready(
    inbox: asyncio.Queue[dict[str, Any]], child: asyncio.subprocess.Process, server: str
) -> None:
    """Wait for the child's ``ready``; fail fast if it exits or nothing arrives in time."""
    ready = asyncio.ensure_future(_next(inbox, "ready", _READY_TIMEOUT))
    exited = asyncio.ensure_future(child.wait())
    await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and not ready.cancelled() and ready.exception() is None:
        exited.cancel()
        return
    ready.cancel()
    exited.cancel()
    why = f"exited with status {child.returncode}" if exited.done() else "sent nothing"
    raise BridgeConnectionError(
        f"the indexer process {why} within {_READY_TIMEOUT:.0f} s; is {server} reachable?"
    )


async def _spawn(args: argparse.Namespace, run_id: str) -> asyncio.subprocess.Process:
    remote = ["--redis", args.redis] if args.redis else ["--kafka", args.kafka]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, "--role", "indexer", "--run-id", run_id, *remote,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _reap(child: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(child.wait(), 10.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()


async def run_indexer(args: argparse.Namespace) -> int:
    """The child: index ingestion events from the bridge, answer the ``done`` event."""
    from neuralcore.messaging import MessageBus

    bus = MessageBus()
    state = _IndexerState()
    bus.create_channel(INGEST)
    bus.create_channel(RESULTS)
    bus.subscribe(INGEST, state.on_event, name="indexer")
    bus.subscribe(RESULTS, lambda m: None, name="own-results")  # keeps the local queue drained
    await bus.add_bridge(_bridge(args, args.run_id, "indexer"))
    await bus.start()
    try:
        while not state.started.is_set():
            await bus.publish_async(RESULTS, {"type": "ready"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.started.wait(), 0.5)
        await asyncio.wait_for(state.complete.wait(), _ANSWER_TIMEOUT)
        await bus.publish_async(RESULTS, state.answers())
    finally:
        await bus.stop()
    return 0


class _IndexerState:
    """What the child has received so far."""

    def __init__(self) -> None:
        self.index: DemoIndex | None = None
        self.done: dict[str, Any] | None = None
        self.started = asyncio.Event()
        self.complete = asyncio.Event()

    def on_event(self, msg: Any) -> None:
        event = msg.payload
        self.started.set()
        if event.get("type") == "done":
            self.done = event
        else:
            if self.index is None:
                self.index = DemoIndex(int(np.asarray(event["vectors"]).shape[1]))
            self.index.add_event(event)
        indexed = len(self.index.docs) if self.index is not None else 0
        if self.done is not None and indexed >= int(self.done["total"]):
            self.complete.set()

    def answers(self) -> dict[str, Any]:
        assert self.done is not None
        assert self.index is not None
        queries = np.asarray(self.done["queries"], dtype=np.float32)
        hits = self.index.search(queries, k=int(self.done["k"]))
        return {
            "type": "answers",
            "answers": [[[h.score, h.title, h.text] for h in row] for row in hits],
            "index_seconds": self.index.seconds,
            "indexed": len(self.index.docs),
        }
