"""Encoding of messages at process boundaries (persistence, bridges). Never pickle.

A message is encoded as the array ``[id, channel, priority, timestamp, headers, payload,
attempt, origin]``. ``id`` is a string, or, for a message the bus numbered itself, that
number (an int): its id then reads ``f"{origin}-{id:x}"`` on both sides (what
``Message.id`` builds), so the sender never formats ids it does not need.

Payloads may be JSON types, bytes, numpy arrays (numeric dtypes), dataclasses and msgspec
Structs; the last two decode as plain dicts. What would not come back as it went in is
refused with ``SerializationError``: sets (they would decode as lists), strings with lone
surrogates (not UTF-8, named by where they are), nesting deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import reprlib
from collections.abc import Iterable
from typing import Any, Protocol

from neuralcore.core import InputTypeError, SerializationError
from neuralcore.messaging._message import Message
from neuralcore.messaging._native import fast_encoder

__all__ = ("Codec", "JsonCodec", "MsgpackCodec")

_NDARRAY_EXT = 1
_object_new = object.__new__
MAX_DEPTH = 200
"""Deepest nesting of lists/dicts a payload or header value may have."""
_LEAVES = frozenset({str, int, float, bool, type(None), bytes})
_EMPTY: dict[str, Any] = {}  # encoded for a message without headers (never mutated)
_SHORT = reprlib.Repr()  # keys in error messages, shortened
_SHORT.maxstring = _SHORT.maxother = 40


def check_tree(obj: Any, where: str) -> None:
    """Refuse what a codec would not round-trip faithfully (sets) or cannot encode at all
    without a ``RecursionError`` (nesting deeper than :data:`MAX_DEPTH`)."""
    if type(obj) in _LEAVES or _flat(obj):
        return
    _walk(obj, where)


def _flat(obj: Any) -> bool:
    """True for the common payload: a dict with leaf keys, a list or a tuple, whose items
    are leaves or flat lists/tuples of leaves (exact types only: a subclass is walked).
    Such a value holds no set and is shallow, so what the encoder made of it can be
    trusted without a walk.

    A plain loop: ``frozenset.issuperset(map(type, items))`` and ``all(map(...))`` were
    measured slower for payloads of a few items (the first builds a set per call).
    """
    kind = type(obj)
    leaves = _LEAVES
    if kind is dict:
        for key in obj:
            if type(key) not in leaves:
                return False  # a tuple or frozenset key: walked
        items: Any = obj.values()
    elif kind is list or kind is tuple:
        items = obj
    else:
        return False
    for item in items:
        kind = type(item)
        if kind in leaves:
            continue
        if kind is not list and kind is not tuple:
            return False
        for sub in item:
            if type(sub) not in leaves:
                return False
    return True


def _walk(obj: Any, where: str) -> None:
    """Every container in ``obj``, dict keys and subclasses of dict, list and tuple
    included: ``SerializationError`` for a set (named by where it is) or too deep a
    nesting."""
    stack = [(obj, 0)]
    leaves = _LEAVES
    while stack:
        node, depth = stack.pop()
        kind = type(node)  # exact types first: isinstance only for the rare subclass
        if kind is dict or (kind is not list and kind is not tuple and isinstance(node, dict)):
            for key in node:  # keys too: a frozenset key would come back a tuple
                if type(key) is not str and type(key) not in leaves:
                    stack.append((key, depth + 1))
            items: Any = node.values()
        elif kind is list or kind is tuple or isinstance(node, list | tuple):
            items = node
        elif isinstance(node, set | frozenset):
            raise SerializationError(
                f"{where} holds a {kind.__name__}{_place(obj, node)}, which would come "
                "back as a list; convert it to a list first"
            )
        else:
            continue
        if depth >= MAX_DEPTH:
            raise SerializationError(f"{where} is nested deeper than {MAX_DEPTH} levels")
        for item in items:
            if type(item) not in leaves:
                stack.append((item, depth + 1))


def _place(root: Any, target: Any) -> str:
    """Where ``target`` sits in ``root``, as `` at ['a'][0]`` or `` at key (1, ...)``
    (found again only once a set was found: the walk itself keeps no paths)."""
    short = _SHORT.repr
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if node is target:
            return f" at {path}" if path else ""
        if depth > MAX_DEPTH:
            continue
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, f"{path} key {short(key)}" if path else f"key {short(key)}",
                              depth + 1))  # fmt: skip
                stack.append((value, f"{path}[{short(key)}]", depth + 1))
        elif isinstance(node, list | tuple):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))
    return ""


def _diagnose(msg: Message) -> None:
    """Walk the payload and headers of ``msg``: ``SerializationError`` naming a set or a
    nesting deeper than :data:`MAX_DEPTH`, if there is one."""
    check_tree(msg.payload, f"payload of message on {msg.channel!r}")
    if msg._headers:
        check_tree(msg._headers, f"headers of message on {msg.channel!r}")


def _bad_text(obj: Any, where: str) -> str | None:
    """Where in ``obj`` a string (or dict key) is not valid UTF-8 (a lone surrogate), as
    ``where['key'][1]``; None when there is none. Walked only after an encode failed."""
    stack: list[tuple[Any, str]] = [(obj, where)]
    while stack:
        node, path = stack.pop()
        kind = type(node)
        if kind is str:
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return path
        elif kind is dict:
            for key, value in node.items():
                if type(key) is str and _bad_text(key, "") is not None:
                    return f"{path} key {key!r}"
                stack.append((value, f"{path}[{key!r}]"))
        elif kind is list or kind is tuple:
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node))
    return None


def _refusal(msg: Message, err: BaseException) -> SerializationError:
    """The error for a message the encoder refused: a set or too deep a nesting is
    raised by the walk; a string that is not UTF-8 is named by where it is."""
    _diagnose(msg)
    text = f"message on {msg.channel!r} cannot be encoded: {err}"
    if isinstance(err, UnicodeError):
        found = _bad_text(msg.payload, "payload")
        if found is None and msg._headers:
            found = _bad_text(msg._headers, "headers")
        if found is None and type(msg.channel) is str:
            found = _bad_text(msg.channel, "channel")
        if found is not None:
            text = (
                f"message on {msg.channel!r} cannot be encoded: {found} is not valid UTF-8 "
                f"(a lone surrogate; {err})"
            )
    return SerializationError(text)


class Codec(Protocol):
    """Turns a :class:`Message` into bytes and back (bridges use ``bus.codec``)."""

    name: str

    def encode(self, msg: Message) -> bytes:
        """Encode one message; ``SerializationError`` names what cannot be encoded."""
        ...

    def encode_many(self, msgs: Iterable[Message]) -> list[bytes]:
        """Encode several messages, in order: the same bytes and checks as :meth:`encode`
        per message, less Python per message (bridges encode a batch at a time)."""
        ...

    def decode(self, data: bytes) -> Message:
        """Decode one message; ``SerializationError`` on bad or oversized data."""
        ...


def _envelope(msg: Message) -> tuple[Any, ...]:
    return (
        msg.id,
        msg.channel,
        msg.priority,
        msg.timestamp,
        msg._headers or {},
        msg.payload,
        msg.attempt,
        msg.origin,
    )


def _batch(msgs: Iterable[Message]) -> list[Message]:
    """``msgs`` as a list of Messages, or InputTypeError naming the first item that is not."""
    if isinstance(msgs, str | bytes) or not isinstance(msgs, Iterable):
        raise InputTypeError(f"msgs must be an iterable of Message, got {type(msgs).__name__}")
    batch = list(msgs)
    for i, msg in enumerate(batch):
        if not isinstance(msg, Message):
            raise InputTypeError(f"msgs[{i}] must be a Message, got {type(msg).__name__}")
    return batch


def _message(fields: Any) -> Message:
    """Rebuild a Message from a decoded envelope without argument parsing (hot path)."""
    if type(fields) is not list or len(fields) != 8:
        raise SerializationError(f"not a neuralcore message envelope: {str(fields)[:80]!r}")
    m: Message = _object_new(Message)
    m._id, m.channel, m.priority, m.timestamp, headers, m.payload, m.attempt, m.origin = fields
    kind = type(m._id)
    if (
        type(m.channel) is not str
        or type(m.priority) is not int
        or type(headers) is not dict
        or (kind is not str and (kind is not int or type(m.origin) is not str))
    ):
        raise SerializationError(f"malformed message envelope: {str(fields)[:80]!r}")
    m._headers = headers or None
    m._tracker = None
    return m


def _array_parts(obj: Any) -> tuple[str, list[int], bytes] | None:
    if type(obj).__module__ != "numpy" or type(obj).__name__ != "ndarray":
        return None
    if obj.dtype.hasobject:
        raise SerializationError(f"numpy array of dtype {obj.dtype} cannot be encoded")
    return obj.dtype.str, list(obj.shape), obj.tobytes()


def _array_from(dtype: str, shape: list[int], raw: bytes) -> Any:
    import numpy as np

    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()


def _check_size(data: bytes, limit: int, what: str) -> None:
    if len(data) > limit:
        raise SerializationError(f"{what} is {len(data)} bytes, over max_message_size={limit}")


class MsgpackCodec:
    """MessagePack through msgspec (the default when msgspec is installed).

    Examples
    --------
    >>> codec = MsgpackCodec()
    >>> codec.decode(codec.encode(Message("a", {"x": b"1"}, id="m1"))).payload
    {'x': b'1'}
    """

    name = "msgpack"
    max_depth = MAX_DEPTH
    """Deepest nesting of containers a payload or header may have."""

    def __init__(self, *, max_size: int = 16 * 1024 * 1024) -> None:
        import msgspec

        self._max = max_size
        self._ext = msgspec.msgpack.Ext
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)
        self._enc = self._encoder.encode
        self._inner = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(ext_hook=self._ext_hook)
        self._errors = (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError)
        # The common case in C when the glue is built (_native.fast_encoder): the same
        # msgspec call on the same envelope tuple for a message with flat payload and
        # headers; every other input, an oversized result and an encoder error go to the
        # method below, which refuses them naming the cause. Same bytes, same errors.
        if type(self).encode is MsgpackCodec.encode:  # a subclass's own encode is kept
            # per instance (the class keeps its method: super().encode() still works)
            vars(self)["encode"] = fast_encoder(self._enc, max_size, self._encode, _EMPTY)

    def _enc_hook(self, obj: Any) -> Any:
        parts = _array_parts(obj)
        if parts is None:
            raise NotImplementedError(f"cannot encode {type(obj).__qualname__}")
        return self._ext(_NDARRAY_EXT, self._inner.encode(parts))

    def _ext_hook(self, code: int, data: memoryview) -> Any:
        if code != _NDARRAY_EXT:
            raise SerializationError(f"unknown MessagePack extension type {code}")
        import msgspec

        dtype, shape, raw = msgspec.msgpack.decode(data)
        return _array_from(dtype, shape, raw)

    def encode(self, msg: Message) -> bytes:
        """Encode one message to MessagePack bytes (:meth:`_encode`; an instance runs its
        common case through the compiled glue when it is built, with the same bytes and
        errors)."""
        return self._encode(msg)

    def _encode(self, msg: Message) -> bytes:
        """Encode one message to MessagePack bytes.

        msgspec encodes first. A failure (lone surrogate, unsupported type, recursion) is
        diagnosed by :func:`check_tree` so that the error names the cause. A result made
        from anything but flat leaves (where a set, which msgspec would quietly write as
        an array, or too deep a nesting may hide) is trusted only after the walk.
        """
        payload, headers = msg.payload, msg._headers
        try:
            data = self._enc(
                (msg._id, msg.channel, msg.priority, msg.timestamp, headers or _EMPTY, payload,
                 msg.attempt, msg.origin)
            )  # fmt: skip
        except (TypeError, NotImplementedError, OverflowError, ValueError, RecursionError) as err:
            raise _refusal(msg, err) from err
        if not (type(payload) in _LEAVES or _flat(payload)) or (headers and not _flat(headers)):
            _diagnose(msg)  # not flat (keys too: a frozenset key would come back a tuple)
        if len(data) > self._max:
            _check_size(data, self._max, f"message on {msg.channel!r}")
        return data

    def encode_many(self, msgs: Iterable[Message]) -> list[bytes]:
        """Encode several messages, in order: :meth:`encode` on each (compiled when the
        glue is built)."""
        encode = self.encode
        return [encode(msg) for msg in _batch(msgs)]

    def decode(self, data: bytes) -> Message:
        """Decode MessagePack bytes made by :meth:`encode`."""
        if len(data) > self._max:
            _check_size(data, self._max, "encoded message")
        try:
            return _message(self._decoder.decode(data))
        except self._errors as err:
            raise SerializationError(f"cannot decode message: {err}") from err


class JsonCodec:
    """UTF-8 JSON through the stdlib (the fallback without msgspec, or ``codec="json"``).

    bytes and numpy arrays travel as tagged objects (base64).

    Examples
    --------
    >>> codec = JsonCodec()
    >>> codec.decode(codec.encode(Message("a", [1, b"2"], id="m1"))).payload
    [1, b'2']
    """

    name = "json"
    max_depth = MAX_DEPTH
    """Deepest nesting of containers a payload or header may have."""

    def __init__(self, *, max_size: int = 16 * 1024 * 1024) -> None:
        self._max = max_size
        self._dumps = json.JSONEncoder(
            default=_json_default, separators=(",", ":"), ensure_ascii=False
        ).encode
        self._loads = json.JSONDecoder(object_hook=_json_object).decode

    def encode(self, msg: Message) -> bytes:
        """Encode one message to JSON bytes."""
        payload = msg.payload
        if not (type(payload) in _LEAVES or _flat(payload)) or (
            msg._headers and not _flat(msg._headers)
        ):
            _diagnose(msg)
        try:
            data = self._dumps(_envelope(msg)).encode()
        except (TypeError, ValueError, RecursionError) as err:
            raise _refusal(msg, err) from err
        _check_size(data, self._max, f"message on {msg.channel!r}")
        return data

    def encode_many(self, msgs: Iterable[Message]) -> list[bytes]:
        """Encode several messages, in order (:meth:`encode` each)."""
        encode = self.encode
        return [encode(msg) for msg in _batch(msgs)]

    def decode(self, data: bytes) -> Message:
        """Decode JSON bytes made by :meth:`encode`."""
        _check_size(data, self._max, "encoded message")
        try:
            return _message(self._loads(bytes(data).decode()))
        except (ValueError, TypeError, KeyError) as err:
            if isinstance(err, SerializationError):
                raise
            raise SerializationError(f"cannot decode message: {err}") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"__nc_bytes__": base64.b64encode(bytes(obj)).decode()}
    parts = _array_parts(obj)
    if parts is not None:
        dtype, shape, raw = parts
        return {"__nc_ndarray__": [dtype, shape, base64.b64encode(raw).decode()]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    fields = getattr(type(obj), "__struct_fields__", None)  # msgspec Struct
    if fields is not None:
        return {name: getattr(obj, name) for name in fields}
    raise TypeError(f"cannot encode {type(obj).__qualname__}")


def _json_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "__nc_bytes__" in obj:
            return base64.b64decode(obj["__nc_bytes__"])
        if "__nc_ndarray__" in obj:
            dtype, shape, raw = obj["__nc_ndarray__"]
            return _array_from(dtype, shape, base64.b64decode(raw))
    return obj
