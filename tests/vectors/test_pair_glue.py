"""The compiled glue of the one-pair cosine kernels (``_kernels/_accel.c``).

It is a required part of the shipped speed (a pair within 1.3x of SimSIMD's own call), so
its absence from this repository's install is a failure, not a skip. Every other test here
is differential: each input goes through the compiled object and through the Python kernel
it wraps, and both must give the same value (same type, bit for bit) or the same error.
"""

from __future__ import annotations

import array
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import neuralcore
import neuralcore.vectors as nv
from neuralcore.errors import NonFiniteError
from neuralcore.vectors import Corpus, HNSWIndex, VectorOps
from neuralcore.vectors._kernels import native

KINDS = ("cosine_similarity", "cosine_distance")
RNG = np.random.default_rng(20261129)
A32 = RNG.standard_normal(64).astype(np.float32)
B32 = RNG.standard_normal(64).astype(np.float32)


class Sub(np.ndarray):
    """An ndarray subclass: never taken by the compiled checks (exact type only)."""


def _unaligned(values: np.ndarray) -> np.ndarray:
    raw = np.zeros(values.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=np.float32, count=values.size, offset=1)
    out[:] = values  # a writable float32 view at an odd address
    return out


def _inputs() -> dict[str, tuple[Any, Any]]:
    a64, b64 = A32.astype(np.float64), B32.astype(np.float64)
    zero = np.zeros(64, np.float32)
    nan, inf = A32.copy(), B32.copy()
    nan[3], inf[5] = np.nan, np.inf
    cases: dict[str, tuple[Any, Any]] = {
        "f32 contiguous": (A32, B32),
        "f32 same vector": (A32, A32.copy()),
        "f32 opposite": (A32, -A32),
        "f32 reversed (negative stride)": (A32, B32[::-1]),
        "f32 reversed both": (A32[::-1], B32[::-1]),
        "f32 zero stride": (A32, as_strided(B32, shape=(64,), strides=(0,))),
        "f32 broadcast zero stride": (np.broadcast_to(np.float32(2.0), (64,)), A32),
        "f32 every other": (RNG.standard_normal(128).astype(np.float32)[::2], B32),
        "f32 column of a matrix": (np.asfortranarray(np.stack([A32, B32], 1))[:, 0], B32),
        "f32 big-endian": (A32.astype(">f4"), B32),
        "f32 big-endian both": (A32.astype(">f4"), B32.astype(">f4")),
        "f32 explicit little-endian": (A32.astype("<f4"), B32.astype("<f4")),
        "f32 unaligned": (_unaligned(A32), B32),
        "f32 read-only": (np.frombuffer(A32.tobytes(), np.float32), B32),
        "f32 subclass": (A32.view(Sub), B32),
        "f32 memmap-like subclass both": (A32.view(Sub), B32.view(Sub)),
        "f32 masked": (np.ma.masked_array(A32), B32),
        "f32 wrong lengths": (A32, B32[:63]),
        "f32 empty": (np.zeros(0, np.float32), np.zeros(0, np.float32)),
        "f32 zero-d": (np.float32(1.0) * np.ones((), np.float32), np.ones((), np.float32)),
        "f32 scalar": (np.float32(1.0), np.float32(2.0)),
        "f32 row matrix": (A32[None, :], B32),
        "f32 column matrix": (A32[:, None], B32[:, None]),
        "f32 vector vs matrix": (A32, np.stack([A32, B32, -A32])),
        "f32 zero vector": (zero, B32),
        "f32 two zero vectors": (zero, zero.copy()),
        "f32 NaN": (nan, B32),
        "f32 inf": (A32, inf),
        "f32 tiny 1e-30": (A32 * np.float32(1e-30), B32),
        "f32 huge 1e30": (A32 * np.float32(1e30), B32 * np.float32(1e30)),
        "f32 denormal": (np.full(64, 1e-45, np.float32), B32),
        "f32 max": (np.full(64, np.finfo(np.float32).max, np.float32), B32),
        "f64 contiguous": (a64, b64),
        "f64 1e-300": (a64 * 1e-300, b64),
        "f64 1e300": (a64 * 1e300, b64 * 1e300),
        "f64 1e-160 both": (a64 * 1e-160, b64 * 1e-160),
        "f64 max": (np.full(64, sys.float_info.max), b64),
        "f64 reversed": (a64, b64[::-1]),
        "f64 vs f32": (a64, B32),
        "f16": (A32.astype(np.float16), B32.astype(np.float16)),
        "int8": (np.arange(64, dtype=np.int8), np.ones(64, np.int8)),
        "int64": (np.arange(64), np.ones(64, np.int64)),
        "complex64": (A32.astype(np.complex64), B32.astype(np.complex64)),
        "bool": (np.ones(64, bool), np.ones(64, bool)),
        "object array": (A32.astype(object), B32),
        "lists": (A32.tolist(), B32.tolist()),
        "tuples": (tuple(A32.tolist()), tuple(B32.tolist())),
        "bytes": (A32.tobytes(), B32.tobytes()),
        "bytearray": (bytearray(A32.tobytes()), B32),
        "memoryview": (memoryview(A32), memoryview(B32)),
        "array.array": (array.array("f", A32.tolist()), array.array("f", B32.tolist())),
        "str": ("ab", "ba"),
        "None": (None, B32),
    }
    return cases


CASES = _inputs()


def _outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        value = call(*args, **kwargs)
    except Exception as err:  # what is compared is the error itself
        return "raised", (type(err), str(err))
    if isinstance(value, float):
        return type(value).__name__, "nan" if math.isnan(value) else value.hex()
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {value.shape}", value.tobytes()
    if isinstance(value, list):
        return "list", repr(value)
    return type(value).__name__, repr(value)


MODES = ("direct", "vectorcall")


def _glued(kind: str, allow: bool = False, mode: str = "direct") -> Any:
    """The module function as bound (``direct``: NumKong's kernel by address), or the same
    glue calling the SIMD library's Python function (``vectorcall``: no address)."""
    kernel = native.bind(allow, 1)[kind]
    if mode == "direct":
        return kernel
    return native._ACCEL.PairKernel(
        native._ss_cos, kernel.fallback, np.ndarray, native._SS_REJECTS,
        kind == "cosine_similarity", False,
    )  # fmt: skip


def _same(kernel: Any, *args: Any, **kwargs: Any) -> None:
    """The compiled object and the Python kernel it wraps answer (or fail) alike."""
    assert type(kernel).__name__ == "PairKernel", "the compiled glue is not in use"
    assert _outcome(kernel, *args, **kwargs) == _outcome(kernel.fallback, *args, **kwargs)


def test_the_compiled_glue_is_built_and_serves_the_pair_functions() -> None:
    # Fails (never skips) when the extension was not built: `pip install -e .` with a C
    # compiler builds it in place (scripts/setup.sh, `make setup`).
    assert native._ACCEL is not None, (
        "neuralcore.vectors._kernels._accel is not built; reinstall with a C compiler "
        "(`.venv/bin/pip install -e .`)"
    )
    assert native.accelerated()
    if native.SIMD_NAME == "numkong":  # the kernel by address, checked at load
        assert native._ANGULAR_ADDRESS != 0
    ops = VectorOps()
    for kind in KINDS:
        assert type(getattr(nv, kind)).__name__ == "PairKernel"
        assert type(type(ops).__dict__[kind]).__name__ == "PairKernel"
        if kind in vars(neuralcore):
            assert getattr(neuralcore, kind) is getattr(nv, kind)
    a = np.array([1.0, 0.0], np.float32)
    b = np.array([1.0, 1.0], np.float32)
    assert nv.cosine_similarity(a, b) == ops.cosine_similarity(a, b) == pytest.approx(0.7071068)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("allow", [False, True])
def test_every_input_answers_as_the_python_kernel(
    kind: str, case: str, allow: bool, mode: str
) -> None:
    a, b = CASES[case]
    kernel = _glued(kind, allow, mode)
    _same(kernel, a, b)
    _same(kernel, b, a)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "flag", [None, True, False, np.True_, np.False_, 1, 0, "yes", 2.5, np.array(True), [True]]
)
@pytest.mark.parametrize("mode", MODES)
def test_every_flag_answers_as_the_python_kernel(kind: str, flag: Any, mode: str) -> None:
    kernel = _glued(kind, mode=mode)
    nan = A32.copy()
    nan[0] = np.nan
    for a, b in ((A32, B32), (nan, B32), (A32, B32[::-1])):
        _same(kernel, a, b, flag)
        _same(kernel, a, b, allow_nonfinite=flag)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_bad_call_shapes_fail_as_the_python_kernel(kind: str, mode: str) -> None:
    kernel = _glued(kind, mode=mode)
    _same(kernel)
    _same(kernel, A32)
    _same(kernel, A32, B32, False, True)
    _same(kernel, A32, b=B32)
    _same(kernel, a=A32, b=B32)
    _same(kernel, A32, B32, allow_nonfinite=False, extra=1)
    _same(kernel, A32, B32, allow=True)
    _same(kernel, A32, B32, **{"allow_" + "nonfinite": False})  # a name not interned


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_methods_keep_the_instance_settings(kind: str, allow: bool, threads: int) -> None:
    ops = VectorOps(allow_nonfinite=allow, threads=threads)
    method = type(ops).__dict__[kind]
    assert type(method).__name__ == "PairKernel"
    nan = A32.copy()
    nan[1] = np.nan
    for a, b in ((A32, B32), (nan, B32), (A32, B32[::-1]), (A32, np.stack([A32, B32]))):
        assert _outcome(getattr(ops, kind), a, b) == _outcome(method.fallback, ops, a, b)
        assert _outcome(method, ops, a, b) == _outcome(method.fallback, ops, a, b)
    if allow:
        assert math.isnan(getattr(ops, kind)(nan, B32))
    else:
        with pytest.raises(NonFiniteError):
            getattr(ops, kind)(nan, B32)
    # the method as found on the class and unbound calls answer alike
    _same_method = _outcome(type(ops).__dict__[kind], ops, A32, B32)
    assert _same_method == _outcome(getattr(type(ops), kind), ops, A32, B32)
    assert _outcome(getattr(type(ops), kind), A32, B32) == _outcome(method.fallback, A32, B32)


def test_the_fast_path_answer_is_the_simd_answer() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 3, 16, 17, 384, 1536):
        a, b = rng.standard_normal((2, n)).astype(np.float32)
        sim = nv.cosine_similarity(a, b)
        assert type(sim) is float
        assert sim == 1.0 - native._ss_cos(a, b)
        assert nv.cosine_distance(a, b) == native._ss_cos(a, b)


def test_the_kernel_address_is_checked_before_use() -> None:
    a, b = A32, B32
    if native._ANGULAR_ADDRESS:
        got = native._ACCEL.call_angular_f32(native._ANGULAR_ADDRESS, np.ndarray, a, b)
        assert got == native._ss_cos(a, b)
    for bad in ((1, np.ndarray, a, b[:3]), (1, np.ndarray, a, b[::-1]),
                (1, np.ndarray, a.tolist(), b), (1, Sub, a, b), (1, np.ndarray, a)):  # fmt: skip
        with pytest.raises(TypeError):
            native._ACCEL.call_angular_f32(*bad)


def test_private_constructors_refuse_what_they_would_misread() -> None:
    # a type other than numpy.ndarray would be read as an ndarray struct (segfault before)
    a, b = A32, B32
    for bad_type in (int, Sub, float, type):
        with pytest.raises(TypeError, match=r"numpy\.ndarray itself"):
            native._ACCEL.call_angular_f32(12345, bad_type, a, b)
        with pytest.raises(TypeError, match=r"numpy\.ndarray itself"):
            native._ACCEL.PairKernel(native._ss_cos, lambda *x: 0, bad_type, (), True, False)
    for address in (-1, -(2**70), 2**80):
        with pytest.raises(OverflowError):
            native._ACCEL.call_angular_f32(address, np.ndarray, a, b)
        with pytest.raises((OverflowError, ValueError)):
            native._ACCEL.PairKernel(native._ss_cos, lambda *x: 0, np.ndarray, (), True, False,
                                     address)  # fmt: skip
    for address in (1.5, "1", None):
        with pytest.raises(TypeError, match="address must be an int"):
            native._ACCEL.PairKernel(native._ss_cos, lambda *x: 0, np.ndarray, (), True, False,
                                     address)  # fmt: skip
    with pytest.raises(ValueError, match="non-zero"):
        native._ACCEL.call_angular_f32(0, np.ndarray, a, b)


def test_the_glue_compiles_without_warnings(tmp_path: Any) -> None:
    from pathlib import Path

    from cglue import assert_compiles_cleanly

    assert_compiles_cleanly(
        Path(native.__file__).with_name("_accel.c"), np.get_include(), cwd=tmp_path
    )


class _Boom(Exception):
    pass


def _kernel_raising(err: BaseException) -> Callable[[Any, Any], float]:
    def kernel(a: Any, b: Any) -> float:
        raise err

    return kernel


def test_kernel_errors_it_cannot_read_go_to_the_python_kernel() -> None:
    # fault injection: the SIMD call refuses (as it does for inputs it cannot take)
    calls: list[tuple[Any, ...]] = []

    def fallback(*args: Any) -> str:
        calls.append(args)
        return "fallback"

    glue = native._ACCEL.PairKernel(
        _kernel_raising(ValueError("no")), fallback, np.ndarray, native._SS_REJECTS, True, False
    )
    assert glue(A32, B32) == "fallback"
    assert calls == [(A32, B32)]
    # any other error propagates unchanged, without a second call
    glue = native._ACCEL.PairKernel(
        _kernel_raising(_Boom("boom")), fallback, np.ndarray, native._SS_REJECTS, True, False
    )
    with pytest.raises(_Boom, match="boom"):
        glue(A32, B32)
    assert len(calls) == 1


def test_kernel_answers_outside_the_window_go_to_the_python_kernel() -> None:
    for answer in (0.0, 2.0, -0.5, 2.5, math.nan, math.inf, 1, np.float64(0.5), None):

        def kernel(a: Any, b: Any, answer: Any = answer) -> Any:
            return answer

        glue = native._ACCEL.PairKernel(
            kernel, lambda *args: "fallback", np.ndarray, native._SS_REJECTS, True, False
        )
        assert glue(A32, B32) == "fallback", answer
    glue = native._ACCEL.PairKernel(
        lambda a, b: 0.25, lambda *args: "fallback", np.ndarray, native._SS_REJECTS, False, True
    )
    assert glue(object(), A32, B32) == 0.25  # the method variant skips ``self``
    assert glue(A32, B32) == "fallback"  # a method called without its instance


def test_no_reference_is_leaked_on_either_path() -> None:
    kernel = nv.cosine_similarity
    reverse = B32[::-1]
    for a, b in ((A32, B32), (A32, reverse), (A32.tolist(), B32)):
        before = (sys.getrefcount(a), sys.getrefcount(b), sys.getrefcount(kernel))
        for _ in range(2000):
            kernel(a, b)
            kernel(a, b, False)
            kernel(a, b, allow_nonfinite=True)
        assert (sys.getrefcount(a), sys.getrefcount(b), sys.getrefcount(kernel)) == before


def test_it_looks_like_the_function_it_replaces() -> None:
    import inspect

    signature = inspect.signature(nv.cosine_similarity)
    assert list(signature.parameters) == ["a", "b", "allow_nonfinite"]
    assert signature.parameters["allow_nonfinite"].default is False
    assert nv.cosine_similarity.__doc__.startswith("Cosine similarity")
    assert nv.cosine_similarity.__name__ == "cosine_similarity"
    assert "cosine_similarity" in repr(nv.cosine_similarity)
    ops = VectorOps()
    bound = ops.cosine_similarity
    assert bound.__self__ is ops
    assert list(inspect.signature(bound).parameters) == ["a", "b", "allow_nonfinite"]


def test_float64_euclidean_against_rows_is_exact_for_identical_rows() -> None:
    # NumKong 7.8's float64 euclidean cdist answers ~4e-8 for some identical pairs
    rng = np.random.default_rng(1)
    for _ in range(200):
        q = rng.standard_normal(8)
        m = np.vstack([q, rng.standard_normal((2, 8))])[:, ::-1].copy()[:, ::-1]
        assert nv.euclidean_distance(q[::-1][::-1], m)[0] == 0.0
        assert nv.euclidean_distance(q[None, :], m)[0, 0] == 0.0


def _unaligned_copy(values: np.ndarray) -> np.ndarray:
    raw = np.zeros(values.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=values.dtype, count=values.size, offset=1)
    out = out.reshape(values.shape)
    out[...] = values
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_arrays_are_read_everywhere(dtype: type) -> None:
    # numpy exports an array at an odd address with format "=f", which NumKong refuses:
    # every entry point copies it instead of failing with NumKong's ValueError
    rng = np.random.default_rng(11)
    q, m = rng.standard_normal(8).astype(dtype), rng.standard_normal((5, 8)).astype(dtype)
    uq, um = _unaligned_copy(q), _unaligned_copy(m)
    assert not uq.flags.aligned
    assert not um.flags.aligned
    for name in ("cosine_similarity", "cosine_distance", "dot", "euclidean_distance"):
        fn = getattr(nv, name)
        for args, plain in (((uq, uq), (q, q)), ((uq, um), (q, m)), ((um, um), (m, m))):
            np.testing.assert_allclose(fn(*args), fn(*plain), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(nv.normalize(um), nv.normalize(m), rtol=1e-6)
    np.testing.assert_allclose(nv.normalize(_unaligned_copy(m), inplace=True), nv.normalize(m))
    assert nv.top_k(uq, um, 2)[0].tolist() == nv.top_k(q, m, 2)[0].tolist()
    assert Corpus(um).top_k(uq, 2)[0].tolist() == Corpus(m).top_k(q, 2)[0].tolist()
    index = HNSWIndex(8)
    index.add(np.arange(5), um)
    assert index.search(uq, k=2)[0].tolist() == index.search(q, k=2)[0].tolist()


def test_the_functions_pickle_and_copy_by_reference_as_functions_do() -> None:
    import copy
    import pickle

    for kind in KINDS:
        fn = getattr(nv, kind)
        assert fn.__reduce__() == kind  # a reference: module + name, as a function's
        dumped = pickle.dumps(fn)  # (multiprocessing passes functions this way)
        assert b"neuralcore.vectors" in dumped
        assert kind.encode() in dumped
        assert copy.copy(fn) is fn
        assert copy.deepcopy(fn) is fn


_ORDER = ("sapphire", "turin", "genoa", "icelake", "ice", "skylake", "haswell")


@pytest.mark.skipif(native.SIMD_NAME != "numkong", reason="kernel addresses are NumKong's")
def test_the_kernel_at_every_simd_level_answers_as_numkong_at_that_level() -> None:
    # The glue keeps the kernel NumKong's dispatch picked at import; here a glue is made
    # per level with that level's kernel, and each must answer as numkong.angular does
    # there (the trust window catches zero, NaN and infinite vectors at every level).
    simd = native._SIMD
    levels = [c for c in _ORDER if simd.get_capabilities().get(c)]
    zero, nan, inf = np.zeros(64, np.float32), A32.copy(), B32.copy()
    nan[3], inf[9] = np.nan, np.inf
    pairs = [(A32, B32), (A32, A32.copy()), (A32, -A32), (zero, B32), (zero, zero.copy()),
             (nan, B32), (A32, inf), (A32[:17], B32[:17]), (A32[:1], B32[:1])]  # fmt: skip
    disabled: list[str] = []
    try:
        for level in [*levels, "serial"]:
            if level != "serial":
                for cap in levels[: levels.index(level)]:
                    if cap not in disabled:
                        simd.disable_capability(cap)
                        disabled.append(cap)
            else:
                for cap in levels:
                    if cap not in disabled:
                        simd.disable_capability(cap)
                        disabled.append(cap)
            address = int(simd.pointer_to_angular("float32"))
            for kind in KINDS:
                python = native.bind(False, 1)[kind].fallback
                glue = native._ACCEL.PairKernel(
                    native._ss_cos, python, np.ndarray, native._SS_REJECTS,
                    kind == "cosine_similarity", False, address,
                )  # fmt: skip
                for a, b in pairs:
                    assert _outcome(glue, a, b) == _outcome(python, a, b), (level, kind)
                    assert _outcome(glue, a, b, True) == _outcome(python, a, b, True)
    finally:
        for cap in disabled:
            simd.enable_capability(cap)


def test_the_stated_cost_without_the_glue_is_the_same_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # measured 2026-11-29 (one 384-d float32 pair): numkong.angular 207 ns, simsimd.cosine
    # 185 ns, the glue 118-135 ns, the Python kernel 348 ns; the texts state these ratios
    from pathlib import Path

    from neuralcore.vectors._select import describe_backend

    root = Path(native.__file__).resolve().parents[4]
    setup = (root / "setup.py").read_text()
    source = Path(native.__file__).read_text()
    monkeypatch.setattr(native, "_ACCEL", None)  # fault injection: the glue not built
    detail = describe_backend("vectors").detail
    for text in (" ".join(setup.split()), " ".join(source.split()), detail):
        assert "~1.9x" in text, text[:300]
        assert "~0.7x" in text, text[:300]
    for stale in ("~2.8x", "~1.8x", "~1.1x", "~0.6x"):
        assert stale not in setup + source + detail, stale
