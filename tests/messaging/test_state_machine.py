"""A hypothesis state machine over publish, subscribe, ack, crash and restart on a real file.

Invariant: every acknowledged publish (``publish`` returned) is delivered at least once,
and no message is delivered again after its handler returned (its ack was recorded).
A "crash" closes the bus abruptly (``close()``: no draining, tasks cancelled, messages in
flight left unacknowledged); a "stop" gives it no time to drain (``stop(timeout=0)``).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from neuralcore.messaging import Message, MessageBus


class BusLifecycle(RuleBasedStateMachine):
    """Model: sets of published, delivered and acknowledged payloads."""

    @initialize()
    def open_file(self) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.db = str(Path(self._dir.name) / "bus.db")
        self.next = 0
        self.published: set[int] = set()
        self.delivered: set[int] = set()
        self.acked: set[int] = set()
        self.redelivered_after_ack: list[int] = []

    def _bus(self) -> MessageBus:
        bus = MessageBus(persistence_path=self.db)
        bus.create_channel("p", persistent=True, max_attempts=1000)
        return bus

    @rule(count=st.integers(1, 6))
    def publish(self, count: int) -> None:
        with self._bus() as bus:
            for _ in range(count):
                assert bus.publish("p", self.next) is not None  # returned: durable
                self.published.add(self.next)
                self.next += 1

    @rule(handle=st.integers(0, 8), crash=st.booleans(), slow=st.booleans())
    def consume_then_stop(self, handle: int, crash: bool, slow: bool) -> None:
        asyncio.run(self._session(handle, crash, slow))

    async def _session(self, handle: int, crash: bool, slow: bool) -> None:
        bus = self._bus()
        done = asyncio.Event()
        handled = 0

        async def handler(m: Message) -> None:
            nonlocal handled
            if m.payload in self.acked:
                self.redelivered_after_ack.append(m.payload)
            self.delivered.add(m.payload)
            if slow:
                await asyncio.sleep(0)  # a crash may land while this one is in flight
            handled += 1
            self.acked.add(m.payload)  # returning acknowledges (settled right after)
            if handled >= handle:
                done.set()

        bus.subscribe("p", handler)
        await bus.start()
        if handle:  # until ``handle`` were handled, or none is left
            waits = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(bus.drain(5))]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        if crash:
            bus.close()
        else:
            await bus.stop(timeout=0)

    @invariant()
    def nothing_delivered_after_its_ack(self) -> None:
        assert self.redelivered_after_ack == []

    def teardown(self) -> None:
        try:
            asyncio.run(self._drain_all())
            assert self.published <= self.delivered, sorted(self.published - self.delivered)
            assert self.redelivered_after_ack == []
        finally:
            self._dir.cleanup()

    async def _drain_all(self) -> None:
        bus = self._bus()

        def handler(m: Message) -> None:
            if m.payload in self.acked:
                self.redelivered_after_ack.append(m.payload)
            self.delivered.add(m.payload)

        bus.subscribe("p", handler)
        async with bus:
            assert await bus.drain(timeout=10)


BusLifecycle.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_bus_lifecycle = BusLifecycle.TestCase
