"""The :class:`~neuralcore.messaging.bridges._port.BusPort` a bus builds for its bridges.

The protocol lives with the bridges (``bridges/_port.py``: what they may ask); this
adapter lives with the bus, the only side that knows how to answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from neuralcore.messaging._bridge import Tap
from neuralcore.messaging._message import Message
from neuralcore.messaging._routing import is_pattern
from neuralcore.messaging.bridges._port import BusPort, OnSettled, Sink

if TYPE_CHECKING:
    from neuralcore.messaging._codec import Codec
    from neuralcore.messaging._config import ChannelConfig
    from neuralcore.messaging._registry import Registry
    from neuralcore.messaging._taps import Taps

__all__ = ("MessageBusPort", "PortSource", "port_for")

logger = logging.getLogger(__name__)

Inject = Callable[[Message, OnSettled], Awaitable[bool]]


class MessageBusPort:
    """:class:`DurablePort` over a real bus: ``tap`` out, ``inject`` in, ``bus.codec`` on
    the wire, durable taps for persistent channels.

    The bus builds it from its parts (its taps, its registry, its inject and channel
    template); the port never sees the bus itself. A channel that arrives from the
    server but does not exist locally is created from ``BusConfig.default_channel``
    (the bridge's channel selection asked for it).
    """

    __slots__ = (
        "_codec",
        "_create",
        "_inject",
        "_origin",
        "_registry",
        "_taps",
        "decode",
        "encode",
    )

    encode: Callable[[Message], bytes]
    """``bus.codec.encode`` itself (no wrapper call: it runs once per bridged message)."""
    decode: Callable[[bytes], Message]
    """``bus.codec.decode``."""

    def __init__(
        self,
        *,
        origin: str,
        taps: Taps,
        registry: Registry,
        codec: Codec,
        inject: Inject,
        create: Callable[[str], ChannelConfig],
    ) -> None:
        self._origin = origin
        self._taps = taps
        self._registry = registry
        self._codec = codec
        self.encode = codec.encode
        self.decode = codec.decode
        self._inject = inject
        self._create = create

    @property
    def origin(self) -> str:
        """The bus id."""
        return self._origin

    def watch(self, channels: tuple[str, ...], sink: Sink) -> Callable[[], None]:
        """One tap over every selector; a channel matched by several is seen once."""
        return self._tap(channels, sink, None).close

    def watch_durable(self, channels: tuple[str, ...], sink: Sink, name: str) -> Callable[[], None]:
        """A durable tap named ``name`` (replays what an earlier run did not forward)."""
        return self._tap(channels, sink, name).close

    def _tap(self, channels: tuple[str, ...], sink: Sink, name: str | None) -> Tap:
        for selector in channels:
            if not is_pattern(selector):
                self._ensure_channel(selector)
        selectors = channels[0] if len(channels) == 1 else tuple(channels)
        return self._taps.open(
            selectors,
            sink,
            include_remote=False,
            durable=name is not None,
            name=name,
            auth=None,
            trusted=True,  # the bridge is configured by the bus's owner
            forwards=True,  # the sink returns True when it took a message for sending
        )

    def records(self, channel: str) -> bool:
        """True for the bus's persistent channels."""
        return self._taps.records(channel)

    def wire(self, msg: Message) -> bytes:
        """``msg`` encoded with the bus codec: the bytes the journal stored for it when it
        was just recorded (no second encode), else :meth:`encode`."""
        tracker = msg._tracker
        if tracker is not None:
            data = tracker.wire
            if data is not None:
                return data
        return self.encode(msg)

    def seq(self, msg: Message) -> int:
        """The message's row in the bus file (0 when it has none)."""
        tracker = msg._tracker
        return (tracker.seq or 0) if tracker is not None else 0

    def forwarded(self, name: str, seqs: list[int]) -> None:
        """Delete the outbox records (rides the bus's next group commit)."""
        self._taps.forwarded(name, seqs)

    def outbox(self, name: str, after: int, limit: int) -> list[Message]:
        """Recorded messages of ``name`` after ``after``, read back from the file."""
        return self._taps.outbox(name, after, limit)

    async def inject(self, msg: Message, on_settled: OnSettled) -> bool:
        """Deliver locally (creating a missing channel from the bus's template)."""
        return await self._inject(msg, on_settled)

    def subscribed(self, channel: str) -> bool:
        """True when an active local subscription (direct or pattern) selects ``channel``."""
        return self._registry.subscribed(channel)

    def _ensure_channel(self, name: str) -> None:
        if name not in self._registry.channels:
            logger.info("bridge: creating local channel %r from the default template", name)
            self._create(name)


@runtime_checkable
class PortSource(Protocol):
    """What can hand a bridge its port: a bus with a documented ``bridge_port()``.

    :func:`port_for` asks only this of a bus, never its private parts.
    """

    def bridge_port(self) -> BusPort:
        """A fresh :class:`BusPort` over this bus (one per bridge)."""
        ...


def port_for(bus: Any) -> BusPort:
    """The :class:`BusPort` of ``bus`` (a :class:`PortSource` such as a MessageBus, or
    already a port)."""
    if isinstance(bus, PortSource):
        return bus.bridge_port()
    if all(hasattr(bus, a) for a in ("origin", "watch", "inject", "encode", "decode")):
        port: BusPort = bus
        return port
    raise TypeError(f"cannot bridge a {type(bus).__name__}: expected a MessageBus")
