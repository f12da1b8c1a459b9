"""ATLAS's own AgentBus on the adapter, when an ATLAS checkout is importable.

Run with ATLAS on ``PYTHONPATH`` (after ``neuralcore migrate`` or not: the AgentBus is
given the adapter explicitly). Skipped, by name, when ATLAS is not importable.
"""

from __future__ import annotations

import asyncio

import pytest

from neuralcore.compat.atlas import NeuralcoreCognitiveBus


async def test_agentbus_runs_unchanged_on_the_adapter() -> None:
    agent_bus = pytest.importorskip("core.messaging.agent_bus", reason="ATLAS is not importable")
    messages = pytest.importorskip("core.messaging.messages")
    bus = agent_bus.AgentBus(ncb=NeuralcoreCognitiveBus())
    await bus.start()
    try:
        got: list[str] = []
        done = asyncio.Event()

        async def handler(msg: object) -> None:
            got.append(msg.payload["v"])  # type: ignore[attr-defined]
            if len(got) == 3:
                done.set()

        await bus.subscribe("test.prio", handler)
        for v, pr in (("low", 8), ("high", 2), ("normal", 5)):
            await bus.publish(
                messages.AgentMessage(channel="test.prio", payload={"v": v}, priority=pr)
            )
        await asyncio.wait_for(done.wait(), 2)
        assert got == ["high", "normal", "low"]
    finally:
        await bus.stop()
