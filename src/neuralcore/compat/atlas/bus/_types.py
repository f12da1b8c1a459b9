"""The value types of ATLAS's NeuralCognitiveBus, restated: envelope, configs, plugins, auth.

Field names, defaults and mutability follow ATLAS (its AgentBus edits channel configs in
place), so code written against ATLAS's bus constructs and reads these unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from neuralcore.core._errors import AuthorizationError, ConfigError
from neuralcore.messaging._limits import TokenBucket as _Bucket

__all__ = (
    "ChannelConfig",
    "Message",
    "Plugin",
    "SecurityConfig",
    "SubscriberConfig",
    "TokenBucket",
)


@dataclasses.dataclass(frozen=True)
class Message:
    """What subscribers receive: id, channel, publish time, priority, payload and meta.

    Examples
    --------
    >>> m = Message(id="1", channel="c", ts=0.0, priority=5, payload={}, meta={"trace_id": "t"})
    >>> m.trace_id, m.to_dict()["priority"]
    ('t', 5)
    """

    id: str
    channel: str
    ts: float
    priority: int
    payload: Any
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        """The ``trace_id`` meta entry (``""`` when absent)."""
        return str(self.meta.get("trace_id", ""))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (what dead letters embed)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "ts": self.ts,
            "priority": self.priority,
            "payload": self.payload,
            "meta": self.meta,
        }


@dataclasses.dataclass
class ChannelConfig:
    """Settings of one channel; lower ``default_priority`` numbers are more urgent.

    ``drop_policy`` is ``"drop_new"`` (a full queue rejects the publish, which returns
    ``None``) or ``"drop_old"`` (the least urgent, newest-queued message is evicted); any
    other value behaves as ``"drop_new"``, as in ATLAS. ``serializer``/``compress`` fields
    are accepted; neuralcore picks its own wire format at process boundaries.

    Examples
    --------
    >>> ChannelConfig(name="jobs", max_queue_size=10).drop_policy
    'drop_new'
    """

    name: str
    max_queue_size: int = 1000
    drop_policy: str = "drop_new"
    default_priority: int = 100
    rate_limit_per_sec: float | None = None
    rate_limit_burst: float | None = None
    persistent: bool = False
    serializer: str = "msgpack"
    compress: bool = False
    compression_level: int = 3
    redis_in: str | None = None
    redis_out: str | None = None
    kafka_in: str | None = None
    kafka_out: str | None = None
    dead_letter_channel: str | None = None
    fanout_max_concurrency: int = 500
    idempotency_key_field: str | None = None
    idempotency_ttl_seconds: float = 60.0


@dataclasses.dataclass
class SubscriberConfig:
    """One registered subscriber: callback, filter, throttle, replay, retry, concurrency."""

    module_name: str
    callback_fn: Callable[[Message], Awaitable[None]]
    filter_fn: Callable[[Message], bool] | None = None
    rate_limit_per_sec: float | None = None
    rate_limit_burst: float | None = None
    replay_on_register: bool = False
    replay_after_seq: int = 0
    retry_attempts: int = 0
    retry_delay: float = 0.1
    concurrency: int = 1


HookFn = Callable[[Message], Awaitable[Message]]
SinkFn = Callable[[Message], Awaitable[None]]


@dataclasses.dataclass
class Plugin:
    """Hooks around publish and dispatch.

    ``validate`` runs first and may raise to reject; ``pre_publish``/``pre_dispatch`` may
    return a changed message; ``post_publish``/``post_dispatch`` observe (errors are counted
    and logged, never raised).
    """

    name: str
    pre_publish: HookFn | None = None
    post_publish: SinkFn | None = None
    pre_dispatch: HookFn | None = None
    post_dispatch: SinkFn | None = None
    validate: Callable[[Message], Awaitable[None]] | None = None


@dataclasses.dataclass
class SecurityConfig:
    """API-key / JWT authentication with per-channel roles (off unless ``enabled``).

    Examples
    --------
    >>> sec = SecurityConfig(enabled=True, api_keys={"k"}, channel_roles={"ops": {"admin"}})
    >>> sec.verify({"api_key": "k", "roles": ["admin"]}, "ops")
    >>> sec.verify({"api_key": "k"}, "ops")
    Traceback (most recent call last):
    ...
    neuralcore.errors.AuthorizationError: Insufficient role for channel 'ops'
    """

    enabled: bool = False
    api_keys: set[str] = dataclasses.field(default_factory=set)
    jwt_secret: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_algorithms: list[str] = dataclasses.field(default_factory=lambda: ["HS256"])
    channel_roles: dict[str, set[str]] = dataclasses.field(default_factory=dict)

    def verify(self, auth: dict[str, Any] | None, channel: str) -> None:
        """Raise :class:`AuthorizationError` (a ``PermissionError``) unless ``auth`` may use
        ``channel``; a no-op while security is disabled."""
        if not self.enabled:
            return
        if not auth:
            raise AuthorizationError("Missing auth")
        if auth.get("api_key"):
            if auth["api_key"] not in self.api_keys:
                raise AuthorizationError("Invalid API key")
            self._enforce_roles(channel, set(auth.get("roles") or []))
            return
        if auth.get("jwt"):
            self._enforce_roles(channel, set(self._jwt_claims(auth["jwt"]).get("roles") or []))
            return
        raise AuthorizationError("No supported auth method provided")

    def _jwt_claims(self, token: str) -> dict[str, Any]:
        try:
            jwt: Any = importlib.import_module("jwt")  # PyJWT, optional
        except ImportError as err:  # a PermissionError, as ATLAS raises it
            raise AuthorizationError(
                "JWT support not installed (PyJWT missing): pip install PyJWT"
            ) from err
        if not self.jwt_secret:
            raise AuthorizationError("JWT secret not configured")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=self.jwt_algorithms,
                audience=self.jwt_audience,
                issuer=self.jwt_issuer,
                options={"require": ["exp"]},
            )
        except jwt.PyJWTError as err:
            raise AuthorizationError(f"Invalid JWT: {err}") from err
        return claims

    def _enforce_roles(self, channel: str, roles: set[str]) -> None:
        allowed = self.channel_roles.get(channel)
        if allowed and roles.isdisjoint(allowed):
            raise AuthorizationError(f"Insufficient role for channel '{channel}'")


class TokenBucket:
    """ATLAS's async token bucket on the bus's own bucket: :meth:`acquire` waits for a token.

    Examples
    --------
    >>> TokenBucket(0, 1)
    Traceback (most recent call last):
    ...
    neuralcore.errors.ConfigError: config field 'rate_per_sec' = 0: must be > 0
    """

    __slots__ = ("_bucket", "capacity", "rate")

    def __init__(self, rate_per_sec: float, capacity: float) -> None:
        if rate_per_sec <= 0:
            raise ConfigError("rate_per_sec", rate_per_sec, "must be > 0")
        if capacity <= 0:
            raise ConfigError("capacity", capacity, "must be > 0")
        self.rate, self.capacity = float(rate_per_sec), float(capacity)
        self._bucket = _Bucket(rate=self.rate, burst=max(1, int(capacity)))

    async def acquire(self, tokens: float = 1.0) -> None:
        """Take ``tokens`` (whole tokens, at least one), sleeping until they refill."""
        for _ in range(max(1, round(tokens)) if tokens > 0 else 0):
            while not self._bucket.take():
                await asyncio.sleep(min(max(1.0 / self.rate, 0.001), 0.25))
