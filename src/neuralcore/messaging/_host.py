"""What channels, subscriptions and taps may ask of their bus: small protocols, not the bus.

:class:`BusHost` is the bus's one implementation; a channel never sees the
:class:`~neuralcore.messaging.MessageBus` itself, so it cannot reach its private state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from neuralcore.messaging._bridge import Tap
    from neuralcore.messaging._bus import MessageBus
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._config import BusConfig
    from neuralcore.messaging._journal import Journal
    from neuralcore.messaging._message import Message
    from neuralcore.messaging._middleware import Middleware
    from neuralcore.messaging._store import Commit
    from neuralcore.messaging._subscription import Subscription

__all__ = ("BusHost", "ChannelHost", "SubscriptionHost", "TapHost")


class ChannelHost(Protocol):
    """What a :class:`Channel` needs from its bus."""

    @property
    def config(self) -> BusConfig:
        """Bus settings (prefetch, batch size, metrics sampling)."""
        ...

    @property
    def middleware(self) -> Middleware:
        """Publish and dispatch hooks."""
        ...

    @property
    def running(self) -> bool:
        """The bus is started (workers may be created now)."""
        ...

    @property
    def closed(self) -> bool:
        """The bus is stopped (no more fast-path publishes)."""
        ...

    @property
    def journal(self) -> Journal | None:
        """The durable record, for delivery-attempt marks."""
        ...

    def answer(self, request: Message, payload: Any) -> None:
        """A handler's return value answers a request (never raises)."""
        ...

    def dead_letter(self, ch: Channel, sub: Subscription, msg: Message, err: BaseException) -> None:
        """Give up on ``msg`` (record it, forward it, then settle it)."""
        ...

    def supervise(self, task: asyncio.Task[Any]) -> None:
        """Done callback of a background task: a failure is logged and kept for health()."""
        ...

    async def await_mark(self, commit: Commit) -> None:
        """Wait for a delivery-attempt record."""
        ...


class SubscriptionHost(Protocol):
    """What a :class:`Subscription` needs from its bus."""

    def unsubscribe(self, sub: Subscription) -> None:
        """Detach ``sub`` from every channel."""
        ...


class TapHost(Protocol):
    """What a :class:`Tap` needs from its bus."""

    def records(self, channel: str) -> bool:
        """``channel`` keeps messages recorded until a durable tap acknowledges them."""
        ...

    def forwarded(self, name: str, seqs: list[int]) -> None:
        """Durable tap ``name`` forwarded these rows."""
        ...

    def remove_tap(self, tap: Tap) -> None:
        """Stop giving messages to ``tap``."""
        ...


class BusHost:
    """The bus's implementation of its parts' host protocols (channels, subscriptions,
    taps, the publish pipeline and the tap service)."""

    __slots__ = ("_bus",)

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus

    @property
    def config(self) -> BusConfig:
        """See :class:`ChannelHost`."""
        return self._bus.config

    @property
    def middleware(self) -> Middleware:
        """See :class:`ChannelHost`."""
        return self._bus._middleware

    @property
    def running(self) -> bool:
        """See :class:`ChannelHost`."""
        return self._bus.running

    @property
    def closed(self) -> bool:
        """See :class:`ChannelHost`."""
        return self._bus._pub.closed

    @property
    def journal(self) -> Journal | None:
        """See :class:`ChannelHost`."""
        return self._bus._journal

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """See :class:`~neuralcore.messaging._publish.PublishHost`."""
        return self._bus._loop

    def answer(self, request: Message, payload: Any) -> None:
        """See :class:`ChannelHost`."""
        self._bus._answer(request, payload)

    def dead_letter(self, ch: Channel, sub: Subscription, msg: Message, err: BaseException) -> None:
        """See :class:`ChannelHost`."""
        self._bus._dead_letter(ch, sub, msg, err)

    def supervise(self, task: asyncio.Task[Any]) -> None:
        """See :class:`ChannelHost`."""
        self._bus.supervise(task)

    async def await_mark(self, commit: Commit) -> None:
        """See :class:`ChannelHost`."""
        await self._bus._await_mark(commit)

    def unsubscribe(self, sub: Subscription) -> None:
        """See :class:`SubscriptionHost`."""
        self._bus._unsubscribe(sub)

    def records(self, channel: str) -> bool:
        """See :class:`TapHost`."""
        return self._bus._taps.records(channel)

    def forwarded(self, name: str, seqs: list[int]) -> None:
        """See :class:`TapHost`."""
        self._bus._taps.forwarded(name, seqs)

    def remove_tap(self, tap: Tap) -> None:
        """See :class:`TapHost`."""
        self._bus._taps.remove(tap)
