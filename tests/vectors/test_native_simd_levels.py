"""The native fast paths trust the SIMD library's outputs to reveal zero vectors and NaN/inf.

The library (NumKong, or SimSIMD without it) picks a kernel per SIMD level at run time;
these tests run the detection-critical cases under every level this CPU offers (disabling
the faster ones in turn), so a kernel that masked NaN differently would fail here rather
than return a wrong number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from vector_oracle import needs_native

from neuralcore.core import NonFiniteError
from neuralcore.vectors import VectorOps

# forcing a SIMD level: the kernel module holds the SIMD library whose capability switches
# these tests flip, and the import-time cosine probe that each level must pass again
from neuralcore.vectors._kernels import native as _native

simsimd = _native._SIMD  # NumKong or SimSIMD: the same capability switches

_ORDER = ("sapphire", "turin", "genoa", "icelake", "ice", "skylake", "haswell")  # fastest first
LEVELS = [c for c in _ORDER if simsimd.get_capabilities().get(c)] + ["serial"]
DISTANCES = (
    "cosine_similarity",
    "cosine_distance",
    "dot",
    "euclidean_distance",
    "sqeuclidean_distance",
)
pytestmark = needs_native


@pytest.fixture(params=LEVELS)
def simd_level(request: pytest.FixtureRequest) -> Iterator[str]:
    """Leave ``request.param`` as the best enabled level; restore everything afterwards."""
    faster = _ORDER[: _ORDER.index(request.param)] if request.param in _ORDER else list(_ORDER)
    disabled = [c for c in faster if simsimd.get_capabilities().get(c)]
    for cap in disabled:
        simsimd.disable_capability(cap)
    try:
        yield request.param
    finally:
        for cap in disabled:
            simsimd.enable_capability(cap)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_detected_at_every_level(simd_level: str, dtype: type) -> None:
    ops, rng = VectorOps(backend="native"), np.random.default_rng(11)
    for dim in (1, 3, 8, 15, 16, 17, 33, 64, 385):
        for bad in (math.nan, math.inf, -math.inf):
            for pos in {0, dim // 2, dim - 1}:
                a = rng.standard_normal(dim).astype(dtype)
                m = rng.standard_normal((3, dim)).astype(dtype)
                for name in DISTANCES:
                    bad_a = a.copy()
                    bad_a[pos] = bad
                    with pytest.raises(NonFiniteError):
                        getattr(ops, name)(bad_a, m[0])
                    with pytest.raises(NonFiniteError):
                        getattr(ops, name)(m[0], bad_a)
                    with pytest.raises(NonFiniteError):
                        getattr(ops, name)(bad_a, m)
                    rows = m.copy()
                    rows[1, pos] = bad
                    with pytest.raises(NonFiniteError):
                        getattr(ops, name)(a, rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosine_exact_cases_at_every_level(
    simd_level: str, dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what the import-time probe would decide on a CPU whose best level is this one
    monkeypatch.setattr(_native, "_COSINE_SIMD", _native._simd_cosine_precise())
    ops = VectorOps(backend="native")
    for dim in (1, 7, 16, 33, 384):
        zero, one = np.zeros(dim, dtype), np.ones(dim, dtype)
        assert ops.cosine_similarity(zero, zero) == 0.0
        assert ops.cosine_similarity(zero, one) == 0.0
        assert ops.cosine_similarity(one, one) == pytest.approx(1.0, abs=1e-6)
        assert ops.cosine_similarity(one, -one) == pytest.approx(-1.0, abs=1e-6)
        got = np.asarray(ops.cosine_similarity(one, np.stack([zero, one, -one, zero])))
        np.testing.assert_allclose(got, [0.0, 1.0, -1.0, 0.0], atol=1e-6)
        ramp = np.arange(1, dim + 1, dtype=dtype)
        want = float(ramp.astype(float) @ ramp[::-1] / (ramp.astype(float) @ ramp))
        assert ops.cosine_similarity(ramp, ramp[::-1].copy()) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_against_a_zero_vector_is_detected_at_every_level(
    simd_level: str, dtype: type
) -> None:
    ops = VectorOps(backend="native")
    for dim in (1, 3, 16, 17, 385):
        zero = np.zeros(dim, dtype)
        for bad in (math.nan, math.inf):
            a = np.ones(dim, dtype)
            a[dim // 2] = bad
            for name in ("cosine_similarity", "cosine_distance"):
                with pytest.raises(NonFiniteError):
                    getattr(ops, name)(a, zero)
                with pytest.raises(NonFiniteError):
                    getattr(ops, name)(zero, a)
                with pytest.raises(NonFiniteError):
                    getattr(ops, name)(a, np.stack([zero, zero]))
                with pytest.raises(NonFiniteError):
                    getattr(ops, name)(zero, np.stack([zero, a]))
