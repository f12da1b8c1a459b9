"""``NeuralCognitiveBus.benchmark``: ATLAS's built-in throughput probe, restated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neuralcore.compat.atlas.bus._bus import UnknownChannelError

if TYPE_CHECKING:
    from neuralcore.compat.atlas.bus._bus import NeuralcoreCognitiveBus
    from neuralcore.compat.atlas.bus._types import Message

__all__ = ("run_benchmark",)


async def run_benchmark(
    bus: NeuralcoreCognitiveBus,
    channel: str,
    *,
    messages: int,
    concurrency: int,
    payload_factory: Callable[[int], Any] | None,
    priority: int,
) -> dict[str, Any]:
    """Publish ``messages`` from ``concurrency`` producers to a no-op subscriber; time it.

    Returns ATLAS's keys: ``channel``, ``messages``, ``concurrency``, ``seconds``,
    ``msgs_per_sec`` and the channel's ``metrics``.
    """
    if channel not in bus._channel_cfg:
        raise UnknownChannelError(f"Channel '{channel}' does not exist")
    make = payload_factory or (lambda i: {"i": i, "t": time.time()})
    done, received = asyncio.Event(), 0

    async def sink(_msg: Message) -> None:
        nonlocal received
        received += 1
        if received >= messages:
            done.set()

    await bus.register_subscriber(channel, "__bench_noop__", sink)
    start = time.perf_counter()
    shares = [messages // concurrency + (k < messages % concurrency) for k in range(concurrency)]
    offsets = [sum(shares[:k]) for k in range(concurrency)]

    async def producer(first: int, count: int) -> None:
        for i in range(first, first + count):
            await bus.publish(channel, make(i), priority=priority)

    await asyncio.gather(*(producer(o, n) for o, n in zip(offsets, shares, strict=True)))
    await asyncio.wait_for(done.wait(), timeout=max(5.0, messages / 10_000))
    seconds = time.perf_counter() - start
    await bus.unregister_subscriber(channel, "__bench_noop__")
    return {
        "channel": channel,
        "messages": messages,
        "concurrency": concurrency,
        "seconds": seconds,
        "msgs_per_sec": messages / seconds if seconds > 0 else float("inf"),
        "metrics": bus.snapshot_metrics().get(channel, {}),
    }
