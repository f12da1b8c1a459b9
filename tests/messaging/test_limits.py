"""The idempotency window: what is a duplicate, for how long, after forget and restore."""

from __future__ import annotations

from neuralcore.messaging._limits import IdempotencyWindow


def test_a_key_is_a_duplicate_until_its_window_ends() -> None:
    w = IdempotencyWindow(10.0)
    assert w.claim("a", "m1", now=0.0) is None
    assert w.claim("b", "m2", now=5.0) is None
    assert w.claim("a", "m3", now=9.9) == "m1"
    assert w.claim("a", "m4", now=10.0) is None  # "a" expired; "b" has not
    assert w.claim("b", "m5", now=14.9) == "m2"
    assert w.seen("b", now=15.0) is None
    assert w.seen("a", now=19.9) == "m4"
    assert len(w) == 1


def test_a_forgotten_key_claimed_again_keeps_its_full_window() -> None:
    w = IdempotencyWindow(10.0)
    w.claim("k", "m1", now=0.0)
    w.forget("k")  # its publish failed
    assert w.claim("k", "m2", now=6.0) is None
    assert w.seen("k", now=12.0) == "m2"  # the first claim's expiry did not remove it
    assert w.seen("k", now=16.0) is None
    w.forget("never-claimed")  # harmless
    assert len(w) == 0


def test_keys_restored_out_of_order_expire_at_their_own_time() -> None:
    w = IdempotencyWindow(10.0)
    w.restore("late", "m1", 30.0)
    w.restore("early", "m2", 20.0)
    w.restore("late", "m3", 40.0)  # stored again: the newer expiry holds
    assert w.seen("early", now=19.0) == "m2"
    assert w.seen("early", now=20.0) is None
    assert w.seen("late", now=35.0) == "m3"
    assert w.claim("late", "m4", now=40.0) is None
