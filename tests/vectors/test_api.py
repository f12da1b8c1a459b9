"""The public vector API: exported names, module functions vs VectorOps, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import neuralcore
import neuralcore.vectors as nv
from neuralcore.errors import InputTypeError, NonFiniteError
from neuralcore.vectors import VectorOps

FUNCTIONS = (
    "cosine_similarity",
    "cosine_distance",
    "dot",
    "euclidean_distance",
    "sqeuclidean_distance",
)


def test_exported_names_are_pinned() -> None:
    assert nv.__all__ == (
        "Corpus",
        "HNSWIndex",
        "VectorOps",
        "cosine_distance",
        "cosine_similarity",
        "dot",
        "euclidean_distance",
        "normalize",
        "sqeuclidean_distance",
        "top_k",
    )
    for name in set(nv.__all__) & set(neuralcore.__all__):  # the lead adds Corpus on top
        assert getattr(neuralcore, name) is getattr(nv, name)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_module_functions_match_the_default_instance(name: str) -> None:
    rng = np.random.default_rng(3)
    a, m = (
        rng.standard_normal(16).astype(np.float32),
        rng.standard_normal((4, 16)).astype(np.float32),
    )
    ops = VectorOps()
    assert getattr(nv, name)(a, m[0]) == getattr(ops, name)(a, m[0])
    np.testing.assert_array_equal(getattr(nv, name)(a, m), getattr(ops, name)(a, m))


def test_module_top_k_and_normalize_match_the_instance() -> None:
    rng = np.random.default_rng(4)
    m = rng.standard_normal((30, 8))
    ops = VectorOps()
    for got, want in zip(
        nv.top_k(m[0], m, 3, metric="ip"), ops.top_k(m[0], m, 3, metric="ip"), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(nv.normalize(m), ops.normalize(m))


@pytest.mark.parametrize("backend", ["native", "python"])
def test_threads_give_the_same_answers(backend: str) -> None:
    """Concurrent calls share nothing mutable: results equal the sequential ones."""
    rng = np.random.default_rng(5)
    queries, m = rng.standard_normal((8, 64)), rng.standard_normal((200, 64))
    ops = VectorOps(backend=backend, threads=2)
    sequential = [np.asarray(ops.cosine_similarity(q, m)) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda q: np.asarray(ops.cosine_similarity(q, m)), queries))
    for one, other in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(one, other)


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_signatures_show_what_is_accepted(backend: str, name: str) -> None:
    # the pair kernels take allow_nonfinite as a plain parameter (CPython 3.11 specialises
    # that call, a keyword-only one costs ~20 ns more): help() and inspect say so
    import inspect

    ops = VectorOps(backend=backend)
    for function in (getattr(nv, name), getattr(ops, name)):
        params = inspect.signature(function).parameters
        assert list(params) == ["a", "b", "allow_nonfinite"]
        assert params["allow_nonfinite"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("flag", ["yes", 1, 0, 2.5, np.array(True)])
def test_a_bad_allow_nonfinite_is_refused_however_passed(
    backend: str, name: str, flag: object
) -> None:
    # the flag is checked whenever it is given, also when the fast kernel has the answer
    a, b = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
    ops = VectorOps(backend=backend)
    functions = [getattr(ops, name)] + ([getattr(nv, name)] if backend == "native" else [])
    for function in functions:
        for f32 in (False, True):
            x, y = (a.astype(np.float32), b.astype(np.float32)) if f32 else (a, b)
            with pytest.raises(InputTypeError, match="allow_nonfinite must be True or False"):
                function(x, y, flag)
            with pytest.raises(InputTypeError, match="allow_nonfinite must be True or False"):
                function(x, y, allow_nonfinite=flag)
        with pytest.raises(TypeError):
            function(a, b, True, 4)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_allow_nonfinite_by_position_answers_as_by_keyword(name: str) -> None:
    a, n = [1.0, 2.0, 3.0], [1.0, float("inf"), 3.0]
    for ops in (nv, VectorOps(backend="native"), VectorOps(backend="python")):
        function = getattr(ops, name)
        for flag in (True, np.bool_(True)):
            by_position, by_keyword = function(a, n, flag), function(a, n, allow_nonfinite=flag)
            np.testing.assert_equal(by_position, by_keyword)
        with pytest.raises(NonFiniteError):
            function(a, n, False)
