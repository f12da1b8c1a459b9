"""Bad arguments anywhere in the public API get a ``NeuralcoreError``, never a crash or a hang.

Each target calls one public function or method with one argument replaced by a generated
bad value (every other argument is valid). The call may succeed (some odd values are
valid) or raise a ``NeuralcoreError`` (which also derives from the builtin it resembles);
any other exception fails the test, and so does a call that does not return in time.
"""

from __future__ import annotations

import asyncio
import functools
import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuralcore
from neuralcore import (
    BusConfig,
    ChannelConfig,
    EmbeddingConfig,
    EmbeddingEngine,
    HNSWIndex,
    MessageBus,
    NeuralcoreError,
    VectorOps,
)

# -- bad values ---------------------------------------------------------------------------


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**40, -1, 0, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["\ud800", "x\udfff", "", " ", "*", "a" * 300]),
    st.binary(max_size=8),
    st.just(object()),
    st.complex_numbers(allow_nan=False, max_magnitude=10),
)
CONTAINERS = st.one_of(
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=4), SCALARS, max_size=3),
    st.sets(st.integers(0, 9), max_size=3),
    st.tuples(SCALARS, SCALARS),
    st.sampled_from([[[1.0, 2.0], [3.0]], [[]], [], {}, (), _deep(200)]),
)
ARRAYS = st.sampled_from(
    [
        np.zeros((0,), np.float32),
        np.zeros((0, 2), np.float32),
        np.zeros((2, 2, 2), np.float32),
        np.array([1.0, np.nan], np.float32),
        np.array([1e300, -1e300], np.float64),
        np.array(["a", "b"]),
        np.array([None, 1.0], dtype=object),
        np.array([1 + 2j, 3j]),
        np.array([1, 2], np.int64),
        np.array([True, False]),
        np.float64(np.nan),
        np.int64(2),
        np.int64(-3),
    ]
).map(lambda a: a.copy())  # normalize(..., inplace=True) must not change the next example
BAD = st.one_of(SCALARS, CONTAINERS, ARRAYS)

# -- targets ------------------------------------------------------------------------------

V = [1.0, 2.0]
M = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
Target = Callable[[Any], object]


def _vector_targets() -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for name in ("cosine_similarity", "cosine_distance", "dot", "euclidean_distance"):
        fn = getattr(neuralcore, name)
        targets[f"{name}(bad, v)"] = lambda bad, fn=fn: fn(bad, V)
        targets[f"{name}(v, bad)"] = lambda bad, fn=fn: fn(V, bad)
        targets[f"{name}(allow_nonfinite=bad)"] = lambda bad, fn=fn: fn(V, V, allow_nonfinite=bad)
    targets["sqeuclidean_distance(bad, m)"] = lambda bad: neuralcore.sqeuclidean_distance(bad, M)
    targets["normalize(bad)"] = lambda bad: neuralcore.normalize(bad)
    targets["normalize(bad, inplace=True)"] = lambda bad: neuralcore.normalize(bad, inplace=True)
    targets["top_k(bad, m, 1)"] = lambda bad: neuralcore.top_k(bad, M, 1)
    targets["top_k(v, bad, 1)"] = lambda bad: neuralcore.top_k(V, bad, 1)
    targets["top_k(v, m, k=bad)"] = lambda bad: neuralcore.top_k(V, M, bad)
    targets["Corpus(bad)"] = lambda bad: neuralcore.Corpus(bad)
    targets["Corpus(m, dtype=bad)"] = lambda bad: neuralcore.Corpus(M, dtype=bad)
    targets["Corpus(m).add(bad)"] = lambda bad: neuralcore.Corpus(M).add(bad)
    targets["Corpus(m).cosine(bad)"] = lambda bad: neuralcore.Corpus(M).cosine(bad)
    targets["Corpus(m).dot(bad)"] = lambda bad: neuralcore.Corpus(M).dot(bad)
    targets["Corpus(m).top_k(v, k=bad)"] = lambda bad: neuralcore.Corpus(M).top_k(V, bad)
    targets["VectorOps(backend=bad)"] = lambda bad: VectorOps(backend=bad)
    targets["VectorOps('python').dot(bad, v)"] = lambda bad: VectorOps(backend="python").dot(bad, V)
    targets["VectorOps('python').top_k(v, m, k=bad)"] = lambda bad: VectorOps(
        backend="python"
    ).top_k(V, M, bad)
    return targets


def _index() -> HNSWIndex:
    index = HNSWIndex(2, metric="cosine")
    index.add([1, 2, 3], np.asarray(M, np.float32))
    return index


def _hnsw_targets() -> dict[str, Target]:
    return {
        "HNSWIndex(dim=bad)": lambda bad: HNSWIndex(bad),
        "HNSWIndex(2, metric=bad)": lambda bad: HNSWIndex(2, metric=bad),
        "HNSWIndex.add(bad keys)": lambda bad: _index().add(bad, np.ones((1, 2), np.float32)),
        "HNSWIndex.add(bad vectors)": lambda bad: _index().add([9], bad),
        "HNSWIndex.search(bad)": lambda bad: _index().search(bad, k=1),
        "HNSWIndex.search(k=bad)": lambda bad: _index().search(V, k=bad),
        "HNSWIndex.remove(bad)": lambda bad: _index().remove(bad),
        "HNSWIndex.get(bad)": lambda bad: _index().get(bad),
        "HNSWIndex.load(bad)": lambda bad: HNSWIndex.load(bad),
        "HNSWIndex.view(bad)": lambda bad: HNSWIndex.view(bad),
        "HNSWIndex.save(bad)": lambda bad: _index().save(bad),
    }


def _config_targets() -> dict[str, Target]:
    return {
        "BusConfig.from_dict(bad)": lambda bad: BusConfig.from_dict(bad),
        "BusConfig.from_dict({'prefetch': bad})": lambda bad: BusConfig.from_dict(
            {"prefetch": bad}
        ),
        "ChannelConfig(name=bad)": lambda bad: ChannelConfig(name=bad),
        "ChannelConfig.from_dict({'name': 'c', 'max_size': bad})": lambda bad: (
            ChannelConfig.from_dict({"name": "c", "max_size": bad})
        ),
        "EmbeddingConfig.from_dict(bad)": lambda bad: EmbeddingConfig.from_dict(bad),
    }


@functools.cache
def _engine() -> EmbeddingEngine:
    return EmbeddingEngine("all-MiniLM-L6-v2")


def _embedding_targets() -> dict[str, Target]:
    return {
        "EmbeddingEngine(bad)": lambda bad: EmbeddingEngine(bad),
        "EmbeddingEngine.embed(bad)": lambda bad: _engine().embed(bad),
        "EmbeddingEngine.embed([bad])": lambda bad: _engine().embed([bad]),
        "EmbeddingEngine.embed_one(bad)": lambda bad: _engine().embed_one(bad),
    }


def _bus_call(call: Callable[[MessageBus], object], *, persistent: bool = False) -> Target:
    """Run ``call`` on a started bus with channel ``c`` (durable when ``persistent``)."""

    async def run(tmp: Path) -> None:
        path = str(tmp / "bus.db") if persistent else None
        async with MessageBus(persistence_path=path) as bus:
            bus.create_channel("c", persistent=persistent, idempotency_window=60.0)
            bus.subscribe("c", lambda m: "reply")  # answers requests at once
            result = call(bus)
            if asyncio.iscoroutine(result):
                await result

    return lambda tmp: asyncio.run(asyncio.wait_for(run(tmp), 60))


def _bus_targets() -> dict[str, Callable[[Any], Target]]:
    return {
        "MessageBus.create_channel(bad)": lambda bad: _bus_call(lambda b: b.create_channel(bad)),
        "MessageBus.create_channel('x', max_size=bad)": lambda bad: _bus_call(
            lambda b: b.create_channel("x", max_size=bad)
        ),
        "MessageBus.subscribe('c', bad)": lambda bad: _bus_call(lambda b: b.subscribe("c", bad)),
        "MessageBus.publish('c', priority=bad)": lambda bad: _bus_call(
            lambda b: b.publish("c", 1, priority=bad)
        ),
        "MessageBus.publish(bad, 1)": lambda bad: _bus_call(lambda b: b.publish(bad, 1)),
        "MessageBus.publish('c', 1, headers=bad)": lambda bad: _bus_call(
            lambda b: b.publish("c", 1, headers=bad)
        ),
        "MessageBus.publish('c', 1, idempotency_key=bad)": lambda bad: _bus_call(
            lambda b: b.publish("c", 1, idempotency_key=bad)
        ),
        "MessageBus.subscribe(bad, handler)": lambda bad: _bus_call(
            lambda b: b.subscribe(bad, lambda m: None)
        ),
        "durable MessageBus.publish('c', bad)": lambda bad: _bus_call(
            lambda b: b.publish("c", bad), persistent=True
        ),
        "MessageBus.request('c', 1, timeout=bad)": lambda bad: _bus_call(
            lambda b: b.request("c", 1, timeout=bad)
        ),
    }


TARGETS: dict[str, Target] = {
    **_vector_targets(),
    **_hnsw_targets(),
    **_config_targets(),
    **_embedding_targets(),
}
BUS_TARGETS = _bus_targets()


def _surrogate(bad: Any) -> bool:
    if isinstance(bad, str):
        return any("\ud800" <= c <= "\udfff" for c in bad)
    if isinstance(bad, dict):
        return any(_surrogate(k) or _surrogate(v) for k, v in bad.items())
    return isinstance(bad, list | tuple | set) and any(_surrogate(x) for x in bad)


def _bad_path(bad: Any) -> bool:
    """Not a str, or a str the OS refuses: NUL, a lone surrogate, a name over 255 bytes."""
    return not isinstance(bad, str) or _surrogate(bad) or "\x00" in bad or len(bad) > 255


# Inputs that still raise a raw exception (or hang), found by this test at the time of
# writing; each is routed to the owner of its engine. Remove an entry when its fix lands,
# and this test covers it from then on.
NOT_YET: dict[str, Callable[[Any], bool]] = {}


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (``HNSWIndex.save("x")`` with a generated name) land in a temp dir."""
    monkeypatch.chdir(tmp_path)


def _check(name: str, call: Callable[[], object], bad: Any) -> None:
    skip = NOT_YET.get(name)
    if skip is not None and skip(bad):
        return
    try:
        call()
    except NeuralcoreError:
        pass
    except Exception as err:  # the point: anything else is a defect
        pytest.fail(f"{name} with {_show(bad)} raised {type(err).__name__}: {err}")


def _show(value: Any) -> str:
    return reprlib.repr(value)


FUZZ = settings(
    max_examples=3000,
    derandomize=True,  # the same examples on every run: CI fails only on a real change
    deadline=None,  # a hang is caught by the timeout below, slowness is not a defect here
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


@pytest.mark.timeout(300)
@FUZZ
@given(name=st.sampled_from(sorted(TARGETS)), bad=BAD)
def test_bad_arguments_raise_neuralcore_errors(name: str, bad: Any) -> None:
    _check(name, lambda: TARGETS[name](bad), bad)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=400)
@given(name=st.sampled_from(sorted(BUS_TARGETS)), bad=BAD)
def test_bad_arguments_to_the_bus_raise_neuralcore_errors(
    name: str, bad: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("bus")
    _check(name, lambda: BUS_TARGETS[name](bad)(tmp), bad)
