"""EmbeddingCache: LRU limit, TTL, SQLite persistence, statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuralcore.core import ConfigError
from neuralcore.embedding import EmbeddingCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _vec(value: float) -> np.ndarray:
    return np.full(4, value, dtype=np.float32)


def test_lru_evicts_the_least_recently_used() -> None:
    cache = EmbeddingCache(max_entries=2)
    cache.put("a", _vec(1))
    cache.put("b", _vec(2))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", _vec(3))
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    stats = cache.stats()
    assert (stats.size, stats.evictions, stats.hits, stats.misses) == (2, 1, 3, 1)
    assert stats.hit_rate == pytest.approx(0.75)


def test_ttl_expires_entries() -> None:
    clock = FakeClock()
    cache = EmbeddingCache(ttl=10.0, clock=clock)
    cache.put("k", _vec(1))
    clock.now += 9.0
    assert cache.get("k") is not None
    clock.now += 2.0
    assert cache.get("k") is None
    assert cache.stats().expired == 1
    assert len(cache) == 0


def test_returned_vectors_are_copies() -> None:
    cache = EmbeddingCache()
    cache.put("k", _vec(1))
    got = cache.get("k")
    assert got is not None
    got[:] = 7
    np.testing.assert_array_equal(cache.get("k"), _vec(1))


def test_sqlite_file_survives_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    first = EmbeddingCache(path=path)
    first.put("k", np.arange(384, dtype=np.float32))
    first.close()
    second = EmbeddingCache(path=path)
    np.testing.assert_array_equal(second.get("k"), np.arange(384, dtype=np.float32))
    second.clear()
    second.close()
    assert EmbeddingCache(path=path).get("k") is None


def test_sqlite_entries_expire_too(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = EmbeddingCache(path=tmp_path / "c.db", ttl=5.0, clock=clock)
    cache.put("k", _vec(1))
    clock.now += 6.0
    reopened = EmbeddingCache(path=tmp_path / "c.db", ttl=5.0, clock=clock)
    assert reopened.get("k") is None


def test_keys_depend_on_model_and_text() -> None:
    keys = {EmbeddingCache.key(m, t) for m in ("m1", "m2") for t in ("a", "b", "\udcff")}
    assert len(keys) == 6


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"max_entries": 0}, "max_entries"), ({"ttl": -1.0}, "ttl"), ({"max_entries": True}, "max")],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        EmbeddingCache(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (None, "NULL"),
        (b"\x00\x00\x80", "truncated"),
        (np.ones(3, dtype=np.float32).tobytes(), "short"),
        (np.zeros(4, dtype=np.float32).tobytes(), "zeroed"),
        (np.full(4, np.nan, dtype=np.float32).tobytes(), "NaN"),
        ("not bytes", "text"),
    ],
)
def test_damaged_rows_are_skipped_counted_and_logged(
    tmp_path: Path, blob: object, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    path = tmp_path / "cache.sqlite"
    key = EmbeddingCache.key("m", why)
    EmbeddingCache(path=path).put(key, _vec(1.0))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE vectors SET vector = ? WHERE key = ?", (blob, key))
    db.close()
    cache = EmbeddingCache(path=path)
    with caplog.at_level("WARNING", logger="neuralcore.embedding._cache"):
        assert cache.get(key, 4) is None
    assert (cache.stats().damaged, cache.stats().misses) == (1, 1)
    assert "damaged" in caplog.text
    assert cache.get(key, 4) is None  # the row was dropped: now a plain miss
    assert cache.stats().damaged == 1
    cache.put(key, _vec(2.0))
    assert cache.get(key, 4).tolist() == [2.0] * 4


def test_engine_cache_skips_damaged_rows(model_dir: Path, tmp_path: Path) -> None:
    import sqlite3

    from neuralcore.embedding import EmbeddingConfig, EmbeddingEngine

    path = tmp_path / "cache.sqlite"
    config = EmbeddingConfig(model=str(model_dir), variant="fp32", cache_path=str(path))
    engine = EmbeddingEngine.from_config(config)
    fresh = engine.embed(["alpha", "beta"], cache=True)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE vectors SET vector = ?", (b"\x00" * 7,))
    db.close()
    again = EmbeddingEngine.from_config(config)
    np.testing.assert_allclose(again.embed(["alpha", "beta"], cache=True), fresh, atol=1e-6)
    assert again.cache.stats().damaged == 2


def test_cache_key_covers_every_output_setting(model_dir: Path) -> None:
    from neuralcore.embedding import EmbeddingEngine

    cache = EmbeddingCache()
    unit = EmbeddingEngine(model_dir, variant="fp32", cache=cache)
    raw = EmbeddingEngine(model_dir, variant="fp32", normalize=False, cache=cache)
    short = EmbeddingEngine(model_dir, variant="fp32", max_length=4, cache=cache)
    text = ["a sentence long enough to be cut at four tokens"]
    a = unit.embed(text, cache=True)
    b = raw.embed(text, cache=True)
    c = short.embed(text, cache=True)
    assert cache.stats().misses == 3  # three settings, three entries
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    assert abs(float(np.linalg.norm(b)) - 1.0) > 0.01  # not the normalised vector
    np.testing.assert_allclose(b, raw.embed(text), atol=1e-6)
    assert float((a * c).sum()) < 0.999
    # each engine reads back its own entry
    assert cache.stats().hits == 0
    np.testing.assert_array_equal(unit.embed(text, cache=True), a)
    np.testing.assert_array_equal(raw.embed(text, cache=True), b)
    np.testing.assert_array_equal(short.embed(text, cache=True), c)
    assert (cache.stats().hits, cache.stats().misses) == (3, 3)
