"""The public vector API: exported names, module functions vs VectorOps, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import neuralcore
import neuralcore.vectors as nv
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
def test_signatures_show_allow_nonfinite_as_keyword_only(backend: str, name: str) -> None:
    # the pair kernels take it as a plain parameter (CPython specialises that call); what
    # help() and inspect show is the documented keyword-only signature
    import inspect

    ops = VectorOps(backend=backend)
    for function in (getattr(nv, name), getattr(ops, name)):
        params = inspect.signature(function).parameters
        assert list(params) == ["a", "b", "allow_nonfinite"]
        assert params["allow_nonfinite"].kind is inspect.Parameter.KEYWORD_ONLY
