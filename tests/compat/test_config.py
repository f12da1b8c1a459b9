"""ATLAS's ``messaging`` YAML section loads into typed config; bad keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuralcore.compat.atlas import AtlasMessagingConfig, load_atlas_messaging
from neuralcore.core import ConfigError

# The shape of ATLAS's config.yaml messaging block (restated, with the bus's channels).
ATLAS_YAML = """
messaging:
  backend: ncb
  persistence_path: /tmp/ncb.sqlite
  redis_url: redis://localhost:6379/0
  delete_on_ack: true
  min_idle_ms: 60000
  replay_start: $
  trim_maxlen: null
  kafka:
    acks: all
    bootstrap_servers: kafka:9092
    enabled: true
    enable_idempotence: true
    max_in_flight: 5
    topic_prefix: atlas.bus
    bridge: {enabled: false, topics: []}
  policy:
    default: {retry_attempts: 3, retry_delay: 0.1, dlq_topic_template: "dlq.{topic}"}
    prefixes: []
  channels:
    agent_commands:
      max_queue_size: 5000
      drop_policy: drop_old
      persistent: true
      rate_limit_per_sec: 100
      rate_limit_burst: 20
      dead_letter_channel: agent_commands_dlq
    sensor_data:
      max_queue_size: 20000
      idempotency_key_field: id
      idempotency_ttl_seconds: 30
      redis_out: sensors
  security:
    enabled: true
    api_keys: [dev-key]
    channel_roles: {agent_commands: [operator, admin]}
"""


def test_full_section_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(ATLAS_YAML)
    cfg = load_atlas_messaging(path)
    assert cfg.backend == "ncb"
    assert cfg.kafka_servers == "kafka:9092"
    assert cfg.kafka.topic_prefix == "atlas.bus"
    assert cfg.channels["agent_commands"].drop_policy == "drop_old"
    assert cfg.channels["sensor_data"].redis_out == "sensors"
    assert cfg.security.channel_roles == {"agent_commands": ("operator", "admin")}
    assert cfg.security.api_keys == ("dev-key",)


def test_maps_onto_neuralcore_bus_config() -> None:
    bus = load_atlas_messaging(ATLAS_YAML).to_bus_config()
    assert bus.persistence_path == "/tmp/ncb.sqlite"
    cmds, sensors = bus.channels
    assert (cmds.name, cmds.max_size, cmds.overflow, cmds.persistent) == (
        "agent_commands", 5000, "drop_oldest", True,
    )  # fmt: skip
    assert (cmds.rate_limit, cmds.rate_burst, cmds.dead_letter) == (100.0, 20, "agent_commands_dlq")
    assert cmds.idempotency_window is None
    assert (sensors.overflow, sensors.idempotency_window) == ("drop_new", 30.0)


def test_kafka_servers_only_when_enabled_or_flat() -> None:
    off = AtlasMessagingConfig.from_dict({"kafka": {"bootstrap_servers": "k:1"}})
    assert off.kafka_servers is None
    flat = AtlasMessagingConfig.from_dict({"kafka_bootstrap_servers": "k:2"})
    assert flat.kafka_servers == "k:2"


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"backend": "zeromq"}, "messaging.backend"),
        ({"chanels": {}}, "messaging.chanels"),
        ({"channels": {"a": {"drop_policy": "spill"}}}, "messaging.channels.a.drop_policy"),
        ({"channels": {"a": {"max_queue_size": 0}}}, "messaging.channels.a.max_queue_size"),
        ({"channels": {"a": {"max_queue": 5}}}, "messaging.channels.a.max_queue"),
        (
            {"channels": {"a": {"dead_letter_channel": "a"}}},
            "messaging.channels.a.dead_letter_channel",
        ),
        ({"kafka": {"enabeld": True}}, "messaging.kafka.enabeld"),
        ({"security": {"api_keys": "k"}}, "messaging.security.api_keys"),
        ({"redis_url": "http://x"}, "messaging.redis_url"),
    ],
)
def test_bad_keys_are_named(block: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_atlas_messaging({"messaging": block})
    assert info.value.field == field


def test_missing_section() -> None:
    with pytest.raises(ConfigError, match="section missing"):
        load_atlas_messaging({"rag": {}})


def test_redis_and_kafka_bridge_settings() -> None:
    cfg = load_atlas_messaging(ATLAS_YAML)
    redis = cfg.to_redis_bridge_config()
    assert redis is not None
    assert (redis.url, redis.channels, redis.start, redis.claim_idle_ms) == (
        "redis://localhost:6379/0", ("sensor_data",), "latest", 60000,
    )  # fmt: skip
    kafka = cfg.to_kafka_bridge_config()
    assert kafka is not None
    assert (kafka.bootstrap, kafka.topic_prefix, kafka.channels) == (
        "kafka:9092",
        "atlas.bus.",
        ("*",),
    )
    bare = AtlasMessagingConfig.from_dict({"replay_start": "0-0", "redis_url": "redis://h:1/0"})
    assert bare.to_kafka_bridge_config() is None
    bare_redis = bare.to_redis_bridge_config()
    assert bare_redis is not None
    assert bare_redis.start == "earliest"
    assert AtlasMessagingConfig().to_redis_bridge_config() is None
