"""The adapter's ``start(redis_url=...)``: channels with redis_out/redis_in cross processes."""

from __future__ import annotations

import asyncio

import pytest

from neuralcore.compat.atlas import ChannelConfig, Message, NeuralCognitiveBus


async def _connected(bus: NeuralCognitiveBus) -> None:
    async with asyncio.timeout(10):
        while not all(b.state.value == "connected" for b in bus.message_bus.bridges()):
            await asyncio.sleep(0.01)


@pytest.mark.integration
@pytest.mark.redis
async def test_redis_out_reaches_redis_in_of_another_bus() -> None:
    from neuralcore._testing import RedisServer

    sender, receiver = NeuralCognitiveBus(), NeuralCognitiveBus()
    sender.create_channel("events", ChannelConfig(name="events", redis_out="events"))
    sender.create_channel("local")
    receiver.create_channel("events", ChannelConfig(name="events", redis_in="events"))
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(msg: Message) -> None:
        await got.put(msg)

    await receiver.register_subscriber("events", "h", handler)
    with RedisServer.running() as server:
        await receiver.start(redis_url=server.url)
        await sender.start(redis_url=server.url)
        try:
            await _connected(receiver)
            await _connected(sender)
            await asyncio.sleep(0.2)  # Pub/Sub: the receiver's SUBSCRIBE must be in place
            msg_id = await sender.publish("events", {"x": 1}, priority=3, meta={"k": "v"})
            await sender.publish("local", "stays here")
            msg = await asyncio.wait_for(got.get(), 5)
            assert (msg.id, msg.payload, msg.priority, msg.meta["k"]) == (msg_id, {"x": 1}, 3, "v")
            await asyncio.sleep(0.1)
            assert got.empty()
        finally:
            await sender.stop()
            await receiver.stop()


@pytest.mark.integration
@pytest.mark.kafka
async def test_kafka_out_reaches_kafka_in_of_another_bus() -> None:
    from neuralcore._testing import TansuServer

    sender, receiver = NeuralCognitiveBus(), NeuralCognitiveBus()
    sender.create_channel("events", ChannelConfig(name="events", kafka_out="events"))
    receiver.create_channel("events", ChannelConfig(name="events", kafka_in="events"))
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(msg: Message) -> None:
        await got.put(msg)

    await receiver.register_subscriber("events", "h", handler)
    with TansuServer.running() as server:
        await receiver.start(kafka_bootstrap_servers=server.bootstrap, kafka_client_id="reader")
        await sender.start(kafka_bootstrap_servers=server.bootstrap, kafka_client_id="writer")
        try:
            msg_id = await sender.publish("events", {"x": 2}, priority=4)
            msg = await asyncio.wait_for(got.get(), 30)
            assert (msg.id, msg.payload, msg.priority) == (msg_id, {"x": 2}, 4)
        finally:
            await sender.stop()
            await receiver.stop()
