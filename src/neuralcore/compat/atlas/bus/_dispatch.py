"""Per-message fan-out of the ATLAS-compatible bus: idempotency, filters, throttles,
retries, per-subscriber concurrency and dead letters, with ATLAS's rules.

The neuralcore MessageBus queues, orders by priority and persists; each compat channel has
one bus subscription whose handler calls :meth:`Dispatcher.dispatch`. Subscriber failures
never reach the MessageBus: they are counted, logged and dead-lettered here, in the payload
shape ATLAS consumers expect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from neuralcore.compat.atlas.bus._types import ChannelConfig, Message, SubscriberConfig, TokenBucket

__all__ = ("ChannelStats", "Dispatcher", "dead_letter_payload")

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ChannelStats:
    """The per-channel counters ATLAS's ``snapshot_metrics`` reports (plus queue size)."""

    published: int = 0
    dropped: int = 0
    dispatched: int = 0
    errors: int = 0
    publish_latency_ms_sum: float = 0.0
    dispatch_latency_ms_sum: float = 0.0


def dead_letter_payload(
    origin: str, subscriber: str, msg: Message, err: BaseException
) -> dict[str, Any]:
    """What a dead-letter channel receives for a failed delivery.

    Examples
    --------
    >>> m = Message(id="1", channel="c", ts=0.0, priority=5, payload=1)
    >>> sorted(dead_letter_payload("c", "sub", m, RuntimeError("x")))
    ['error', 'error_type', 'message', 'origin_channel', 'subscriber', 'traceback']
    """
    return {
        "origin_channel": origin,
        "subscriber": subscriber,
        "error_type": type(err).__name__,
        "error": str(err),
        "traceback": "".join(traceback.format_exception(err)),
        "message": msg.to_dict(),
    }


DeadLetterFn = Callable[[str, Message, str, BaseException], Awaitable[None]]


@dataclasses.dataclass
class Dispatcher:
    """Fan one message out to a channel's subscribers (see the module docstring)."""

    stats: Callable[[str], ChannelStats]
    dead_letter: DeadLetterFn
    log: logging.Logger = logger
    fanout: dict[str, asyncio.Semaphore] = dataclasses.field(default_factory=dict)
    limiters: dict[tuple[str, str], TokenBucket] = dataclasses.field(default_factory=dict)
    slots: dict[tuple[str, str], asyncio.Semaphore] = dataclasses.field(default_factory=dict)
    seen: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    async def dispatch(
        self, cfg: ChannelConfig, msg: Message, subs: list[SubscriberConfig]
    ) -> None:
        """Deliver ``msg`` to every subscriber at once (bounded by the channel's fan-out)."""
        if cfg.idempotency_key_field and self._duplicate(cfg, msg):
            self.log.debug("skipping duplicate message %s on %s", msg.id, cfg.name)
            return
        sem = self.fanout.setdefault(
            cfg.name, asyncio.Semaphore(max(1, cfg.fanout_max_concurrency))
        )
        await asyncio.gather(*(self._deliver(cfg, msg, sub, sem) for sub in subs))

    async def deliver_one(self, cfg: ChannelConfig, msg: Message, sub: SubscriberConfig) -> None:
        """Deliver ``msg`` to a channel's only subscriber: awaited in place, no task (the
        fan-out bound cannot matter for one delivery at a time)."""
        if cfg.idempotency_key_field and self._duplicate(cfg, msg):
            self.log.debug("skipping duplicate message %s on %s", msg.id, cfg.name)
            return
        limiter = self.limiters.get((cfg.name, sub.module_name))
        if limiter is not None:
            await limiter.acquire(1.0)
        if sub.filter_fn is not None and not await self._passes(cfg, msg, sub):
            return
        await self._call_with_retries(cfg, msg, sub)

    async def failed(
        self, cfg: ChannelConfig, msg: Message, sub: SubscriberConfig, err: Exception
    ) -> None:
        """A delivery failed for good: count, log and dead-letter it."""
        self.stats(cfg.name).errors += 1
        self.log.error(
            "subscriber %s failed on %s",
            sub.module_name,
            msg.id,
            exc_info=(type(err), err, err.__traceback__),
        )
        await self.dead_letter(cfg.name, msg, sub.module_name, err)

    def _duplicate(self, cfg: ChannelConfig, msg: Message) -> bool:
        """True when the payload's idempotency key was seen within the channel's TTL."""
        key = _idempotency_key(msg.payload, cfg.idempotency_key_field or "")
        if key is None:
            return False
        store, now = self.seen.setdefault(cfg.name, {}), time.time()
        if len(store) > 100:
            for stale in [k for k, exp in store.items() if exp <= now]:
                del store[stale]
        if store.get(key, 0.0) > now:
            return True
        store[key] = now + cfg.idempotency_ttl_seconds
        return False

    async def _deliver(
        self, cfg: ChannelConfig, msg: Message, sub: SubscriberConfig, sem: asyncio.Semaphore
    ) -> None:
        async with sem:
            limiter = self.limiters.get((cfg.name, sub.module_name))
            if limiter is not None:
                await limiter.acquire(1.0)
            if sub.filter_fn is not None and not await self._passes(cfg, msg, sub):
                return
            await self._call_with_retries(cfg, msg, sub)

    async def _passes(self, cfg: ChannelConfig, msg: Message, sub: SubscriberConfig) -> bool:
        assert sub.filter_fn is not None  # checked by the caller
        try:
            return bool(sub.filter_fn(msg))
        except Exception as err:  # a subscriber's filter failing is dead-lettered, not raised
            self.stats(cfg.name).errors += 1
            self.log.exception("filter of %s failed on %s", sub.module_name, msg.id)
            await self.dead_letter(cfg.name, msg, sub.module_name, err)
            return False

    async def _call_with_retries(
        self, cfg: ChannelConfig, msg: Message, sub: SubscriberConfig
    ) -> None:
        attempts = max(0, sub.retry_attempts) + 1
        slot = self.slots.get((cfg.name, sub.module_name))
        for attempt in range(1, attempts + 1):
            try:
                if slot is None:
                    await sub.callback_fn(msg)
                else:
                    async with slot:
                        await sub.callback_fn(msg)
            except Exception as err:  # handler failures are the bus's to count and route
                if attempt < attempts:
                    self.log.warning(
                        "subscriber %s failed on %s (attempt %d/%d): %r; retrying",
                        sub.module_name, msg.id, attempt, attempts, err,
                    )  # fmt: skip
                    await asyncio.sleep(sub.retry_delay)
                    continue
                self.stats(cfg.name).errors += 1
                self.log.exception(
                    "subscriber %s failed on %s after %d attempt(s)",
                    sub.module_name,
                    msg.id,
                    attempts,
                )
                await self.dead_letter(cfg.name, msg, sub.module_name, err)
                return
            self.stats(cfg.name).dispatched += 1
            return


def _idempotency_key(payload: Any, field: str) -> str | None:
    """The key from ``payload[field]``, or from a nested ``payload["payload"][field]``."""
    if not isinstance(payload, dict):
        return None
    inner = payload.get("payload")
    value = inner.get(field) if isinstance(inner, dict) else payload.get(field)
    return None if value is None else str(value)
