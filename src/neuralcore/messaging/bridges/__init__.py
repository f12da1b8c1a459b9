"""Bridges that extend a :class:`~neuralcore.messaging.MessageBus` over Redis and Kafka.

Importing this module is cheap: redis-py and confluent-kafka are imported when a bridge is
constructed (``pip install "neuralcore-runtime[redis]"`` / ``[kafka]``). :class:`MemoryBridge`
over a :class:`MemoryBroker` runs the same machinery in one process, for tests.

Examples
--------
>>> from neuralcore.messaging.bridges import RedisBridge, RedisBridgeConfig
>>> cfg = RedisBridgeConfig(url="redis://127.0.0.1:6379/0", channels=("jobs.*",))
>>> cfg.matches("jobs.embed"), cfg.direction
(True, 'both')
"""

from neuralcore.messaging.bridges._base import BaseBridge, FatalBridgeError
from neuralcore.messaging.bridges._config import (
    BridgeConfig,
    Direction,
    KafkaBridgeConfig,
    RedisBridgeConfig,
)
from neuralcore.messaging.bridges._kafka import KafkaBridge
from neuralcore.messaging.bridges._port import BusPort, DurablePort
from neuralcore.messaging.bridges._redis import RedisBridge
from neuralcore.messaging.bridges._state import (
    BridgeHealth,
    BridgeMetrics,
    BridgeState,
)
from neuralcore.messaging.bridges.memory import MemoryBridge, MemoryBroker

__all__ = (
    "BaseBridge",
    "BridgeConfig",
    "BridgeHealth",
    "BridgeMetrics",
    "BridgeState",
    "BusPort",
    "Direction",
    "DurablePort",
    "FatalBridgeError",
    "KafkaBridge",
    "KafkaBridgeConfig",
    "MemoryBridge",
    "MemoryBroker",
    "RedisBridge",
    "RedisBridgeConfig",
)
