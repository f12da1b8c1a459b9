"""Bounded memory under a fast producer and a slow consumer; bytes per queued message."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

import psutil
import pytest

from neuralcore.messaging import Message, MessageBus

N = 1_000_000
LIMIT = 1_000
_MB = 1024 * 1024


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.slow
@pytest.mark.parametrize("overflow", ["block", "drop_oldest", "drop_new"])
async def test_million_messages_stay_bounded(overflow: str) -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=LIMIT, overflow=overflow)
    handled = 0
    last = -1
    in_order = True

    async def slow(m: Message) -> None:
        nonlocal handled, last, in_order
        handled += 1
        in_order &= m.payload > last
        last = m.payload
        if handled % 64 == 0:
            await asyncio.sleep(0)  # give the producer a turn: the consumer lags behind

    bus.subscribe("c", slow)
    payload_ids = 0
    async with bus:
        gc.collect()
        base = peak = _rss()
        depth = 0
        for i in range(N):
            await bus.publish_async("c", i)
            payload_ids += 1
            if i % 20_000 == 0:
                await asyncio.sleep(0)
                peak = max(peak, _rss())
                depth = max(depth, bus.metrics()["c"].queue_depth)
        assert await bus.drain(timeout=60)
    m = bus.metrics()["c"]
    assert depth <= LIMIT
    assert peak - base < 24 * _MB, f"RSS grew {(peak - base) / _MB:.1f} MB"
    assert in_order  # one priority: FIFO, whatever was dropped
    if overflow == "block":
        assert (m.published, m.dropped, handled) == (N, 0, N)
    else:
        assert m.published + (m.dropped if overflow == "drop_new" else 0) == N
        assert handled == N - m.dropped > 0
        assert m.dropped > N // 2  # the consumer really was slower
    if overflow == "drop_oldest":
        assert last == N - 1  # the newest message always survives


def test_bytes_per_queued_message() -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=200_000)
    payload: dict[str, Any] = {"q": "shared payload"}
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            bus.publish("c", payload, headers={"trace_id": "t"})
        per_msg = (tracemalloc.get_traced_memory()[0] - before) / 100_000
    finally:
        tracemalloc.stop()
    assert per_msg <= 500, f"{per_msg:.0f} bytes per queued message"
