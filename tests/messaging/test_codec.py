"""Both boundary codecs share one contract: round trips, limits, clear errors, no pickle."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import numpy as np
import pytest

from neuralcore.core import SerializationError
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
