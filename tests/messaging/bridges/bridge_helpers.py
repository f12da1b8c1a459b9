"""Helpers for the bridge tests: a minimal bus port, durable Redis, peer processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuralcore.messaging import Message, MsgpackCodec, Outcome

_CODEC = MsgpackCodec()


class PortBus:
    """The smallest bus a bridge can run on: records injected messages, settles on demand.

    Stands in for the MessageBus in transport-level tests (the end-to-end tests use the
    real bus); ``auto_ack=False`` keeps messages unsettled to test takeover.
    """

    def __init__(self, origin: str, *, auto_ack: bool = True) -> None:
        self._origin = origin
        self.auto_ack = auto_ack
        self.sinks: list[tuple[tuple[str, ...], Callable[[Message], None]]] = []
        self.received: list[Message] = []
        self.unsettled: list[tuple[Message, Callable[[Message, Outcome], None]]] = []
        self.arrived = asyncio.Event()
        self._count = 0

    @property
    def origin(self) -> str:
        return self._origin

    def watch(
        self, channels: tuple[str, ...], sink: Callable[[Message], None]
    ) -> Callable[[], None]:
        entry = (channels, sink)
        self.sinks.append(entry)
        return lambda: self.sinks.remove(entry)

    async def inject(self, msg: Message, on_settled: Callable[[Message, Outcome], None]) -> bool:
        self.received.append(msg)
        self.arrived.set()
        if self.auto_ack:
            on_settled(msg, "acked")
        else:
            self.unsettled.append((msg, on_settled))
        return True

    def subscribed(self, channel: str) -> bool:
        return True  # every channel has a (recording) subscriber here

    def encode(self, msg: Message) -> bytes:
        return _CODEC.encode(msg)

    def decode(self, data: bytes) -> Message:
        return _CODEC.decode(data)

    def publish(self, channel: str, payload: object, **kw: object) -> Message:
        self._count += 1
        mid = f"{self._origin}-{self._count}"
        msg = Message(channel, payload, origin=self._origin, id=mid, **kw)  # type: ignore[arg-type]
        for _, sink in list(self.sinks):
            sink(msg)
        return msg

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < n and loop.time() < deadline:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
        return self.received


async def eventually(cond: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``cond()`` is true (polling every 5 ms); ``TimeoutError`` otherwise."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


class Peer:
    """A bus in another OS process (``peer.py``); its JSON stdout lines are read back."""

    def __init__(self, tmp: Path, name: str, spec: dict[str, Any]) -> None:
        self.out = tmp / f"{name}.out"
        self.err = tmp / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(PEER), json.dumps(spec)], stdout=out, stderr=err
            )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        lines = self.out.read_text().splitlines()
        evs = [json.loads(line) for line in lines if line.endswith("}")]
        return [e for e in evs if kind is None or e["ev"] == kind]

    def wait_until(self, pred: Callable[[Peer], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            if self.proc.poll() is not None:
                return pred(self)
            time.sleep(0.02)
        return False

    def finish(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"peer hung; stderr: {self.err.read_text()[-2000:]}") from None
        if self.proc.returncode != 0:
            raise AssertionError(f"peer failed: {self.err.read_text()[-2000:]}")
        return self.events()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


PEER = Path(__file__).with_name("peer.py")
