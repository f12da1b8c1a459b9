"""Build neuralcore bridges from the ATLAS bus's per-channel ``redis_*``/``kafka_*`` settings.

ATLAS names a remote Pub/Sub channel or topic per local channel; neuralcore bridges carry a
channel under its own name (``nc:`` + name on Redis, ``<prefix>.`` + name on Kafka). A
channel with ``redis_out``/``kafka_out`` set is sent, one with ``redis_in``/``kafka_in`` is
received; the values themselves only select. Redis carries them over Pub/Sub, as ATLAS does
(fire-and-forget); each bus receives every message. Kafka consumers share the group
``<client_id>-group``, as in ATLAS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from neuralcore.compat.atlas.bus._types import ChannelConfig

__all__ = ("kafka_bridges", "redis_bridges")


def _select(
    cfgs: Iterable[ChannelConfig], out_attr: str, in_attr: str
) -> dict[str, tuple[str, ...]]:
    cfgs = list(cfgs)
    return {
        "out": tuple(c.name for c in cfgs if getattr(c, out_attr)),
        "in": tuple(c.name for c in cfgs if getattr(c, in_attr)),
    }


def redis_bridges(cfgs: Iterable[ChannelConfig], url: str) -> list[Any]:
    """Redis bridges (one per direction in use) for the channels that ask for them."""
    from neuralcore.messaging.bridges import RedisBridge, RedisBridgeConfig

    bridges: list[Any] = []
    for direction, names in _select(cfgs, "redis_out", "redis_in").items():
        if names:
            cfg = RedisBridgeConfig(
                url=url,
                channels=names,
                direction=direction,  # type: ignore[arg-type]
                pubsub_channels=("*",),
                group=f"ncb-{uuid.uuid4().hex[:8]}",
            )
            bridges.append(RedisBridge(cfg))
    return bridges


def kafka_bridges(
    cfgs: Iterable[ChannelConfig], servers: str, *, topic_prefix: str, client_id: str
) -> list[Any]:
    """Kafka bridges (one per direction in use) for the channels that ask for them."""
    from neuralcore.messaging.bridges import KafkaBridge, KafkaBridgeConfig

    bridges: list[Any] = []
    for direction, names in _select(cfgs, "kafka_out", "kafka_in").items():
        if names:
            cfg = KafkaBridgeConfig(
                bootstrap=servers,
                channels=names,
                direction=direction,  # type: ignore[arg-type]
                topic_prefix=f"{topic_prefix}.",
                group=f"{client_id}-group",
            )
            bridges.append(KafkaBridge(cfg))
    return bridges
