"""What channels, subscriptions and taps may ask of their bus: small protocols, not the bus.

:class:`BusHost` is the bus's one implementation. It is built from the parts that own
each answer: the :class:`BusState` (running, the journal), the middleware, the publish
pipeline's ``closed`` flag, the supervisor (background tasks), the dead letters
(``DeadLetters.give_up``), the registry (``Registry.unsubscribe``) and the facade's public
``reply``. It never holds the :class:`~neuralcore.messaging.MessageBus`, so a channel
cannot reach the bus's state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from neuralcore.core import PersistenceError

if TYPE_CHECKING:
    from neuralcore.messaging._bridge import Tap
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._config import BusConfig
    from neuralcore.messaging._journal import Journal
    from neuralcore.messaging._message import Message
    from neuralcore.messaging._middleware import Middleware
    from neuralcore.messaging._publish import Pipeline
    from neuralcore.messaging._store import Commit
    from neuralcore.messaging._subscription import Subscription
    from neuralcore.messaging._supervisor import Supervisor

__all__ = ("BusHost", "BusState", "ChannelHost", "SubscriptionHost", "TapHost")

logger = logging.getLogger(__name__)


class BusState:
    """The bus's lifecycle as its parts see it: one owner (the facade writes it at
    start and stop), read by the pipeline, the taps and the channels' host.

    Attributes
    ----------
    running : bool
        Started and not stopped.
    loop : asyncio.AbstractEventLoop or None
        The loop the bus runs on, once started.
    journal : Journal or None
        The durable record of persistent channels (set once, at construction).
    """

    __slots__ = ("journal", "loop", "running")

    def __init__(self, journal: Journal | None) -> None:
        self.running = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.journal = journal


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
    def handling(self) -> object:
        """What the dispatcher and workers set in ``_publish.HANDLING`` (their handlers'
        publishes are follow-ups while ``stop()`` drains)."""
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

    def spawn(
        self, coro: Coroutine[Any, Any, Any], name: str, *, lasting: bool = False
    ) -> asyncio.Task[Any]:
        """Run a background task owned by the bus's supervisor (see :class:`Supervisor`)."""
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
    """The bus's implementation of :class:`ChannelHost` and :class:`SubscriptionHost`,
    wired from the parts that own each answer."""

    __slots__ = ("_answer", "_dead_letter", "_pipeline", "_state", "_supervisor", "_unsubscribe",
                 "config", "middleware")  # fmt: skip

    def __init__(
        self,
        *,
        config: BusConfig,
        middleware: Middleware,
        state: BusState,
        pipeline: Pipeline,
        supervisor: Supervisor,
        answer: Callable[[Message, Any], None],
        dead_letter: Callable[[Channel, Subscription, Message, BaseException], None],
        unsubscribe: Callable[[Subscription], None],
    ) -> None:
        self.config = config
        self.middleware = middleware
        self._state = state
        self._pipeline = pipeline
        self._supervisor = supervisor
        self._answer = answer
        self._dead_letter = dead_letter
        self._unsubscribe = unsubscribe

    @property
    def running(self) -> bool:
        """See :class:`ChannelHost`."""
        return self._state.running

    @property
    def closed(self) -> bool:
        """See :class:`ChannelHost` (the pipeline owns the flag)."""
        return self._pipeline.closed

    @property
    def handling(self) -> object:
        """See :class:`ChannelHost`: the pipeline itself."""
        return self._pipeline

    @property
    def journal(self) -> Journal | None:
        """See :class:`ChannelHost`."""
        return self._state.journal

    def answer(self, request: Message, payload: Any) -> None:
        """See :class:`ChannelHost`."""
        self._answer(request, payload)

    def dead_letter(self, ch: Channel, sub: Subscription, msg: Message, err: BaseException) -> None:
        """See :class:`ChannelHost`."""
        self._dead_letter(ch, sub, msg, err)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], name: str, *, lasting: bool = False
    ) -> asyncio.Task[Any]:
        """See :class:`ChannelHost`."""
        return self._supervisor.spawn(coro, name, lasting=lasting)

    async def await_mark(self, commit: Commit) -> None:
        """See :class:`ChannelHost`: failing, deliver anyway (at least once)."""
        journal = self._state.journal
        assert journal is not None
        try:
            await commit.wait_async(journal.timeout)
        except PersistenceError as err:
            logger.warning("delivery attempt not recorded in %s: %s", journal.path, err)

    def unsubscribe(self, sub: Subscription) -> None:
        """See :class:`SubscriptionHost`."""
        self._unsubscribe(sub)
