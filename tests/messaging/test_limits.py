"""The idempotency window through the bus: what is a duplicate, for how long, after a
failed publish and after a restart.

The window follows ``time.time()`` (read on each publish), so a fake clock makes these
tests exact and instant.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from neuralcore.core import QueueFullError
from neuralcore.messaging import MessageBus


class Clock:
    """A settable stand-in for ``time.time``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1_700_000_000.0)
    monkeypatch.setattr(time, "time", fake)
    return fake


def _at(clock: Clock, t: float) -> None:
    clock.now = 1_700_000_000.0 + t


def test_a_key_is_a_duplicate_until_its_window_ends(clock: Clock) -> None:
    bus = MessageBus()
    bus.create_channel("c", idempotency_window=10.0)

    def send(t: float, key: str) -> bool:
        _at(clock, t)
        return bus.publish("c", t, idempotency_key=key) is not None

    assert send(0.0, "a")
    assert send(5.0, "b")
    assert not send(9.9, "a")
    assert send(10.0, "a")  # "a" expired; "b" has not
    assert not send(14.9, "b")
    assert send(15.0, "b")
    assert bus.metrics()["c"].duplicates == 2


async def test_a_key_whose_publish_failed_is_free_and_then_keeps_its_full_window(
    clock: Clock,
) -> None:
    bus = MessageBus()
    bus.create_channel("c", max_size=1, overflow="error", idempotency_window=10.0)
    _at(clock, 0.0)
    bus.publish("c", "filler")
    with pytest.raises(QueueFullError):
        bus.publish("c", "first try", idempotency_key="k")  # the key is given back
    async with bus:
        bus.subscribe("c", lambda m: None)
        assert await bus.drain()
        _at(clock, 6.0)
        assert await bus.publish_async("c", "retry", idempotency_key="k") is not None
        _at(clock, 12.0)  # the failed first claim's expiry must not end the retry's window
        assert await bus.publish_async("c", "again", idempotency_key="k") is None
        assert await bus.drain()  # room for one more (max_size=1)
        _at(clock, 16.0)
        assert await bus.publish_async("c", "later", idempotency_key="k") is not None


def test_keys_survive_a_restart_and_expire_at_their_own_time(clock: Clock, tmp_path: Path) -> None:
    path = str(tmp_path / "bus.db")
    with MessageBus(persistence_path=path) as bus:
        bus.create_channel("c", persistent=True, idempotency_window=10.0)
        _at(clock, 0.0)
        assert bus.publish("c", 1, idempotency_key="early") is not None
        _at(clock, 5.0)
        assert bus.publish("c", 2, idempotency_key="late") is not None
    with MessageBus(persistence_path=path) as bus:
        bus.create_channel("c", persistent=True, idempotency_window=10.0)
        _at(clock, 9.0)
        assert bus.publish("c", 3, idempotency_key="early") is None
        assert bus.publish("c", 3, idempotency_key="late") is None
        _at(clock, 10.0)
        assert bus.publish("c", 4, idempotency_key="early") is not None
        assert bus.publish("c", 4, idempotency_key="late") is None
        _at(clock, 15.0)
        assert bus.publish("c", 5, idempotency_key="late") is not None
