"""Installs with SimSIMD and without NumKong: float32 cosines at any finite magnitude.

SimSIMD 6 squares and sums float32 in float32, so for norms outside ~[1e-15, 1e15] its
cosine is wrong (1.0 instead of 0.7071, 0.0 instead of 0.0384); NumKong sums in float64.
Fault injection: NumKong is blocked in a fresh interpreter, as if it were not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("simsimd")

_CHILD = textwrap.dedent(
    """
    import sys
    sys.modules["numkong"] = None
    import math
    import numpy as np
    import neuralcore
    from neuralcore import VectorOps
    from neuralcore.vectors._kernels import native

    assert native.SIMD_NAME.lower() == "simsimd", native.SIMD_NAME
    assert not native.accelerated()  # the glue trusts (0, 2): NumKong only
    detail = neuralcore.backend_info()["vectors"].detail
    assert "norms checked per call" in detail and "~3.9x" in detail, detail
    ops = VectorOps(backend="native")
    funcs = (neuralcore.cosine_similarity, ops.cosine_similarity)
    for s in (1e-25, 1e-20, 1e18, 1e20, 1.0):
        a = np.array([s, 0.0], np.float32)
        b = np.array([s, s], np.float32)
        for f in funcs:
            got = f(a, b)
            assert math.isclose(got, 0.5**0.5, rel_tol=1e-6), (s, got)
        dist = neuralcore.cosine_distance(a, b)
        assert math.isclose(dist, 1 - 0.5**0.5, rel_tol=1e-5), (s, dist)
        many = neuralcore.cosine_similarity(a, np.stack([b, b, a]))
        assert np.allclose(many, [0.5**0.5, 0.5**0.5, 1.0], rtol=1e-6), (s, many)
        _, best = ops.top_k(a, np.stack([b, a]), 2)
        assert np.allclose(best, [1.0, 0.5**0.5], rtol=1e-6), (s, best)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 384))
    want = float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    for s in (1e-30, 1e-20, 1.0, 1e20, 1e30):
        a, b = (x * s).astype(np.float32), (y * s).astype(np.float32)
        for f in funcs:
            assert abs(f(a, b) - want) < 1e-6, (s, f(a, b), want)
        rows = neuralcore.cosine_similarity(a, np.stack([b, a]))
        assert abs(rows[0] - want) < 1e-6 and abs(rows[1] - 1) < 1e-6, (s, rows)
    # dot and L2 of one float32 pair: SimSIMD's float32 sums under- or overflow
    zero = np.zeros(2, np.float32)
    tiny, big = np.array([1e-25, 0], np.float32), np.array([3e19, 0], np.float32)
    exact = float(np.float32(1e-25))
    for ops_ in (neuralcore, ops):
        assert math.isclose(ops_.euclidean_distance(tiny, zero), exact, rel_tol=1e-12)
        assert math.isclose(ops_.sqeuclidean_distance(tiny, zero), exact**2, rel_tol=1e-12)
        assert math.isclose(ops_.dot(tiny, tiny), exact**2, rel_tol=1e-12)
        big_sq = float(np.float32(3e19)) ** 2  # beyond float32, a float64 answer
        assert math.isclose(ops_.dot(big, big), big_sq, rel_tol=1e-12)
    small = np.array([1e-20, 1e-20], np.float32)
    want_small = 2 * float(np.float32(1e-20)) ** 2
    assert math.isclose(neuralcore.dot(small, small), want_small, rel_tol=1e-9)
    print("ok")
    """
)


def test_simsimd_float32_cosine_is_right_at_any_magnitude() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok", done.stdout
