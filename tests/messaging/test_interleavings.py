"""Hypothesis: random interleavings keep per-priority FIFO order and lose nothing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralcore.messaging import BusConfig, Message, MessageBus, Subscription

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.sampled_from([0, 25, 50, 100]), st.integers(1, 5)),
        st.tuples(st.just("subscribe"), st.sampled_from(["sync", "async"]), st.integers(1, 3)),
        st.tuples(st.just("unsubscribe"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("run"), st.integers(0, 3), st.just(0)),
    ),
    max_size=40,
)


async def _scenario(ops: list[tuple[str, Any, int]], max_size: int, db: str | None = None) -> None:
    bus = MessageBus(BusConfig(block_timeout=2.0, prefetch=2), persistence_path=db)
    bus.create_channel("c", max_size=max_size, overflow="block", persistent=db is not None)
    delivered: list[tuple[int, int]] = []  # (priority, seq) in delivery order, group "g"
    subs: list[Subscription] = []
    published: list[tuple[int, int]] = []

    def sync_handler(m: Message) -> None:
        delivered.append(m.payload)

    async def async_handler(m: Message) -> None:
        delivered.append(m.payload)
        await asyncio.sleep(0)

    async with bus:
        for op, arg, n in ops:
            if op == "publish":
                for _ in range(n):
                    if not subs and bus.metrics()["c"].queue_depth >= max_size:
                        # nobody could ever make room (overflow="block"): a consumer joins
                        subs.append(bus.subscribe("c", sync_handler, group="g"))
                    item = (arg, len(published))
                    await bus.publish_async("c", item, priority=arg)
                    published.append(item)
            elif op == "subscribe":
                handler = sync_handler if arg == "sync" else async_handler
                subs.append(bus.subscribe("c", handler, group="g", concurrency=1))
            elif op == "unsubscribe" and subs:
                subs.pop(arg % len(subs)).unsubscribe()
            else:
                for _ in range(arg):
                    await asyncio.sleep(0)
        if not subs:
            subs.append(bus.subscribe("c", sync_handler, group="g"))
        assert await bus.drain(timeout=10)
    # Nothing lost, nothing twice: every message reached the group exactly once.
    assert sorted(delivered, key=lambda x: x[1]) == published
    # Per priority, delivery order is publish order (FIFO within a priority). With one
    # member at a time this holds strictly; handing an inbox back on unsubscribe keeps it.
    for p in (0, 25, 50, 100):
        seqs = [s for pr, s in delivered if pr == p]
        assert seqs == sorted(seqs), f"priority {p} out of order: {seqs}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, max_size=st.integers(1, 8))
def test_random_interleavings(ops: list[tuple[str, Any, int]], max_size: int) -> None:
    asyncio.run(_scenario(ops, max_size))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, max_size=st.integers(1, 8))
def test_random_interleavings_acknowledge_everything(
    ops: list[tuple[str, Any, int]], max_size: int
) -> None:
    """The same on a persistent channel: afterwards no message is left unacknowledged."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bus.db")
        asyncio.run(_scenario(ops, max_size, db))
        con = sqlite3.connect(db)
        try:
            assert con.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)
        finally:
            con.close()
