"""The compiled glue of the publish path (``_accel.c``), or its Python twins.

The optional C extension ``neuralcore.messaging._accel`` is built by setup.py when a C
compiler is present. It does no encoding (msgspec writes every byte) and takes only the
common case of three steps; every other input goes, unchanged, to the Python code it
wraps, so both give the same messages, bytes and errors:

* :func:`message_maker`: the new message of ``MessageBus.publish`` (headers copied, id,
  timestamp);
* :func:`fast_encoder`: ``MsgpackCodec.encode`` for a message with flat payload and
  headers (the codec's own rule for what needs no walk);
* :func:`bridge_sink`: an outbound bridge's tap (encode and buffer a message of this
  bus on a carried channel);
* :func:`direct_publish`: a compiled tap's one-call publish (make a message and buffer
  it, when the tap is sure to take it);
* :data:`pack_items`: the Kafka pack framing of a batch of one channel and key (the
  common batch), byte for byte what ``bridges._kafka`` makes of it in Python.

Without the extension, or with ``NEURALCORE_BACKEND=python``, the Python twins below
serve: a bridged publish then costs ~1 us more (measured 2026-11-29; ``neuralcore bench
bridges``), and ``neuralcore info`` says so. This repository's tests fail when it is not
built.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

from neuralcore.core import optional, resolve_backend
from neuralcore.messaging import _message
from neuralcore.messaging._message import Message

__all__ = (
    "DirectPublish",
    "accelerated",
    "bridge_sink",
    "direct_publish",
    "fast_encoder",
    "message_maker",
    "pack_items",
)


class Maker(Protocol):
    """``make(channel, payload, priority, headers, default)``: a new message of this bus,
    or None on any thread but the one :meth:`bind` was called on (and before that)."""

    def __call__(
        self, channel: str, payload: Any, priority: Any, headers: Any, default: int, /
    ) -> Message | None: ...

    def bind(self) -> None:
        """Serve the calling thread (the bus's loop thread) from now on."""
        ...


_object_new = object.__new__
_PMIN, _PMAX = -(2**63), 2**63 - 1  # what the compiled Maker takes as is (int64)


_ACCEL: Any = optional("neuralcore.messaging._accel")


pack_items: Callable[[list[Any], bytes, int, int], list[bytes] | None] | None = (
    None if _ACCEL is None or resolve_backend() == "python" else _ACCEL.pack_items
)
"""``pack_items(items, magic, limit, max_bytes)``: the Kafka record values of two or more
outgoing items that share one channel and key (chunks of up to ``limit`` envelopes within
``max_bytes``, each packed, one alone as itself), or None when they do not share them
(the Python framing decides then); None without the glue or with
``NEURALCORE_BACKEND=python`` at import."""


def accelerated() -> bool:
    """Whether the publish path's common case runs through the compiled glue: it is built
    and ``NEURALCORE_BACKEND`` is not ``python`` (read when a bus, codec or bridge is made).

    Examples
    --------
    >>> accelerated() in (True, False)
    True
    """
    return _ACCEL is not None and resolve_backend() == "native"


def message_maker(
    counter: Any,
    origin: str,
    copy: Callable[[Any], dict[str, Any] | None],
    check: Callable[[Any], int],
    *,
    native: bool = True,
) -> Maker:
    """The bus's :class:`Maker`: messages numbered by ``counter`` and stamped with
    ``origin``; the priority ``default`` for None, an exact int in the signed 64-bit range
    as it is, else ``check(priority)`` (which refuses it); headers copied by ``copy``
    (``None`` stays ``None``); timestamp ``_message._now()`` (``time.time``, looked up per
    message), attempt 1 and no tracker. The message is allocated before its id is taken
    (a finalizer that publishes during the allocation gets the earlier id).

    ``native=False`` gives the Python twin (tests compare the two).
    """
    if native and accelerated():
        # the clock is read per message from _message's namespace, as a module global is
        # (freezegun and monkeypatches of _message._now reach it)
        return cast(Maker, _ACCEL.Maker(Message, counter, origin, copy, check, _message, "_now"))
    return _PyMaker(counter, origin, copy, check)


class _PyMaker:
    """The Python twin of the compiled Maker."""

    def __init__(
        self,
        counter: Any,
        origin: str,
        copy: Callable[[Any], dict[str, Any] | None],
        check: Callable[[Any], int],
    ) -> None:
        self._count, self._origin, self._copy, self._check = counter.__next__, origin, copy, check
        self._owner: int | None = None

    def bind(self) -> None:
        self._owner = threading.get_ident()

    def __call__(
        self, channel: str, payload: Any, priority: Any, headers: Any, default: int, /
    ) -> Message | None:
        if threading.get_ident() != self._owner:
            return None
        if priority is None:
            priority = default
        elif type(priority) is not int or not _PMIN <= priority <= _PMAX:
            priority = self._check(priority)
        headers = None if headers is None else self._copy(headers)
        msg: Message = _object_new(Message)  # before the id, as the compiled Maker
        msg.channel = channel
        msg.payload = payload
        msg.priority = priority
        msg._headers = headers
        msg._id = self._count()
        msg.timestamp = _message._now()
        msg.attempt = 1
        msg.origin = self._origin
        msg._tracker = None
        return msg


DirectPublish = Callable[[Maker, str, Any, Any, Any, int], Message | None]
"""``publish(make, channel, payload, priority, headers, default)``: see
:func:`direct_publish`."""


def direct_publish(sink: Any) -> DirectPublish | None:
    """The one-call publish of a compiled bridge tap (``sink``), or None for any other.

    ``publish(make, channel, payload, priority, headers, default)`` makes the message with
    ``make`` (the bus's compiled :class:`Maker`) and buffers it as ``sink(msg)`` would,
    when the tap is sure to take it (the channel has a plain route, the buffer has room,
    ``make`` stamps the tap's bus id); it returns that message. Otherwise, and off the
    loop thread, it makes nothing and returns None (the caller's general path decides).
    An encoding refusal raises ``SerializationError``, as the tap does.
    """
    if _ACCEL is not None and type(sink) is _ACCEL.Sink:
        return cast(DirectPublish, sink.publish)
    return None


def fast_encoder(
    encode: Callable[[Any], bytes],
    max_size: int,
    fallback: Callable[[Message], bytes],
    empty: dict[str, Any],
) -> Callable[[Message], bytes]:
    """``fallback`` (a codec's Python encode) with its common case in C: ``encode`` (a
    msgspec encoder) on the envelope tuple of a message whose payload and headers are
    flat, checked against ``max_size``; ``empty`` stands for absent headers. Without the
    glue, ``fallback`` itself."""
    if not accelerated() or type(max_size) is not int or not 0 <= max_size <= sys.maxsize:
        return fallback  # (an odd max_size: the Python encode compares with it as given)
    return cast(
        "Callable[[Message], bytes]", _ACCEL.Encoder(Message, encode, max_size, fallback, empty)
    )


def bridge_sink(
    encode: Callable[[Message], bytes],
    plain: dict[str, tuple[bytes | None, bool]],
    local: str,
    mem: deque[Any],
    limit: int,
    ready: Callable[[], None],
    other: Callable[[Message], bool],
    *,
    native: bool = True,
) -> Callable[[Message], bool]:
    """A bridge's tap: a message of a channel in ``plain`` (channel -> (key, persistent))
    whose origin is ``local``, while ``mem`` holds fewer than ``limit`` items, is encoded
    (``SerializationError`` propagates: the bus refuses that publish) and appended as
    ``(channel, data, key, persistent, 0)``; ``ready()`` runs when that made ``mem``
    non-empty; True. Every other message is ``other(msg)``.

    ``native=False`` gives the Python twin (tests compare the two).
    """
    if native and accelerated():
        return cast(
            "Callable[[Message], bool]",
            _ACCEL.Sink(Message, encode, plain, local, mem, limit, ready, other),
        )
    plain_get, append = plain.get, mem.append

    def sink(msg: Message) -> bool:
        channel = msg.channel
        route = plain_get(channel)
        if type(route) is not tuple or len(route) != 2 or msg.origin != local or len(mem) >= limit:
            return other(msg)
        data = encode(msg)  # SerializationError: the bus refuses the publish with it
        append((channel, data, route[0], route[1], 0))
        if len(mem) == 1:
            ready()
        return True

    return sink
