"""Child processes for the SIGKILL tests (run as scripts; importing this does nothing).

``publisher DB N``: 8 tasks publish ``(task, i)`` to the persistent channel "p" and print
``task i`` as soon as each publish returned (it is then durable).
``consumer DB K``: handles "p"; prints each payload when it starts handling it, and hangs
forever inside the handler of payload ``K``.
``killer DB K``: handles "p" (``max_attempts=3``, dead letters to "p.dlq"), SIGKILLs its
own process on payload ``K`` (a str), prints the other payloads, exits once drained.
"""

from __future__ import annotations

import asyncio
import sys


async def _publisher(db: str, n: int) -> None:
    from neuralcore.messaging import MessageBus

    bus = MessageBus(persistence_path=db)
    bus.create_channel("p", persistent=True, max_size=10_000_000)
    async with bus:

        async def task(t: int) -> None:
            for i in range(n):
                await bus.publish_async("p", [t, i])
                sys.stdout.write(f"{t} {i}\n")
                sys.stdout.flush()

        await asyncio.gather(*(task(t) for t in range(8)))


async def _consumer(db: str, hang_at: int) -> None:
    from neuralcore.messaging import Message, MessageBus

    bus = MessageBus(persistence_path=db)
    bus.create_channel("p", persistent=True)

    async def handler(m: Message) -> None:
        sys.stdout.write(f"{m.payload}\n")
        sys.stdout.flush()
        if m.payload == hang_at:
            await asyncio.sleep(3600)

    bus.subscribe("p", handler)
    async with bus:
        await asyncio.sleep(3600)


async def _killer(db: str, kill_at: str) -> None:
    import os
    import signal

    from neuralcore.messaging import Message, MessageBus

    bus = MessageBus(persistence_path=db)
    bus.create_channel("p", persistent=True, max_attempts=3, dead_letter="p.dlq")

    def handler(m: Message) -> None:
        if m.payload == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdout.write(f"{m.payload}\n")
        sys.stdout.flush()

    bus.subscribe("p", handler)
    async with bus:
        assert await bus.drain(timeout=30)


if __name__ == "__main__":
    role, path, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    if role == "killer":
        asyncio.run(_killer(path, arg))
    else:
        main = _publisher if role == "publisher" else _consumer
        asyncio.run(main(path, int(arg)))
