"""In-process priority message bus with durable SQLite persistence.

>>> from neuralcore.messaging import MessageBus, Priority
>>> bus = MessageBus()
>>> _ = bus.create_channel("rag.query")
>>> bus.publish("rag.query", {"q": "hello"}, priority=Priority.HIGH).priority
25

Semantics in brief:

* Priorities: lower is more urgent (:class:`Priority`), FIFO within one priority.
* In-process delivery passes the publisher's object; nothing is serialised.
* A handler that returns acknowledges; one that raises is retried with exponential backoff
  and dead-lettered after ``max_attempts`` (error recorded, optional dead-letter channel).
* Persistent channels: ``publish`` returns once the message is committed to SQLite (WAL,
  group commit). ``durability="process"`` (``synchronous=NORMAL``) survives a crash or
  SIGKILL of the process; ``durability="power"`` (``synchronous=FULL``) also survives power
  loss or an OS crash. Unacknowledged messages are replayed in order on restart
  (at-least-once: a message in flight at a crash is delivered again, with ``attempt`` > 1).
  Delivery attempts are stored with the message, so one whose handler kills the process is
  dead-lettered once ``max_attempts`` are used; each row has a checksum, and a row that
  cannot be read is moved to the dead letters while the rest replays.
* Authorization: with ``BusConfig.api_keys`` set, every way in is checked (publish,
  subscribe, patterns as channels appear, taps, dead letters; deny by default); request
  correlation ids are unguessable and only the request itself can be answered.
* Resources: ``close()`` (or ``with MessageBus(...)``, or garbage collection) releases the
  file, its lock and the writer thread; ``health()`` reports failed background tasks.
* In-memory channels lose what is queued when the process dies or ``stop()`` times out.
* Bridges (:mod:`neuralcore.messaging.bridges`) tap channels *durably*
  (``bus.tap(..., durable=True, name=...)``): on persistent channels each message stays
  recorded in the same SQLite commit until the bridge acknowledges it (``Tap.ack``) after
  the server confirmed it, and is forwarded again after a crash. Channels a bridge brings
  in that do not exist yet are made from ``BusConfig.default_channel``.

Importing this package loads neither msgspec nor sqlite3; the codec is chosen on first use
(``neuralcore.backend_info()["messaging"]``).
"""

from neuralcore.messaging._bridge import Bridge, BridgeDirection, Tap
from neuralcore.messaging._bus import BusHealth, DeadLetter, MessageBus
from neuralcore.messaging._codec import Codec, JsonCodec, MsgpackCodec
from neuralcore.messaging._config import BusConfig, ChannelConfig
from neuralcore.messaging._message import Message
from neuralcore.messaging._metrics import ChannelMetrics, HistogramSnapshot
from neuralcore.messaging._routing import Selector
from neuralcore.messaging._subscription import Subscription
from neuralcore.messaging._types import Durability, Outcome, Overflow, Priority

__all__ = (
    "Bridge",
    "BridgeDirection",
    "BusConfig",
    "BusHealth",
    "ChannelConfig",
    "ChannelMetrics",
    "Codec",
    "DeadLetter",
    "Durability",
    "HistogramSnapshot",
    "JsonCodec",
    "Message",
    "MessageBus",
    "MsgpackCodec",
    "Outcome",
    "Overflow",
    "Priority",
    "Selector",
    "Subscription",
    "Tap",
)
