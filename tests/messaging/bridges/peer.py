"""One bus process for the cross-process bridge tests (run with ``python peer.py JSON``).

Roles: ``pub`` publishes ``n`` messages then waits until the bridge sent them; ``sub``
prints every delivered message as a JSON line until ``n`` arrived or ``seconds`` passed;
``hold`` never acknowledges (its handler waits forever) so its pending entries can be
taken over after the parent kills it. Every line on stdout is one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from neuralcore.messaging import Message, MessageBus
from neuralcore.messaging.bridges import (
    KafkaBridge,
    KafkaBridgeConfig,
    RedisBridge,
    RedisBridgeConfig,
)


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def make_bridge(spec: dict[str, Any]) -> RedisBridge | KafkaBridge:
    if spec["kind"] == "redis":
        return RedisBridge(RedisBridgeConfig.from_dict(spec["config"]))
    return KafkaBridge(KafkaBridgeConfig.from_dict(spec["config"]))


async def main(spec: dict[str, Any]) -> None:
    bus = MessageBus()
    channel, n, role = spec["channel"], spec["n"], spec["role"]
    bus.create_channel(channel)
    bridge = make_bridge(spec)
    got: list[str] = []
    done = asyncio.Event()

    async def record(msg: Message) -> None:
        got.append(msg.id)
        emit(ev="got", id=msg.id, priority=msg.priority, headers=msg.headers,
             payload=msg.payload, origin=msg.origin)  # fmt: skip
        if role == "hold":
            await asyncio.Event().wait()  # never acknowledged
        if len(got) >= spec.get("expect", n):
            done.set()

    if role in ("sub", "hold", "both"):
        bus.subscribe(channel, record)
    await bus.add_bridge(bridge)
    await bus.start()
    emit(ev="ready", origin=bus.bus_id)
    if role in ("pub", "both"):
        pace = spec.get("pace", 0.0)
        for i in range(n):
            bus.publish(channel, {"i": i, "text": f"message {i}"}, priority=i % 5,
                        headers={"seq": i, "key": str(i % 4)})  # fmt: skip
            if pace and i % 50 == 49:
                await asyncio.sleep(pace)
        deadline = time.monotonic() + spec.get("seconds", 30)
        while bridge.metrics().sent < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        emit(ev="sent", metrics=bridge.metrics()._asdict(), state=bridge.state.value)
    if role in ("sub", "hold", "both"):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), spec.get("seconds", 30))
        if role == "both":
            await asyncio.sleep(spec.get("linger", 1.0))
    await bus.stop()
    emit(ev="done", metrics=bridge.metrics()._asdict(), received=len(got))


if __name__ == "__main__":
    import faulthandler

    SPEC = json.loads(sys.argv[1])
    faulthandler.dump_traceback_later(SPEC.get("seconds", 30) + 60, exit=True)  # never hangs
    asyncio.run(main(SPEC))
