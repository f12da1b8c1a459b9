"""Pooling and output forms against plain loops."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcore.embedding.pooling import finalize, l2_normalize, pool

RNG = np.random.default_rng(7)
HIDDEN = RNG.normal(size=(3, 6, 8)).astype(np.float32)
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=np.int64)


def _loop(mode: str) -> np.ndarray:
    rows = []
    for h, m in zip(HIDDEN, MASK, strict=True):
        live = h[: int(m.sum())]
        rows.append({"mean": live.mean(0), "cls": h[0], "max": live.max(0), "last": live[-1]}[mode])
    return np.stack(rows)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "last"])
def test_pooling_matches_a_loop(mode: str) -> None:
    got = pool(HIDDEN, MASK, mode)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _loop(mode), rtol=1e-5, atol=1e-6)


def test_padding_values_do_not_leak_into_mean_or_max() -> None:
    noisy = HIDDEN.copy()
    noisy[MASK == 0] = 1e6
    for mode in ("mean", "max", "last"):
        np.testing.assert_allclose(pool(noisy, MASK, mode), _loop(mode), rtol=1e-5, atol=1e-6)


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize(np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[0, 0], [2**-0.5, 2**-0.5]], rtol=1e-6)


def test_binary_packs_signs_and_int8_scales() -> None:
    v = l2_normalize(RNG.normal(size=(2, 16)).astype(np.float32))
    packed = finalize(v, dims=None, normalize=True, dtype="binary")
    assert packed.shape == (2, 2)
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1).astype(bool), v > 0)
    q = finalize(v, dims=None, normalize=True, dtype="int8")
    np.testing.assert_allclose(q / 127.0, v, atol=0.5 / 127 + 1e-7)


def test_dims_larger_than_width_leave_vectors_alone() -> None:
    v = l2_normalize(RNG.normal(size=(2, 4)).astype(np.float32))
    np.testing.assert_array_equal(finalize(v, dims=10, normalize=True, dtype="float32"), v)
