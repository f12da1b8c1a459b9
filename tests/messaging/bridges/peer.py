"""One bus process for the cross-process bridge tests (run with ``python peer.py JSON``).

Roles: ``pub`` publishes ``n`` messages then waits until the bridge sent them; ``sub``
prints every delivered message as a JSON line until ``n`` arrived or ``seconds`` passed;
``hold`` never acknowledges (its handler waits forever) so its pending entries can be
taken over after the parent kills it. With ``db`` the channel is persistent in that SQLite
file: ``durable`` publishes ``n`` messages (each returned = committed), prints
``published`` and waits to be killed; ``resume`` only starts the bus (its bridge forwards
what an earlier run left in the outbox) until ``expect`` were sent. ``responder`` answers
requests (returns ``{"echo": payload}``); ``requester`` sends ``n`` requests over the
bridge and prints each reply. Every line on stdout is one JSON object.

Contract options: ``persistent`` makes the channel persistent (needs ``db``);
``publish_async`` publishes with ``await bus.publish_async``; ``drain`` closes the bus
right after publishing (the bridge's close must hand everything to the server);
``subscribe: false`` attaches no local subscriber; ``also`` names a second channel that
is created, subscribed and published on like ``channel`` (``expect`` then counts both);
``linger`` keeps a subscriber listening after it got ``expect`` messages (to see
duplicates); a subscriber also stops when the file ``stop_file`` appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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


async def rpc(bus: MessageBus, spec: dict[str, Any]) -> None:
    """``requester``: ``n`` requests one after another, each reply printed."""
    for i in range(spec["n"]):
        answer = await bus.request(spec["channel"], {"i": i}, timeout=spec.get("seconds", 30))
        emit(ev="reply", i=i, answer=answer)


async def forward(bus: MessageBus, bridge: RedisBridge | KafkaBridge, spec: dict[str, Any]) -> None:
    """``durable``: publish ``n`` durably, then hang; ``resume``: wait for the outbox."""
    if spec["role"] == "durable":
        for i in range(spec["n"]):
            await bus.publish_async(spec["channel"], {"i": i}, headers={"seq": i})
        emit(ev="published", n=spec["n"], metrics=bridge.metrics()._asdict())
        await asyncio.Event().wait()  # until SIGKILL
    deadline = time.monotonic() + spec.get("seconds", 30)
    while time.monotonic() < deadline:
        m = bridge.metrics()
        if m.sent >= spec["expect"] and not m.buffered:
            break
        await asyncio.sleep(0.01)
    emit(ev="sent", metrics=bridge.metrics()._asdict(), state=bridge.state.value)


async def main(spec: dict[str, Any]) -> None:
    bus = MessageBus(persistence_path=spec.get("db"))
    channel, n, role = spec["channel"], spec["n"], spec["role"]
    persistent = spec.get("persistent", bool(spec.get("db")))
    channels = [channel, *([spec["also"]] if spec.get("also") else [])]
    for name in channels:
        bus.create_channel(name, persistent=persistent)
    bridge = make_bridge(spec)
    got: list[str] = []
    done = asyncio.Event()

    async def record(msg: Message) -> None:
        got.append(msg.id)
        emit(ev="got", id=msg.id, priority=msg.priority, headers=msg.headers,
             payload=msg.payload, origin=msg.origin, channel=msg.channel)  # fmt: skip
        if role == "hold":
            await asyncio.Event().wait()  # never acknowledged
        if len(got) >= spec.get("expect", n):
            done.set()

    if role in ("sub", "hold", "both") and spec.get("subscribe", True):
        for name in channels:
            bus.subscribe(name, record)
    if role == "responder":
        bus.subscribe(channel, lambda m: {"echo": m.payload, "pid": os.getpid()})
    await bus.add_bridge(bridge)
    await bus.start()
    emit(ev="ready", origin=bus.bus_id, pid=os.getpid())
    if role in ("durable", "resume"):
        await forward(bus, bridge, spec)
    if role == "requester":
        await rpc(bus, spec)
    if role == "responder":
        await asyncio.sleep(spec.get("seconds", 30))  # until the parent kills it
    if role in ("pub", "both"):
        pace = spec.get("pace", 0.0)
        for i in range(n):
            payload, headers = {"i": i, "text": f"message {i}"}, {"seq": i, "key": str(i % 4)}
            for name in channels:
                if spec.get("publish_async"):
                    await bus.publish_async(name, payload, priority=i % 5, headers=headers)
                else:
                    bus.publish(name, payload, priority=i % 5, headers=headers)
            if pace and i % 50 == 49:
                await asyncio.sleep(pace)
        deadline = time.monotonic() + spec.get("seconds", 30)
        total = n * len(channels)
        while (
            not spec.get("drain") and bridge.metrics().sent < total and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.01)
        emit(ev="sent", metrics=bridge.metrics()._asdict(), state=bridge.state.value)
    if role in ("sub", "hold", "both"):
        stop_file = spec.get("stop_file")
        deadline = time.monotonic() + spec.get("seconds", 30)
        while not done.is_set() and time.monotonic() < deadline:
            if stop_file and os.path.exists(stop_file):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.02)
        if role == "both" or "linger" in spec:
            await asyncio.sleep(spec.get("linger", 1.0))
    await bus.stop()
    emit(ev="done", metrics=bridge.metrics()._asdict(), received=len(got))


if __name__ == "__main__":
    import faulthandler

    SPEC = json.loads(sys.argv[1])
    faulthandler.dump_traceback_later(SPEC.get("seconds", 30) + 60, exit=True)  # never hangs
    asyncio.run(main(SPEC))
