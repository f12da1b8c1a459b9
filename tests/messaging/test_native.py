"""The compiled glue of the publish path (``messaging/_accel.c``, via ``_native``).

It is a required part of the shipped speed (Kafka produce through a bridge at half of raw
confluent-kafka), so its absence from this repository's install is a failure, not a
skip. Every other test here is differential: each input goes through the compiled object
and through the Python code it wraps or twins, and both must give the same result (same
bytes, same buffer contents, same message fields) or the same error.
"""

from __future__ import annotations

import collections
import gc
import itertools
import math
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralcore.core import InputTypeError, SerializationError
from neuralcore.messaging import Message, MessageBus, MsgpackCodec, _native
from neuralcore.messaging import _message as message_module
from neuralcore.messaging._publish import check_priority, copy_headers
from neuralcore.messaging.bridges import _kafka

accel: Any = _native._ACCEL


class Str(str):
    """A str subclass: never a leaf of the compiled checks (exact types only)."""


class Int(int):
    pass


class Sub(Message):
    """A Message subclass: never read by slot offset (exact type only)."""

    __slots__ = ("extra",)


def _maker(counter: Any, origin: str, *, native: bool = True) -> Any:
    make = _native.message_maker(counter, origin, copy_headers, check_priority, native=native)
    make.bind()
    return make


def test_the_glue_is_built_and_serves() -> None:
    assert accel is not None, "neuralcore.messaging._accel is not built (needs a C compiler)"
    assert _native.accelerated()
    codec = MsgpackCodec()
    assert type(codec.encode).__name__ == "Encoder"
    bus = MessageBus()
    assert type(bus._make).__name__ == "Maker"
    assert _native.pack_items is not None


def test_the_python_backend_takes_the_python_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_BACKEND", "python")
    assert not _native.accelerated()
    assert type(MessageBus()._make).__name__ == "_PyMaker"
    assert isinstance(MsgpackCodec().encode, types.MethodType)


# -- the encoder ----------------------------------------------------------------------

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),  # beyond 64 bits: msgspec refuses (OverflowError)
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.sampled_from(["x\udcff", "\ud800", "é", ""]),  # lone surrogates: refused
    st.binary(max_size=4),
    st.builds(Str, st.text(max_size=2)),
    st.builds(Int, st.integers(0, 3)),
)
_flatish = st.one_of(
    _leaf,
    st.lists(_leaf, max_size=3),
    st.tuples(_leaf, _leaf),
    st.frozensets(st.integers(0, 2), max_size=2),
    st.sets(st.integers(0, 2), max_size=2),
)
_key = st.one_of(
    st.text(max_size=3), st.integers(0, 3), st.none(), st.binary(max_size=2),
    st.tuples(st.integers(0, 2)), st.frozensets(st.integers(0, 2), max_size=1),
    st.sampled_from(["k\udcff"]),
)  # fmt: skip
_payload = st.one_of(
    _leaf,
    st.lists(_flatish, max_size=4),
    st.tuples(_flatish, _flatish),
    st.dictionaries(_key, _flatish, max_size=4),
    st.dictionaries(st.text(max_size=2), st.lists(st.lists(_leaf, max_size=2), max_size=2)),
    st.builds(collections.OrderedDict, st.dictionaries(st.text(max_size=2), _leaf, max_size=2)),
)
_headers = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(st.text(max_size=3), _flatish, max_size=3),
    st.dictionaries(st.text(max_size=2), st.dictionaries(st.text(max_size=2), _leaf), max_size=2),
)


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except Exception as err:  # compared by type and message
        return (type(err).__name__, str(err))


def _message(payload: Any, headers: Any, **fields: Any) -> Message:
    msg = Message("c", payload, id="m1", origin="bus-a", timestamp=1.5, **fields)
    msg._headers = headers  # as the bus stores them (a dict or None), unchecked
    return msg


def _same(want: tuple[str, Any], got: tuple[str, Any]) -> bool:
    if want[0] == "ok" and got[0] == "ok":
        return bool(want[1] == got[1])
    return want == got


@settings(max_examples=600, deadline=None)
@given(payload=_payload, headers=_headers, max_size=st.sampled_from([40, 4096]))
def test_the_encoder_gives_the_python_encode_s_bytes_or_error(
    payload: Any, headers: Any, max_size: int
) -> None:
    codec = MsgpackCodec(max_size=max_size)
    msg = _message(payload, headers)
    want = _outcome(lambda: codec._encode(msg))
    got = _outcome(lambda: codec.encode(msg))
    assert _same(want, got), (want, got)


@pytest.mark.parametrize(
    "payload",
    [
        {"a": 1, "b": [1, 2.5, None, True, b"x"]},
        [("x", 1), "y"],
        "plain",
        2**64,  # msgspec: OverflowError -> the codec's refusal
        {"a": "x\udcff"},
        {"a": {1, 2}},
        {(1, 2): 1},
        {"a": [[1]]},  # deeper than flat: walked
        float("nan"),
        Str("s"),
    ],
)
@pytest.mark.parametrize("headers", [None, {}, {"t": "x"}, {"t": ["a", {"b": 1}]}])
def test_the_encoder_on_chosen_shapes(payload: Any, headers: Any) -> None:
    codec = MsgpackCodec()
    msg = _message(payload, headers)
    assert _same(_outcome(lambda: codec._encode(msg)), _outcome(lambda: codec.encode(msg)))


def test_the_encoder_hands_odd_messages_to_python() -> None:
    codec = MsgpackCodec()
    sub = Sub("c", {"a": 1}, id="m1", origin="o")
    assert codec.encode(sub) == codec._encode(sub)
    unset: Message = object.__new__(Message)  # no slot set: Python's AttributeError
    assert _outcome(lambda: codec.encode(unset)) == _outcome(lambda: codec._encode(unset))
    assert _outcome(lambda: codec.encode("not a message")) == _outcome(  # type: ignore[arg-type]
        lambda: codec._encode("not a message")  # type: ignore[arg-type]
    )
    headers_not_dict = _message({"a": 1}, collections.OrderedDict(t="x"))
    assert codec.encode(headers_not_dict) == codec._encode(headers_not_dict)


def test_the_encoder_lets_other_errors_through() -> None:
    import sys

    # a builtin encoder raising what the codec does not turn into a refusal (SystemExit)
    encoder = accel.Encoder(Message, sys.exit, 100, MsgpackCodec()._encode, {})
    with pytest.raises(SystemExit):
        encoder(_message({"a": 1}, None))


def test_the_encoder_must_be_a_builtin() -> None:
    def python(_envelope: Any) -> bytes:
        return b""

    with pytest.raises(TypeError, match="builtin"):
        accel.Encoder(Message, python, 100, MsgpackCodec()._encode, {})


def test_an_encoder_that_keeps_the_envelope_gets_a_whole_tuple() -> None:
    kept: list[Any] = []
    codec = MsgpackCodec()
    encoder = accel.Encoder(Message, kept.append, 100, codec._encode, {})  # returns None
    msg = _message({"a": 1}, None)
    assert encoder(msg) == codec._encode(msg)  # None is no bytes: the Python encode
    assert encoder(msg) == codec._encode(msg)  # and again, with a fresh envelope
    assert [len(t) for t in kept] == [8, 8]
    assert kept[0][5] == {"a": 1}  # its items are still there
    assert kept[0] == kept[1]


@pytest.mark.parametrize("max_size", [1e6, math.inf, 2**63, -1, 0, True])
def test_any_max_size_the_python_codec_takes_works_the_same(max_size: Any) -> None:
    codec = MsgpackCodec(max_size=max_size)
    for msg in (_message("x", None), _message("x" * 100, None)):
        assert _outcome(lambda m=msg: codec.encode(m)) == _outcome(lambda m=msg: codec._encode(m))


def test_a_non_leaf_envelope_field_takes_the_python_path() -> None:
    """msgspec's hook may run code on a field that is not a leaf (here the timestamp):
    if that code slips a frozenset into the payload, the compiled path must not have
    trusted its earlier look at the payload."""
    payload: dict[str, Any] = {"a": 1}

    class Meta(type):
        @property
        def __module__(cls) -> str:  # read by the codec's numpy check inside msgspec
            payload["s"] = frozenset({1, 2})
            return "numpy"

    class ndarray(metaclass=Meta):  # noqa: N801 - looks like numpy's to the duck check
        class dtype:  # noqa: N801
            hasobject = False
            str = "<f8"

        shape = (0,)

        def tobytes(self) -> bytes:
            return b""

    codec = MsgpackCodec()
    msg = _message(payload, None)
    msg.timestamp = ndarray()  # type: ignore[assignment]
    with pytest.raises(SerializationError, match="frozenset"):
        codec.encode(msg)


def test_the_size_limit_is_the_python_one() -> None:
    codec = MsgpackCodec(max_size=64)
    small, big = _message("x", None), _message("x" * 100, None)
    assert codec.encode(small) == codec._encode(small)
    with pytest.raises(SerializationError, match="over max_message_size=64"):
        codec.encode(big)


# -- the message maker -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [None, {}, {"a": 1}, collections.OrderedDict(a=1), types.MappingProxyType({"b": [1]})],
)
def test_the_maker_makes_what_the_python_twin_makes(headers: Any) -> None:
    made = []
    for native in (True, False):
        make = _maker(itertools.count(7), "bus-x", native=native)
        before = time.time()
        msg = make("ch", {"p": 1}, 3, headers, 50)
        assert before <= msg.timestamp <= time.time()
        made.append(msg)
        unset = [s for s in Message.__slots__ if s != "_tapped" and not hasattr(msg, s)]
        assert unset == []
        assert not hasattr(msg, "_tapped")
        if headers:
            assert msg._headers == dict(headers)
            assert msg._headers is None or msg._headers is not headers
            assert type(msg._headers) is dict
    c, p = made
    fields = ("channel", "payload", "priority", "_headers", "_id", "attempt", "origin", "id")
    assert [getattr(c, f) for f in fields] == [getattr(p, f) for f in fields]
    assert c._tracker is None
    assert p._tracker is None
    assert type(c) is Message


@pytest.mark.parametrize("headers", [{1: "x"}, {Str("a"): 1}, [("a", 1)], "h", 5])
def test_the_maker_refuses_bad_headers_as_python_does(headers: Any) -> None:
    got = []
    for native in (True, False):
        make = _maker(itertools.count(1), "b", native=native)
        got.append(_outcome(lambda m=make: m("c", 1, 1, headers, 50)))
    assert got[0] == got[1]
    assert got[0][0] == InputTypeError.__name__


def test_the_maker_numbers_from_the_bus_counter() -> None:
    counter = itertools.count(1)
    make = _maker(counter, "b")
    assert [make("c", i, 1, None, 50)._id for i in range(3)] == [1, 2, 3]
    assert next(counter) == 4
    for native in (True, False):  # as next() on it: StopIteration
        ended = _maker(iter([]), "b", native=native)
        with pytest.raises(StopIteration):
            ended("c", 1, 1, None, 50)


@pytest.mark.parametrize(
    "priority",
    [None, 0, -5, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, True, Int(3), 2.0, "1", [1]],
)
def test_the_maker_resolves_priorities_as_python_does(priority: Any) -> None:
    got = []
    for native in (True, False):
        make = _maker(itertools.count(1), "b", native=native)
        got.append(_outcome(lambda m=make: m("c", 1, priority, None, 7).priority))
    assert got[0] == got[1]
    if priority is None:
        assert got[0] == ("ok", 7)
    assert type(got[0][1]) is (int if got[0][0] == "ok" else str)


async def test_the_maker_serves_only_the_thread_it_was_bound_to() -> None:
    import asyncio

    for native in (True, False):
        counter = itertools.count(1)
        make = _native.message_maker(counter, "b", copy_headers, check_priority, native=native)
        assert make("c", 1, None, None, 5) is None  # not bound yet (a bus not started)
        await asyncio.to_thread(make.bind)
        assert make("c", 1, None, None, 5) is None  # bound to another thread
        make.bind()
        assert make("c", 1, None, None, 5) is not None
        assert await asyncio.to_thread(make, "c", 1, None, None, 5) is None
        assert next(counter) == 2  # a None consumed no id


async def test_a_publish_from_another_thread_takes_the_general_path() -> None:
    import asyncio

    async with MessageBus() as bus:
        bus.create_channel("c")
        got: list[Any] = []
        bus.subscribe("c", got.append)
        sent = await asyncio.to_thread(bus.publish, "c", {"n": 1}, priority=3)
        here = bus.publish("c", {"n": 2})
        assert sent is not None
        assert here is not None
        assert (sent.priority, here.priority) == (3, 50)
        assert here._id == sent._id + 1


def test_a_bus_publish_makes_its_messages_with_the_maker() -> None:
    bus = MessageBus()
    bus.create_channel("c")
    msg = bus.publish("c", {"a": 1}, headers={"t": "x"})
    assert msg is not None
    assert (msg.origin, msg.attempt, msg.headers, msg.priority) == (bus.bus_id, 1, {"t": "x"}, 50)
    assert msg.id == f"{bus.bus_id}-1"


# -- the bridge sink --------------------------------------------------------------------


class _Rig:
    """One sink over its own buffer, with recorded calls: the Python twin, or the compiled
    sink whose ``other`` is that twin (as a bridge's ``other``, the general path, takes
    what the compiled sink leaves to it: a subclass of Message, say)."""

    def __init__(self, native: bool, limit: int = 10) -> None:
        self.codec = MsgpackCodec(max_size=4096)
        self.mem: collections.deque[Any] = collections.deque()
        self.calls: list[str] = []
        self.plain = {"c": (b"c", False), "p": (None, True)}
        ready = lambda: self.calls.append("ready")  # noqa: E731
        args = (self.codec.encode, self.plain, "bus-a", self.mem, limit, ready)
        self.sink = _native.bridge_sink(*args, self.other, native=False)
        if native:
            self.sink = _native.bridge_sink(*args, self.sink, native=True)

    def other(self, msg: Message) -> bool:
        self.calls.append(f"other:{msg.channel}")
        return False


_messages = st.lists(
    st.tuples(
        st.sampled_from(["c", "p", "q", Str("c")]),
        st.sampled_from(["bus-a", "bus-b", Str("bus-a")]),
        st.one_of(_payload, st.just({"ok": 1})),
        st.booleans(),
    ),
    max_size=14,
)


@settings(max_examples=300, deadline=None)
@given(messages=_messages)
def test_the_sink_buffers_what_the_python_twin_buffers(messages: list[Any]) -> None:
    rigs = [_Rig(native=True), _Rig(native=False)]
    for channel, origin, payload, sub in messages:
        results = []
        for rig in rigs:
            cls = Sub if sub else Message
            msg = cls(channel, payload, id="m", origin=origin, timestamp=2.0)
            results.append(_outcome(lambda r=rig, m=msg: r.sink(m)))
        assert _same(results[0], results[1]), results
    assert list(rigs[0].mem) == list(rigs[1].mem)
    assert rigs[0].calls == rigs[1].calls


def test_the_sink_hands_a_full_buffer_to_other() -> None:
    rig = _Rig(native=True, limit=2)
    for i in range(3):
        rig.sink(Message("c", i, id=str(i), origin="bus-a"))
    assert len(rig.mem) == 2
    assert rig.calls == ["ready", "other:c"]
    assert [item[4] for item in rig.mem] == [0, 0]
    assert [item[2:4] for item in rig.mem] == [(b"c", False)] * 2


def test_the_sink_sees_routes_added_later() -> None:
    rig = _Rig(native=True)
    rig.sink(Message("late", 1, id="1", origin="bus-a"))
    rig.plain["late"] = (b"late", False)
    rig.sink(Message("late", 2, id="2", origin="bus-a"))
    assert rig.calls == ["other:late", "ready"]
    assert [item[0] for item in rig.mem] == ["late"]


def test_the_sink_raises_the_codec_s_refusal() -> None:
    rig = _Rig(native=True)
    with pytest.raises(SerializationError, match="holds a set"):
        rig.sink(Message("c", {"a": {1}}, id="1", origin="bus-a"))
    assert not rig.mem


# -- pack framing ------------------------------------------------------------------------


def _records(items: list[Any], limit: int, max_bytes: int, native: bool) -> Any:
    transport: Any = object.__new__(_kafka.KafkaTransport)
    transport.cfg = types.SimpleNamespace(pack=limit, pack_bytes=max_bytes)
    saved = _kafka._pack_items
    _kafka._pack_items = saved if native else None
    try:
        return _outcome(lambda: transport._records(items))
    finally:
        _kafka._pack_items = saved


@settings(max_examples=400, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 50), min_size=1, max_size=40),
    channels=st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=40),
    keys=st.lists(st.sampled_from([b"a", None]), min_size=1, max_size=40),
    limit=st.integers(1, 12),
    max_bytes=st.integers(1, 300),
)
def test_pack_framing_in_c_is_the_python_framing(
    sizes: list[int], channels: list[str], keys: list[Any], limit: int, max_bytes: int
) -> None:
    items = [
        (channels[i % len(channels)], bytes([i % 251]) * size, keys[i % len(keys)], False, 0)
        for i, size in enumerate(sizes)
    ]
    assert _records(items, limit, max_bytes, True) == _records(items, limit, max_bytes, False)


def test_pack_items_leaves_odd_batches_to_python() -> None:
    ok = ("c", b"xy", b"k", False, 0)
    assert accel.pack_items([ok, ok], _kafka.PACK_MAGIC, 8, 1000) == [_kafka.pack([b"xy", b"xy"])]
    for odd in (
        [ok],  # one item: the caller's own case
        [ok, ("c", bytearray(b"xy"), b"k", False, 0)],
        [ok, ("c", b"xy")],
        [ok, ("c", b"xy", b"k")],
        [ok, ("c", b"xy", b"k", False)],
        [ok, (Str("c"), b"xy", b"k", False, 0)],
        [ok, ("c", b"xy", bytearray(b"k"), False, 0)],
        [ok, ["c", b"xy", b"k", False, 0]],
        [ok, ("d", b"xy", b"k", False, 0)],
        [ok, ("c", b"xy", None, False, 0)],
    ):
        assert accel.pack_items(odd, _kafka.PACK_MAGIC, 8, 1000) is None
    assert accel.pack_items([ok, ok], _kafka.PACK_MAGIC, 1, 1000) is None
    for bad in ((), ("x", b"m", 1, 1), ([ok], "magic", 1, 1), ([ok], b"m", "1", 1)):
        with pytest.raises(TypeError):
            accel.pack_items(*bad)


# -- misuse of the private constructors --------------------------------------------------


class NoSlots:
    pass


class ReadOnly:
    __slots__ = ()
    channel = property(lambda self: "c")


@pytest.mark.parametrize("cls", [NoSlots, ReadOnly, int, "Message", Sub])
def test_constructors_refuse_a_class_they_cannot_read(cls: Any) -> None:
    enc = MsgpackCodec()._enc
    deque: collections.deque[Any] = collections.deque()

    def fn(_m: Any) -> bool:
        return False

    with pytest.raises(TypeError):
        accel.Encoder(cls, enc, 10, fn, {})
    with pytest.raises(TypeError):
        accel.Sink(cls, fn, {}, "b", deque, 10, fn, fn)
    with pytest.raises(TypeError):
        accel.Maker(
            cls, itertools.count(), "b", copy_headers, check_priority, message_module, "_now"
        )


_NAMES = ("_id", "channel", "priority", "timestamp", "_headers", "payload", "attempt", "origin")


def test_constructors_refuse_borrowed_shared_or_outside_slots() -> None:
    class A:
        __slots__ = (*_NAMES, "_tracker")

    class Foreign(collections.deque[Any]):
        __slots__ = tuple(f"s{i}" for i in range(12))

    for name in (*_NAMES, "_tracker"):
        setattr(Foreign, name, A.__dict__[name])  # A's descriptors: A's offsets

    class Shared:
        __slots__ = (*_NAMES, "_tracker")

    Shared.channel = Shared.__dict__["payload"]  # type: ignore[attr-defined]

    class Big:
        __slots__ = tuple(f"s{i:04d}" for i in range(400))

    class Outside:
        __slots__ = (*_NAMES, "_tracker")

    Outside._tracker = Big.__dict__["s0399"]  # type: ignore[attr-defined]
    enc = MsgpackCodec()._enc
    for cls in (Foreign, Shared, Outside):
        with pytest.raises(TypeError):
            accel.Maker(
                cls,
                itertools.count(),
                "b",
                copy_headers,
                check_priority,
                vars(message_module),
                "_now",
            )
        if cls is not Outside:
            with pytest.raises(TypeError):
                accel.Encoder(cls, enc, 10, len, {})


@pytest.mark.parametrize(
    "args",
    [
        (Message, None, 10, len, {}),
        (Message, len, -1, len, {}),
        (Message, len, 10, len, []),
        (Message, len, "10", len, {}),
    ],
)
def test_the_encoder_constructor_checks_its_arguments(args: tuple[Any, ...]) -> None:
    with pytest.raises((TypeError, ValueError)):
        accel.Encoder(*args)


def test_the_sink_and_maker_constructors_check_their_arguments() -> None:
    deque: collections.deque[Any] = collections.deque()
    with pytest.raises(TypeError):
        accel.Sink(Message, len, [], "b", deque, 10, len, len)  # plain not a dict
    with pytest.raises(TypeError):
        accel.Sink(Message, len, {}, b"b", deque, 10, len, len)  # local not a str
    with pytest.raises(AttributeError):
        accel.Sink(Message, len, {}, "b", object(), 10, len, len)  # no append
    with pytest.raises(TypeError):
        accel.Sink(Message, len, {}, "b", types.SimpleNamespace(append=len), 10, len, len)
    with pytest.raises(TypeError):
        accel.Maker(
            Message, [1], "b", copy_headers, check_priority, message_module, "_now"
        )  # a list
    with pytest.raises(TypeError):
        accel.Maker(Message, itertools.count(), "b", None, check_priority, message_module, "_now")
    for obj, argc in (
        (accel.Encoder(Message, len, 1, len, {}), 1),
        (accel.Sink(Message, len, {}, "b", deque, 1, len, len), 1),
        (
            accel.Maker(
                Message,
                itertools.count(),
                "b",
                copy_headers,
                check_priority,
                vars(_message),
                "_now",
            ),
            5,
        ),
    ):
        with pytest.raises(TypeError):
            obj(*([1] * (argc + 1)))
        with pytest.raises(TypeError):
            obj(*([1] * argc), extra=1)


def test_the_glue_objects_are_collected_in_cycles() -> None:
    codec = MsgpackCodec()  # codec.encode -> Encoder -> codec._encode -> codec: a cycle
    gone = weakref.ref(codec)
    del codec
    gc.collect()
    assert gone() is None


def test_a_nan_timestamp_or_odd_fields_still_encode_as_python_does() -> None:
    codec = MsgpackCodec()
    msg = _message({"a": 1}, None)
    msg.timestamp = math.nan
    assert codec.encode(msg) == codec._encode(msg)
    msg.priority = Int(3)  # msgspec refuses an int subclass: both refuse it alike
    got = _outcome(lambda: codec.encode(msg))
    assert got == _outcome(lambda: codec._encode(msg))
    assert got[0] == "SerializationError"


def test_the_glue_compiles_without_warnings(tmp_path: Any) -> None:
    from pathlib import Path

    from cglue import assert_compiles_cleanly

    assert_compiles_cleanly(Path(_native.__file__).with_name("_accel.c"), cwd=tmp_path)


def test_info_says_when_the_glue_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from neuralcore.messaging._select import describe_backend

    assert "compiled publish path" in describe_backend("messaging").detail
    monkeypatch.setattr(_native, "_ACCEL", None)  # fault injection: the glue not built
    assert not _native.accelerated()
    assert "without its compiled glue" in describe_backend("messaging").detail
    assert type(MessageBus()._make).__name__ == "_PyMaker"


async def _bridged() -> tuple[MessageBus, Any, Any]:
    """A bus whose channel ``jobs`` is carried out by a MemoryBridge (its only tap)."""
    from neuralcore.messaging.bridges import BridgeConfig, MemoryBridge, MemoryBroker

    broker = MemoryBroker()
    bus = MessageBus()
    bus.create_channel("jobs")
    bridge = MemoryBridge(broker, BridgeConfig(channels=("jobs",), direction="out"))
    await bus.add_bridge(bridge)
    return bus, bridge, broker


# -- the one-call publish -------------------------------------------------------------------


def _direct_rig(limit: int = 10) -> tuple[_Rig, Any, Any]:
    rig = _Rig(native=True, limit=limit)
    make = _maker(itertools.count(1), "bus-a")
    publish = _native.direct_publish(rig.sink)
    assert publish is not None
    return rig, make, publish


def test_the_one_call_publish_buffers_what_make_then_sink_would() -> None:
    rig, make, publish = _direct_rig()
    twin = _Rig(native=False)
    twin_make = _maker(itertools.count(1), "bus-a", native=False)
    for payload in ({"a": 1}, [1, "x"], "s", b"b", None):
        msg = publish(make, "c", payload, None, {"t": "x"}, 9)
        assert msg is not None
        assert (msg.channel, msg.payload, msg.priority, msg.headers) == (
            "c",
            payload,
            9,
            {"t": "x"},
        )
        assert twin.sink(twin_make("c", payload, None, {"t": "x"}, 9)) is True
    strip = [(c, twin.codec.decode(d).payload, k, p, s) for c, d, k, p, s in rig.mem]
    assert strip == [(c, twin.codec.decode(d).payload, k, p, s) for c, d, k, p, s in twin.mem]
    assert rig.calls == ["ready"]


def test_the_one_call_publish_makes_nothing_unless_sure() -> None:
    rig, make, publish = _direct_rig(limit=1)
    counter_before = make("c", 1, None, None, 1)._id
    assert publish(make, "q", 1, None, None, 1) is None  # no plain route
    assert publish(_maker(itertools.count(1), "bus-b"), "c", 1, None, None, 1) is None
    assert publish(lambda *a: None, "c", 1, None, None, 1) is None  # not a Maker
    assert publish(make, "c", 1, None, None, 1) is not None
    assert publish(make, "c", 2, None, None, 1) is None  # the buffer is full
    unbound = _native.message_maker(itertools.count(1), "bus-a", copy_headers, check_priority)
    rig.mem.clear()
    assert publish(unbound, "c", 1, None, None, 1) is None  # not the loop thread
    assert make("c", 1, None, None, 1)._id == counter_before + 2  # one id was used
    assert rig.calls == ["ready"]


def test_the_one_call_publish_raises_the_refusal_and_buffers_nothing() -> None:
    rig, make, publish = _direct_rig()
    with pytest.raises(SerializationError, match="not valid UTF-8"):
        publish(make, "c", {"a": "x\udcff"}, None, None, 1)  # flat, yet refused
    with pytest.raises(SerializationError, match="over max_message_size"):
        publish(make, "c", "x" * 5000, None, None, 1)
    assert not rig.mem
    with pytest.raises(TypeError):
        publish(make, "c")


@pytest.mark.parametrize(
    ("payload", "priority", "headers"),
    [
        ({"a": {1}}, None, None),  # not flat: the tap's general path walks it
        ([[[1]]], None, None),
        (Str("s"), None, None),
        (1, "high", None),  # not an int: check_priority names it on the general path
        (1, True, None),
        (1, None, collections.OrderedDict(a=1)),
        (1, None, {"t": [{"deep": 1}]}),
        (1, None, {1: 2}),  # copy_headers names the key type on the general path
        (1, None, {Str("k"): 2}),
        (1, 2**63, None),  # check_priority names the range on the general path
        (1, None, "headers"),
    ],
)
def test_the_one_call_publish_leaves_what_may_run_code_to_the_general_path(
    payload: Any, priority: Any, headers: Any
) -> None:
    rig, make, publish = _direct_rig()
    assert publish(make, "c", payload, priority, headers, 1) is None
    assert not rig.mem
    assert make("c", 1, None, None, 1)._id == 1  # nothing was made


def test_only_a_compiled_sink_has_a_one_call_publish() -> None:
    assert _native.direct_publish(_Rig(native=False).sink) is None
    assert _native.direct_publish(None) is None

    class Fake:
        def publish(self) -> None:
            raise AssertionError("never called")

    assert _native.direct_publish(Fake()) is None


async def test_a_bridged_publish_takes_the_one_call_path_and_counts() -> None:
    bus, bridge, broker = await _bridged()
    async with bus:
        ch = bus._channels["jobs"]
        assert ch.direct is not None
        sent = [bus.publish("jobs", {"n": i}) for i in range(3)]
        sent.append(await bus.publish_async("jobs", {"n": 3}))
        assert all(m is not None for m in sent)
        assert bus.metrics()["jobs"].published == 4
        assert bus.metrics()["jobs"].queue_depth == 0
        assert await bridge.flush(5)
        got = [bus.codec.decode(data).payload for _, data in broker.streams["jobs"]]
    assert got == [{"n": i} for i in range(4)]


@settings(max_examples=400, deadline=None)
@given(
    payload=_payload,
    headers=_headers,
    priority=st.one_of(st.none(), st.integers(-(2**64), 2**64), st.booleans()),
)
def test_the_one_call_publish_is_make_then_sink(payload: Any, headers: Any, priority: Any) -> None:
    """Whatever it takes, it makes and buffers what the maker and the tap would (same
    message fields, same envelope bytes but for the timestamp); what it leaves (None) the
    general path gets untouched; a refusal is the tap's refusal."""
    rig, make, publish = _direct_rig()
    twin, twin_make = _Rig(native=False), _maker(itertools.count(1), "bus-a", native=False)
    got = _outcome(lambda: publish(make, "c", payload, priority, headers, 7))
    if got == ("ok", None):
        assert not rig.mem
        return
    want_msg = _outcome(lambda: twin_make("c", payload, priority, headers, 7))
    if got[0] != "ok":
        if want_msg[0] == "ok":
            want_msg = _outcome(lambda: twin.sink(want_msg[1]))
        assert got == want_msg
        assert not rig.mem
        return
    msg, twin_msg = got[1], want_msg[1]
    assert twin.sink(twin_msg) is True
    fields = ("_id", "channel", "payload", "priority", "_headers", "attempt", "origin")
    assert repr([getattr(msg, f) for f in fields]) == repr([getattr(twin_msg, f) for f in fields])
    assert msg._headers is None or msg._headers is not headers
    assert len(rig.mem) == len(twin.mem) == 1
    mine, theirs = rig.mem[0], twin.mem[0]
    assert mine[0] == theirs[0]
    assert mine[2:] == theirs[2:]
    decoded, twin_decoded = (rig.codec.decode(mine[1]), twin.codec.decode(theirs[1]))
    assert decoded.timestamp == msg.timestamp
    assert repr([getattr(decoded, f) for f in fields]) == repr(
        [getattr(twin_decoded, f) for f in fields]
    )
    msg.timestamp = twin_msg.timestamp
    assert twin.codec.encode(msg) == theirs[1]  # byte for byte, timestamp aside


def test_a_route_that_is_not_a_pair_goes_to_other_on_both_paths() -> None:
    for native in (True, False):
        rig = _Rig(native=native)
        rig.plain["odd"] = [b"k", False]  # type: ignore[assignment]
        assert rig.sink(Message("odd", 1, id="1", origin="bus-a")) is False
        assert rig.calls == ["other:odd"]
        assert not rig.mem


class Bomb:
    """Garbage in a cycle whose finalizer publishes: run by a collection that an
    allocation inside another publish triggers."""

    bus: Any = None

    def __init__(self, n: int) -> None:
        self.n = n
        self.me = self

    def __del__(self) -> None:
        Bomb.bus.publish("jobs", ("fin", self.n))


async def test_ids_keep_buffer_order_when_a_finalizer_publishes_mid_publish() -> None:
    bus, bridge, broker = await _bridged()
    Bomb.bus = bus
    async with bus:
        gc.collect()
        old = gc.get_threshold()
        gc.set_threshold(1, 1, 1)  # a collection at every tracked allocation
        try:
            for i in range(200):
                Bomb(i)
                bus.publish("jobs", i)
        finally:
            gc.set_threshold(*old)
        gc.collect()
        assert await bridge.flush(5)
        ids = [bus.codec.decode(data)._id for _, data in broker.streams["jobs"]]
    assert len(ids) == 400
    assert ids == sorted(ids)


async def test_the_clock_is_read_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """A patched ``_message._now`` (what freezegun does to every module global holding
    ``time.time``) stamps messages of a bus made before the patch, on every path."""
    bus, _bridge, _broker = await _bridged()
    bus.create_channel("plain")
    async with bus:
        assert bus._channels["jobs"].direct is not None
        monkeypatch.setattr(message_module, "_now", lambda: 1577836800.0)
        made = [
            bus.publish("plain", 1),
            await bus.publish_async("plain", 2),
            bus.publish("jobs", 3),  # the one-call path leaves a Python clock to the maker
            *bus.publish_batch("jobs", [4]),
        ]
        assert [m.timestamp for m in made if m is not None] == [1577836800.0] * 4
        monkeypatch.undo()
        assert abs(bus.publish("jobs", 5).timestamp - time.time()) < 60  # type: ignore[union-attr]


def test_a_codec_subclass_keeps_its_own_encode() -> None:
    class Counting(MsgpackCodec):
        calls = 0

        def encode(self, msg: Message) -> bytes:
            Counting.calls += 1
            return super().encode(msg)

    codec = Counting()
    msg = _message({"a": 1}, None)
    assert codec.encode(msg) == MsgpackCodec().encode(msg)
    assert Counting.calls == 1
    assert MsgpackCodec.encode(codec, msg) == codec._encode(msg)


async def test_the_one_call_publish_leaves_a_clock_it_cannot_read_to_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus, _bridge, _broker = await _bridged()
    async with bus:
        first = bus.publish("jobs", 1)
        monkeypatch.delattr(message_module, "_now")
        with pytest.raises(AttributeError, match="_now"):
            bus.publish("jobs", 2)
        monkeypatch.undo()
        after = bus.publish("jobs", 3)
        assert first is not None
        assert after is not None
        assert after._id == first._id + 2  # the general path took an id, as the twin does


def test_a_finalizer_that_empties_the_headers_while_copied_gives_none() -> None:
    headers = {"a": 1}

    class Emptier:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            headers.clear()

    for native in (True, False):
        headers.update(a=1)
        make = _maker(itertools.count(1), "b", native=native)
        gc.collect()
        old = gc.get_threshold()
        Emptier()
        gc.set_threshold(1, 1, 1)
        try:
            msg = make("c", 1, None, headers, 1)
        finally:
            gc.set_threshold(*old)
        assert msg._headers in (None, {"a": 1})  # emptied before or after the copy


async def test_a_builtin_clock_that_runs_finalizers_cannot_slip_a_set_past_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payload: dict[str, Any] = {"a": 1}

    class Bomb:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            payload["s"] = {1, 2}

    bus, bridge, broker = await _bridged()
    async with bus:
        bus.publish("jobs", 0)
        monkeypatch.setattr(message_module, "_now", gc.collect)  # a builtin running code
        Bomb()
        with pytest.raises(SerializationError, match="holds a set"):
            bus.publish("jobs", payload)
        monkeypatch.undo()
        assert await bridge.flush(5)
        assert [bus.codec.decode(d).payload for _, d in broker.streams["jobs"]] == [0]


@pytest.mark.parametrize("change", ["changed", "removed"])
def test_the_route_is_read_after_the_allocations(change: str) -> None:
    for native in (True, False):
        rig = _Rig(native=native)
        make = _maker(itertools.count(1), "bus-a", native=native)
        publish = _native.direct_publish(rig.sink) if native else None

        class Bomb:
            def __init__(self, plain: dict[str, Any]) -> None:
                self.me, self.plain = self, plain

            def __del__(self) -> None:
                if change == "changed":
                    self.plain["c"] = (b"new", False)
                else:
                    self.plain.pop("c", None)

        gc.collect()
        Bomb(rig.plain)
        old = gc.get_threshold()
        gc.set_threshold(1, 1, 1)
        try:
            if publish is not None:
                got = publish(make, "c", 1, None, None, 0)
                if got is None:  # not sure: the general path, as the bus would
                    rig.sink(make("c", 1, None, None, 0))
            else:
                rig.sink(make("c", 1, None, None, 0))
        finally:
            gc.set_threshold(*old)
        gc.collect()
        buffered = [(i[2], i[3]) for i in rig.mem]
        assert buffered == ([(b"new", False)] if change == "changed" else [])
