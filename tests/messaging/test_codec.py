"""Both boundary codecs share one contract: round trips, limits, clear errors, no pickle."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralcore.core import InputTypeError, SerializationError
from neuralcore.messaging import Codec, JsonCodec, Message, MsgpackCodec

MAX_DEPTH = JsonCodec.max_depth
assert MsgpackCodec.max_depth == MAX_DEPTH


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Doc(msgspec.Struct):
    id: str
    score: float


@pytest.fixture(params=["msgpack", "json"])
def codec(request: pytest.FixtureRequest) -> Codec:
    cls = MsgpackCodec if request.param == "msgpack" else JsonCodec
    return cls(max_size=4096)


def _msg(payload: Any) -> Message:
    return Message(
        "rag.query", payload, priority=25, headers={"trace_id": "t", "n": 3}, id="id-1",
        timestamp=1700000000.25, attempt=2, origin="bus-a",
    )  # fmt: skip


@pytest.mark.parametrize(
    "payload",
    [
        None,
        True,
        3,
        -2.5,
        "text",
        [1, "a", None],
        {"nested": {"list": [1.5, {"k": "v"}]}},
        b"\x00\x01",
    ],
)
def test_round_trip_keeps_the_envelope(codec: Codec, payload: Any) -> None:
    back = codec.decode(codec.encode(_msg(payload)))
    assert back.payload == payload
    assert type(back.payload) is type(payload)
    assert (back.id, back.channel, back.priority, back.timestamp) == (
        "id-1",
        "rag.query",
        25,
        1700000000.25,
    )
    assert (back.headers, back.attempt, back.origin) == ({"trace_id": "t", "n": 3}, 2, "bus-a")


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8", "float16"])
def test_numpy_arrays_round_trip(codec: Codec, dtype: str) -> None:
    arr = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    back = codec.decode(codec.encode(_msg({"v": arr}))).payload["v"]
    assert back.dtype == arr.dtype
    assert back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] = 1  # a writable copy, not a view of the message bytes


def test_dataclasses_and_structs_decode_as_dicts(codec: Codec) -> None:
    back = codec.decode(codec.encode(_msg([Point(1, 2.5), Doc("d", 0.5)]))).payload
    assert back == [{"x": 1, "y": 2.5}, {"id": "d", "score": 0.5}]


def test_unencodable_payload_names_the_channel(codec: Codec) -> None:
    with pytest.raises(SerializationError, match=r"'rag\.query' cannot be encoded"):
        codec.encode(_msg({"f": object()}))
    with pytest.raises(SerializationError, match="dtype object"):
        codec.encode(_msg(np.array([None, 1], dtype=object)))


def test_size_limit_on_both_sides(codec: Codec) -> None:
    with pytest.raises(SerializationError, match="over max_message_size=4096"):
        codec.encode(_msg("x" * 5000))
    with pytest.raises(SerializationError, match="over max_message_size=4096"):
        codec.decode(b"\x00" * 5000)


@pytest.mark.parametrize("data", [b"", b"\xc1garbage", b"[1, 2]", b'{"a": 1}', b"\x92\x01\x02"])
def test_garbage_is_refused(codec: Codec, data: bytes) -> None:
    with pytest.raises(SerializationError):
        codec.decode(data)


def test_malformed_envelope_fields(codec: Codec) -> None:
    good = codec.encode(_msg(1))
    fields = msgspec.msgpack.decode(good) if codec.name == "msgpack" else msgspec.json.decode(good)
    fields[2] = "urgent"  # priority must be an int
    bad = msgspec.msgpack.encode(fields) if codec.name == "msgpack" else msgspec.json.encode(fields)
    with pytest.raises(SerializationError, match="malformed"):
        codec.decode(bad)


def test_unknown_msgpack_extension_is_refused() -> None:
    codec = MsgpackCodec()
    data = msgspec.msgpack.encode(["i", "c", 1, 0.0, {}, msgspec.msgpack.Ext(9, b"x"), 1, "o"])
    with pytest.raises(SerializationError, match="extension type 9"):
        codec.decode(data)


def test_msgpack_is_smaller_than_json() -> None:
    msg = _msg({"v": np.zeros(64, dtype=np.float32)})
    assert len(MsgpackCodec().encode(msg)) < len(JsonCodec().encode(msg))


def _nest(depth: int) -> Any:
    out: Any = 1
    for _ in range(depth):
        out = [out]
    return out


@pytest.mark.parametrize(
    ("payload", "headers", "match"),
    [
        ({"a": [{"b": {1, 2}}]}, None, "holds a set"),  # hidden below the flat levels
        ([("x", frozenset({1}))], None, "holds a frozenset"),
        ({"a": 1}, {"h": [{"x": {3}}]}, "headers .* holds a set"),
        ({"a": "x\udcff"}, None, "surrogate"),
        (1, {"h": ["ok", "x\udcff"]}, "surrogate"),
        (_nest(MAX_DEPTH + 5), None, "nested deeper"),  # msgspec alone would encode it
        (_nest(100_000), None, "nested deeper"),  # msgspec alone raises RecursionError
        ({"h": {"k": _nest(MAX_DEPTH + 5)}}, None, "nested deeper"),
    ],
    ids=["deep-set", "frozenset-in-tuple", "header-set", "surrogate", "header-surrogate",
         "deeper-than-max", "deeper-than-recursion", "deep-in-dict"],
)  # fmt: skip
def test_encode_refuses_what_would_not_round_trip_wherever_it_hides(
    codec: Codec, payload: Any, headers: dict[str, Any] | None, match: str
) -> None:
    msg = Message("rag.query", payload, headers=headers, id="id-1")
    with pytest.raises(SerializationError, match=match):
        codec.encode(msg)
    with pytest.raises(SerializationError, match=match):  # the batch path checks the same
        codec.encode_many([_msg(1), msg])


@pytest.mark.parametrize(
    ("payload", "headers", "where"),
    [
        ({"a": "x\udcff"}, None, "payload['a']"),
        ([1, {"b": ("ok", "\ud800")}], None, "payload[1]['b'][1]"),
        ({"k\udcff": 1}, None, "payload key 'k\\udcff'"),
        ("ok", {"h": ["ok", "x\udcff"]}, "headers['h'][1]"),
        ("\udcff", None, "payload"),
    ],
)
def test_a_lone_surrogate_is_named_by_where_it_is(
    codec: Codec, payload: Any, headers: dict[str, Any] | None, where: str
) -> None:
    msg = Message("rag.query", payload, headers=headers, id="id-1")
    for encode in (codec.encode, lambda m: codec.encode_many([m])[0]):
        with pytest.raises(SerializationError) as info:
            encode(msg)
        assert f"{where} is not valid UTF-8" in str(info.value)
        assert "'rag.query'" in str(info.value)


def test_encode_many_gives_encode_s_bytes_in_order(codec: Codec) -> None:
    msgs = [
        _msg({"q": "x", "tags": ["a", "b"]}),
        Message("other", [1, {"deep": [2, [3]]}], id="id-2"),  # not flat: walked
        Message("plain", b"\x00", headers=None),  # no headers, bytes payload
        _msg({"v": np.arange(3, dtype=np.int16)}),
    ]
    many = codec.encode_many(msgs)
    assert many == [codec.encode(m) for m in msgs]
    assert [codec.decode(d).id for d in many] == [m.id for m in msgs]
    assert codec.encode_many([]) == []
    with pytest.raises(SerializationError, match="over max_message_size=4096"):
        codec.encode_many([_msg(1), _msg("x" * 5000)])


@pytest.mark.parametrize(
    ("msgs", "named"),
    [(None, "msgs must be an iterable of Message, got NoneType"),
     ("ab", "msgs must be an iterable of Message, got str"),
     (5, "msgs must be an iterable of Message, got int"),
     ([{"payload": 1}], r"msgs\[0\] must be a Message, got dict")],
)  # fmt: skip
def test_encode_many_refuses_what_is_not_messages(codec: Codec, msgs: Any, named: str) -> None:
    with pytest.raises(InputTypeError, match=named):
        codec.encode_many(msgs)
    with pytest.raises(InputTypeError, match=r"msgs\[1\] must be a Message, got int"):
        codec.encode_many([_msg(1), 2])


@pytest.mark.parametrize(
    "payload",
    [
        {"q": "x", "tags": ["a", "b"], "pair": (1, 2)},  # flat: trusted without a walk
        [{"deep": {"er": [1, [2, [3]]]}}],  # not flat: walked, nothing to refuse
        _nest(MAX_DEPTH - 1),
    ],
)
def test_nested_payloads_without_sets_round_trip(codec: Codec, payload: Any) -> None:
    back = codec.decode(codec.encode(_msg(payload))).payload
    expected = msgspec.msgpack.decode(msgspec.msgpack.encode(payload))  # tuples come back lists
    assert back == expected


def test_a_bus_numbered_id_travels_as_its_number_and_reads_the_same(codec: Codec) -> None:
    from neuralcore.messaging import MessageBus

    bus = MessageBus()
    bus.create_channel("rag.query")
    sent = bus.publish("rag.query", {"q": 1})
    assert sent is not None
    back = codec.decode(codec.encode(sent))
    assert back.id == sent.id == f"{bus.bus_id}-{int(sent.id.rsplit('-', 1)[1], 16):x}"
    assert back.origin == bus.bus_id


def test_a_numbered_id_needs_a_text_origin() -> None:
    codec = MsgpackCodec()
    bad = msgspec.msgpack.encode([7, "c", 1, 0.0, {}, 1, 1, None])
    with pytest.raises(SerializationError, match="malformed"):
        codec.decode(bad)
    ok = codec.decode(msgspec.msgpack.encode([255, "c", 1, 0.0, {}, 1, 1, "bus-a"]))
    assert ok.id == "bus-a-ff"


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
    st.text(max_size=5), st.binary(max_size=5),
)  # fmt: skip


class _Dict(dict[Any, Any]):
    pass


class _List(list[Any]):
    pass


_key = st.one_of(  # hashable: a tuple or frozenset key comes back a tuple unless refused
    st.text(max_size=3),
    st.tuples(st.integers(0, 3), st.text(max_size=2)),
    st.frozensets(st.integers(0, 3), max_size=2),
    st.tuples(st.integers(0, 3), st.frozensets(st.integers(0, 3), max_size=2)),
)
_tree = st.recursive(
    _leaf | st.frozensets(st.integers(0, 3), max_size=2) | st.sets(st.integers(0, 3), max_size=2),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.tuples(kids, kids)
        | st.dictionaries(st.text(max_size=3), kids, max_size=3)
        | st.dictionaries(_key, kids, max_size=3)
        | st.builds(_Dict, st.dictionaries(_key, kids, max_size=3))  # subclasses are walked
        | st.builds(_List, st.lists(kids, max_size=3))
    ),
    max_leaves=12,
)


def _has_set(value: Any) -> bool:
    if isinstance(value, set | frozenset):
        return True
    if isinstance(value, dict):
        return any(_has_set(k) or _has_set(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_set(v) for v in value)
    return False


def _has_tuple_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(type(k) is not str or _has_tuple_key(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_tuple_key(v) for v in value)
    return False


@settings(max_examples=300, deadline=None)
@given(payload=_tree, header=_tree)
def test_the_inlined_checks_refuse_exactly_the_sets(payload: Any, header: Any) -> None:
    """encode / encode_many check flat payloads inline (no walk): whatever the shape (dict
    keys, tuple keys, subclasses of dict and list included), a set or frozenset anywhere in
    payload or headers is refused, anything else goes (JSON has no tuple keys: refused)."""
    for codec in (MsgpackCodec(), JsonCodec()):
        msg = Message("c", payload, headers={"h": header, "n": 1}, id="i")
        for encode in (codec.encode, lambda m, c=codec: c.encode_many([m])[0]):
            if _has_set(payload) or _has_set(header):
                with pytest.raises(SerializationError, match=r"holds a (set|frozenset)"):
                    encode(msg)
            elif isinstance(codec, JsonCodec) and (
                _has_tuple_key(payload) or _has_tuple_key(header)
            ):
                with pytest.raises(SerializationError, match="keys must be"):
                    encode(msg)
            else:
                assert codec.decode(encode(msg)).id == "i"


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({frozenset({1}): 1}, "at key frozenset"),
        ({(1, frozenset({2})): 1}, r"at key \(1, frozenset\(\{2\}\)\)\[1\]"),
        (collections.OrderedDict(a={1}), r"a set at \['a'\]"),
        (_List([{1}]), r"a set at \[0\]"),
        ({"a": [1, {"b": (2, {3})}]}, r"a set at \['a'\]\[1\]\['b'\]\[1\]"),
    ],
    ids=["frozenset-key", "frozenset-in-tuple-key", "ordered-dict", "list-subclass", "deep"],
)
def test_a_set_in_a_key_or_a_subclass_is_refused_and_named_by_where_it_is(
    payload: Any, where: str
) -> None:
    msg = Message("c", payload, id="i")
    for encode in (MsgpackCodec().encode, lambda m: MsgpackCodec().encode_many([m])[0]):
        with pytest.raises(SerializationError, match=where):
            encode(msg)


def test_a_payload_of_many_nested_values_is_walked_once(
    codec: Codec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One walk per message however many of its values are not flat (not one each)."""
    import neuralcore.messaging._codec as codec_mod

    walks = []
    real = codec_mod._diagnose
    monkeypatch.setattr(codec_mod, "_diagnose", lambda m: walks.append(1) or real(m))
    payload = {f"k{i}": [{"n": i}] for i in range(100)}  # lists of dicts: not flat
    codec.encode(_msg(payload))
    assert len(walks) == 1
    walks.clear()
    codec.encode_many([_msg(payload)])
    assert len(walks) == 1
