"""Bridges that extend a :class:`~neuralcore.messaging.MessageBus` over Redis and Kafka.

Importing this module is cheap: redis-py and confluent-kafka are imported when a bridge is
constructed (``pip install "neuralcore-runtime[redis]"`` / ``[kafka]``). Each bridge is one
:class:`BridgeRunner` (reconnect and backoff, the bounded outbound buffer, inbound dedup and
acknowledgements, supervised tasks) driving one :class:`Transport` (connect, send, receive,
ack, dead-letter, ping): Redis, Kafka, or the in-memory :class:`MemoryBroker` used by
:class:`MemoryBridge` for fast, deterministic tests of the runner.

Examples
--------
>>> from neuralcore.messaging.bridges import RedisBridge, RedisBridgeConfig
>>> cfg = RedisBridgeConfig(url="redis://127.0.0.1:6379/0", channels=("jobs.*",))
>>> cfg.matches("jobs.embed"), cfg.direction
(True, 'both')
"""

from neuralcore.messaging.bridges._config import (
    BridgeConfig,
    Direction,
    KafkaBridgeConfig,
    RedisBridgeConfig,
)
from neuralcore.messaging.bridges._kafka import KafkaBridge
from neuralcore.messaging.bridges._port import BusPort, DurablePort
from neuralcore.messaging.bridges._redis import RedisBridge
from neuralcore.messaging.bridges._runner import BridgeRunner
from neuralcore.messaging.bridges._state import (
    BridgeHealth,
    BridgeMetrics,
    BridgeState,
)
from neuralcore.messaging.bridges._transport import FatalBridgeError, Link, Transport
from neuralcore.messaging.bridges.memory import MemoryBridge, MemoryBroker

__all__ = (
    "BridgeConfig",
    "BridgeHealth",
    "BridgeMetrics",
    "BridgeRunner",
    "BridgeState",
    "BusPort",
    "Direction",
    "DurablePort",
    "FatalBridgeError",
    "KafkaBridge",
    "KafkaBridgeConfig",
    "Link",
    "MemoryBridge",
    "MemoryBroker",
    "RedisBridge",
    "RedisBridgeConfig",
    "Transport",
)
