"""The two small protocols between the bridge runner and a transport.

:class:`Transport` is what Redis, Kafka and the in-memory broker implement: connect,
send a batch, the receive loops, acknowledge, dead-letter, ping. It never sees the bus or
the runner's state; it talks back through :class:`Link`, the few runner operations a
transport needs (hand a record in, settle a token, report a lost connection, count).
:class:`~neuralcore.messaging.bridges.BridgeRunner` owns everything else: reconnect and
backoff, the bounded outbound buffer, inbound dedup and acknowledgements, and the
supervision of every task.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from neuralcore.core import BridgeConnectionError
from neuralcore.messaging._message import Message
from neuralcore.messaging.bridges._buffer import Outgoing
from neuralcore.messaging.bridges._config import BridgeConfig
from neuralcore.messaging.bridges._port import BusPort
from neuralcore.messaging.bridges._state import Counters

__all__ = ("REPLY_PREFIX", "FatalBridgeError", "Link", "Loop", "Transport")

REPLY_PREFIX = "_reply."

Loop = Callable[[], Coroutine[Any, Any, None]]


class FatalBridgeError(BridgeConnectionError):
    """A connection error that retrying cannot fix (bad credentials, TLS, config)."""


class Link(Protocol):
    """What a transport may ask of the runner that drives it."""

    config: BridgeConfig
    counters: Counters
    server_lag: int

    @property
    def port(self) -> BusPort | None:
        """The bus port while started (``None`` when stopped)."""
        ...

    @property
    def own_reply(self) -> str:
        """This bus's ``_reply.<bus id>`` channel."""
        ...

    @property
    def consumer(self) -> str:
        """This bus's consumer name on the server."""
        ...

    @property
    def stopping(self) -> bool:
        """True once :meth:`BridgeRunner.stop` is tearing down."""
        ...

    @property
    def failed(self) -> bool:
        """True in state ``failed``."""
        ...

    def group_of(self, channel: str) -> str:
        """The server-side group ``channel`` is read through."""
        ...

    def fan_out(self, channel: str) -> bool:
        """True when ``channel`` is read through this bus's private group."""
        ...

    def records(self, channel: str) -> bool:
        """True when the bus keeps ``channel``'s messages in its durable outbox."""
        ...

    async def handle(self, raw: bytes, token: Any, source: str) -> str | None:
        """Deliver one record read from ``source`` (stream, Pub/Sub channel, topic) locally;
        returns a reason when it must be dead-lettered instead (the caller settles it)."""
        ...

    def settle(self, token: Any) -> None:
        """Acknowledge ``token`` to the server with the next ack batch."""
        ...

    def rejected(self, reason: str) -> str:
        """Count and log one dead-lettered record; returns ``reason``."""
        ...

    def lost(self, err: BaseException) -> None:
        """The connection failed: buffer, and reconnect in the background."""
        ...


class Transport(Protocol):
    """One server technology under the runner (Redis, Kafka, in-memory).

    Attributes
    ----------
    kind : str
        ``"redis"``, ``"kafka"``, ``"memory"`` (logs, errors, the default outbox name).
    address : str
        Where it connects, without credentials.
    max_in_flight : int
        Batches the runner may have in :meth:`send` at once (handed over in order).
    channel_keyed : bool
        True when :meth:`key` depends on the message's channel alone (the runner then
        asks once per channel, not once per message).
    """

    kind: str
    max_in_flight: int

    @property
    def channel_keyed(self) -> bool:
        """True when :meth:`key` depends on the message's channel alone."""
        ...

    @property
    def address(self) -> str:
        """Where the transport connects (no credentials)."""
        ...

    def bind(self, link: Link) -> None:
        """Called once per start, before :meth:`connect`."""
        ...

    async def connect(self) -> None:
        """Open the clients; raise on failure (also used to reconnect)."""
        ...

    async def close(self) -> None:
        """Close the clients; must not raise on broken connections."""
        ...

    async def send(self, items: list[Outgoing]) -> list[Outgoing]:
        """Send a batch; return the items that failed (raise if the connection is gone)."""
        ...

    def loops(self) -> list[Loop]:
        """Background loops run (supervised) while connected: receiving, housekeeping."""
        ...

    async def ack(self, tokens: list[Any]) -> None:
        """Acknowledge settled inbound records to the server."""
        ...

    async def dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        """Store a rejected record on the dead-letter stream/topic."""
        ...

    async def ping(self) -> None:
        """Check an idle connection (raise when it is gone)."""
        ...

    def transient(self, err: BaseException) -> bool:
        """True for connection errors worth a reconnect."""
        ...

    def persistent(self, channel: str) -> bool:
        """True when ``channel`` travels durably (spilled rather than dropped when full)."""
        ...

    def key(self, msg: Message) -> bytes | None:
        """Record key for per-key ordering (``None``: no key)."""
        ...

    def source_of(self, channel: str) -> str:
        """The stream key / topic ``channel`` travels on (inbound records are checked)."""
        ...

    def scrub(self, text: str) -> str:
        """Remove any secret from an error text before it is stored or logged."""
        ...
