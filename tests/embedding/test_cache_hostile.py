"""EmbeddingCache against damaged rows that are finite, and against bad arguments.

Rows are rewritten in a real SQLite cache file (as another process, a bad disk or a
hand edit would leave them); every damaged row must be skipped, counted, logged and
recomputed, never served.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from neuralcore.embedding import EmbeddingCache, EmbeddingConfig, EmbeddingEngine
from neuralcore.errors import ConfigError, InputTypeError, NeuralcoreError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _rewrite(path: Path, column: str, value: object) -> None:
    """Set ``column`` of every row of the cache file to ``value``."""
    db = sqlite3.connect(path)
    with db:
        db.execute(f"UPDATE vectors SET {column} = ?", (value,))
    db.close()


def _engine(model_dir: Path, path: Path, **settings: object) -> EmbeddingEngine:
    config = EmbeddingConfig(
        model=str(model_dir), variant="fp32", threads=1, cache_path=str(path), **settings
    )
    return EmbeddingEngine.from_config(config)


@pytest.mark.parametrize(
    "value",
    [1e30, 1e-40, 1e19],  # norm overflows float32; underflows to 0; 1e19 * sqrt(384) > max
)
def test_engine_recomputes_rows_whose_norm_leaves_float32(
    model_dir: Path, tmp_path: Path, value: float, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite"
    fresh = _engine(model_dir, path).embed(["alpha"], cache=True)
    _rewrite(path, "vector", np.full(384, value, dtype=np.float32).tobytes())
    again = _engine(model_dir, path)
    with caplog.at_level("WARNING", logger="neuralcore.embedding._cache"):
        got = again.embed(["alpha"], cache=True)
    assert np.isfinite(got).all()
    assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5
    np.testing.assert_allclose(got, fresh, atol=1e-6)
    stats = again.cache.stats()
    assert (stats.hits, stats.misses, stats.damaged) == (0, 1, 1)
    assert "float32 range" in caplog.text
    # the recomputed vector replaced the damaged row: the next lookup is a plain hit
    np.testing.assert_array_equal(again.embed(["alpha"], cache=True), got)
    assert again.cache.stats().hits == 1


def test_engine_recomputes_a_row_stored_in_the_future(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    fresh = _engine(model_dir, path, cache_ttl=10.0).embed(["alpha"], cache=True)
    _rewrite(path, "stored_at", 1e300)  # with a TTL of 10 s it would never expire
    again = _engine(model_dir, path, cache_ttl=10.0)
    np.testing.assert_allclose(again.embed(["alpha"], cache=True), fresh, atol=1e-6)
    stats = again.cache.stats()
    assert (stats.hits, stats.damaged) == (0, 1)


def test_clock_skew_allowance(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "cache.sqlite"
    writer = EmbeddingCache(path=path, ttl=10.0, clock=clock)
    unit = np.full(4, 0.5, dtype=np.float32)
    writer.put("near", unit)
    writer.put("far", unit)
    clock.now -= 30.0  # a reader whose clock is 30 s behind the writer's: still served
    reader = EmbeddingCache(path=path, ttl=10.0, clock=clock)
    assert reader.get("near", 4) is not None
    clock.now -= 3600.0  # an hour behind: the row claims to come from the future
    assert reader.get("far", 4) is None
    assert reader.stats().damaged == 1
    clock.now += 3630.0 + 11.0  # back past the writer's time: the near row expires as usual
    assert reader.get("near", 4) is None
    assert reader.stats().expired == 1


def test_unit_norm_refuses_rows_that_are_not_unit_length(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite"
    cache = EmbeddingCache(path=path)
    unit = np.array([0.6, 0.8, 0.0, 0.0], dtype=np.float32)
    for key, scale in {"half": 0.5, "double": 2.0, "near": 1.01}.items():
        cache.put(key, unit * scale)
    reader = EmbeddingCache(path=path)
    with caplog.at_level("WARNING", logger="neuralcore.embedding._cache"):
        for key in ("half", "double", "near"):
            assert reader.get(key, 4, unit_norm=True) is None
    assert reader.stats().damaged == 3
    assert "expected 1" in caplog.text
    # without unit_norm (a model that does not normalise) the same magnitudes are fine
    cache.put("raw", unit * 2.0)
    assert EmbeddingCache(path=path).get("raw", 4) is not None


def test_unit_norm_never_trips_on_a_float32_round_trip() -> None:
    # the file holds the same float32 bytes as the memory tier: no file needed here
    rng = np.random.default_rng(7)
    cache = EmbeddingCache(max_entries=1000)
    rows = 0
    for dim in (1, 2, 3, 384, 1024, 4096):
        for scale in (1e-30, 1.0, 1e30):
            raw = rng.standard_normal((20, dim)) * scale
            raw[0] = 0.0
            raw[0, 0] = scale  # one-hot: a single component of exactly 1
            unit = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
            for i, row in enumerate(unit):
                cache.put(f"{dim}-{scale}-{i}", row)
                rows += 1
    for dim in (1, 2, 3, 384, 1024, 4096):
        for scale in (1e-30, 1.0, 1e30):
            for i in range(20):
                assert cache.get(f"{dim}-{scale}-{i}", dim, unit_norm=True) is not None
    assert (cache.stats().hits, cache.stats().damaged) == (rows, 0)


@pytest.mark.parametrize(
    ("kwargs", "field", "shown"),
    [
        ({"ttl": "5"}, "ttl", "'5'"),
        ({"ttl": [5]}, "ttl", "[5]"),
        ({"ttl": float("nan")}, "ttl", "nan"),
        ({"path": 5}, "path", "5"),
        ({"path": b"/tmp/x.db"}, "path", "b'/tmp/x.db'"),
        ({"path": "a\0b.db"}, "path", "NUL"),
        ({"clock": 5}, "clock", "5"),
    ],
)
def test_bad_settings_are_config_errors_naming_field_and_value(
    kwargs: dict[str, object], field: str, shown: str
) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        EmbeddingCache(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert shown in str(info.value)


def test_numeric_ttl_types_are_accepted() -> None:
    assert EmbeddingCache(ttl=5).ttl == 5
    assert EmbeddingCache(ttl=np.float32(2.5)).ttl == 2.5  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("vector", "shown"),
    [(["a"], "'a'"), ([1 + 2j], "complex"), ([[1.0], [2.0, 3.0]], "vector"), ([None], "None")],
)
def test_put_refuses_vectors_that_are_not_real_numbers(vector: object, shown: str) -> None:
    cache = EmbeddingCache()
    with pytest.raises(InputTypeError, match="vector") as info:
        cache.put("k", vector)  # type: ignore[arg-type]
    assert shown in str(info.value)
    assert isinstance(info.value, NeuralcoreError)
    assert len(cache) == 0


@pytest.mark.parametrize("key", [None, 5, b"k"])
def test_keys_must_be_str(key: object) -> None:
    cache = EmbeddingCache()
    with pytest.raises(InputTypeError, match=type(key).__name__):
        cache.put(key, np.ones(2, dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="key"):
        cache.get(key)  # type: ignore[arg-type]
