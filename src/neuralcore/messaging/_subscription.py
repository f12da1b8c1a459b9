"""Subscription handles and delivery targets (a lone subscriber, or a competing group)."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from typing import TYPE_CHECKING, Any

from neuralcore.messaging._message import Message
from neuralcore.messaging._routing import Selector

if TYPE_CHECKING:
    from neuralcore.messaging._host import SubscriptionHost
    from neuralcore.messaging._types import Filter, Handler

__all__ = ("Subscription", "Target")


class Subscription:
    """What :meth:`MessageBus.subscribe` returns; call :meth:`unsubscribe` to stop.

    Attributes
    ----------
    selector : str
        Channel name or pattern (``"rag.*"``) subscribed to.
    group : str or None
        Competing-consumer group (members share the messages), or ``None`` for broadcast.
    concurrency : int
        Messages this subscriber handles at once.
    failed : int
        Handler calls that raised (successes are counted per channel in ``metrics()``).

    Examples
    --------
    >>> from neuralcore.messaging import MessageBus
    >>> bus = MessageBus()
    >>> _ = bus.create_channel("a")
    >>> sub = bus.subscribe("a", print)
    >>> sub.active, sub.selector
    (True, 'a')
    >>> sub.unsubscribe(); sub.active
    False
    """

    __slots__ = (
        "_auth",
        "_host",
        "active",
        "concurrency",
        "failed",
        "filter",
        "group",
        "handler",
        "is_async",
        "name",
        "selection",
        "selector",
        "targets",
    )

    def __init__(
        self,
        host: SubscriptionHost,
        selector: str,
        handler: Handler,
        *,
        group: str | None,
        concurrency: int,
        filter: Filter | None,
        name: str,
    ) -> None:
        self._host = host
        self._auth: str | None = None  # the API key it was made with (never shown)
        self.selector = selector
        self.selection = Selector(selector)
        self.handler: Any = handler
        self.group = group
        self.concurrency = concurrency
        self.filter = filter
        self.name = name
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.active = True
        self.failed = 0
        self.targets: list[Target] = []

    def unsubscribe(self) -> None:
        """Stop receiving; a message being handled finishes, queued ones go elsewhere."""
        if self.active:
            self._host.unsubscribe(self)

    def __repr__(self) -> str:
        return f"Subscription({self.name!r}, selector={self.selector!r}, group={self.group!r})"


class Target:
    """One destination on one channel: every message goes to each target once.

    Sync handlers with ``concurrency=1`` are *inline*: the channel's dispatcher calls them
    directly. Others get a small inbox (``prefetch`` deep) drained by worker tasks, one per
    unit of concurrency, so no task is created per message.
    """

    __slots__ = (
        "_rr",
        "cap",
        "closed",
        "direct",
        "filter",
        "idle",
        "inbox",
        "inline",
        "key",
        "members",
        "plain",
        "room",
        "workers",
    )

    def __init__(self, key: str, first: Subscription, prefetch: int) -> None:
        self.key = key
        self.members: list[Subscription] = [first]
        self.filter = first.filter
        self.inline = True
        self.inbox: deque[Message] = deque()
        self.cap = prefetch
        self.idle: list[asyncio.Future[None]] = []
        self.room: asyncio.Future[None] | None = None
        self.workers: dict[Subscription, list[asyncio.Task[None]]] = {}
        self.closed = False
        self.plain: Any = None
        self.direct: Any = None
        self._rr = 0
        self.refresh()

    def refresh(self) -> None:
        """Recompute the inline flag and inbox depth after membership changes."""
        subs = self.members
        # Once workers exist the target stays in worker mode: switching back to inline
        # calls while workers still drain the inbox would reorder messages.
        self.inline = self.inline and all(not s.is_async and s.concurrency == 1 for s in subs)
        self.cap = max(self.cap, 2 * sum(s.concurrency for s in subs))
        one = self.inline and len(subs) == 1 and self.filter is None
        self.plain = subs[0].handler if one else None  # the dispatcher's no-frills call
        lone = not self.inline and len(subs) == 1 and self.filter is None
        lone = lone and subs[0].is_async and subs[0].concurrency == 1
        self.direct = subs[0].handler if lone else None  # the dispatcher may await it

    def next_member(self) -> Subscription:
        """Round-robin pick for inline groups."""
        members = self.members
        if len(members) == 1:
            return members[0]
        self._rr += 1
        return members[self._rr % len(members)]

    def push(self, msg: Message) -> None:
        """Hand a message to the workers."""
        self.inbox.append(msg)
        if self.idle:
            fut = self.idle.pop()
            if not fut.done():
                fut.set_result(None)

    def wake_all(self) -> None:
        """Wake idle workers (they re-check whether their subscription is still active)."""
        idle, self.idle = self.idle, []
        for fut in idle:
            if not fut.done():
                fut.set_result(None)
        self.wake_room()

    def wake_room(self) -> None:
        """Let a dispatcher waiting for inbox room continue."""
        room = self.room
        if room is not None:
            self.room = None
            if not room.done():
                room.set_result(None)
