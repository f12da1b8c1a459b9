"""The similarity drop-ins agree with ATLAS's pure-Python rules (restated here as loops)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralcore.compat.atlas import (
    adjacent_similarities,
    best_semantic_match,
    buffer_similarity,
    cosine_similarity,
    semantic_breaks,
)
from neuralcore.core import DimensionMismatchError

finite = st.floats(-100, 100, allow_nan=False, width=64)
vec = st.lists(finite, min_size=1, max_size=12)


def ref_cosine(a: list[float], b: list[float]) -> float:
    """ATLAS's rule: sum of products over the product of norms; 0.0 for a zero vector."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = sum(x * x for x in a) ** 0.5, sum(y * y for y in b) ** 0.5
    return 0.0 if na == 0 or nb == 0 else dot / (na * nb)


@given(
    st.integers(1, 12).flatmap(lambda n: st.tuples(*[st.lists(finite, min_size=n, max_size=n)] * 2))
)
def test_cosine_matches_reference(pair: tuple[list[float], list[float]]) -> None:
    a, b = pair
    assert cosine_similarity(a, b) == pytest.approx(ref_cosine(a, b), rel=1e-9, abs=1e-12)


def test_cosine_of_zero_vector_is_zero() -> None:
    assert cosine_similarity([0.0, 0.0], [1.0, 2.0]) == 0.0


def test_cosine_rejects_mismatched_lengths_as_value_error() -> None:
    with pytest.raises(ValueError, match="same dimension") as info:
        cosine_similarity([1.0, 2.0], [1.0])
    assert isinstance(info.value, DimensionMismatchError)


def ref_buffer(embs: list[list[float]], idx: int, size: int) -> float:
    if idx <= 0:
        return 1.0
    sims = [ref_cosine(embs[i], embs[idx]) for i in range(max(0, idx - size), idx)]
    return sum(sims) / len(sims) if sims else 1.0


@settings(max_examples=60)
@given(
    st.integers(2, 4).flatmap(
        lambda d: st.lists(st.lists(finite, min_size=d, max_size=d), min_size=1, max_size=8)
    ),
    st.integers(-1, 9),
    st.integers(1, 4),
)
def test_buffer_similarity_matches_reference(embs: list[list[float]], idx: int, size: int) -> None:
    idx = min(idx, len(embs) - 1)
    got = buffer_similarity(embs, idx, buffer_size=size)
    assert got == pytest.approx(ref_buffer(embs, idx, size), rel=1e-9, abs=1e-12)


def test_adjacent_similarities_pairs_each_with_previous() -> None:
    embs = [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 3.0]]
    expected = [ref_cosine(embs[i - 1], embs[i]) for i in range(1, 4)]
    assert adjacent_similarities(embs) == pytest.approx(expected)
    assert adjacent_similarities(embs[:1]) == []


def ref_breaks(sents, embs, thr, size_limit, lo, hi):  # type: ignore[no-untyped-def]
    """ATLAS's splitter loop, restated."""
    out, size, count = [], 0, 0
    for i in range(1, len(sents)):
        size += len(sents[i - 1])
        count += 1
        cut = ref_cosine(embs[i - 1], embs[i]) < thr
        cut = cut or size + len(sents[i]) > size_limit or count >= hi
        if count < lo:
            cut = False
        if cut:
            out.append(i)
            size = count = 0
    return out


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.text(max_size=30), st.lists(finite, min_size=3, max_size=3)), max_size=12
    ),
    st.floats(-1, 1),
    st.integers(10, 80),
    st.integers(1, 3),
    st.integers(1, 6),
)
def test_semantic_breaks_match_reference(rows, thr, limit, lo, hi) -> None:  # type: ignore[no-untyped-def]
    sents = [r[0] for r in rows]
    embs = [r[1] for r in rows]
    got = semantic_breaks(
        sents, embs, similarity_threshold=thr, chunk_size=limit,
        min_sentences_per_chunk=lo, max_sentences_per_chunk=hi,
    )  # fmt: skip
    assert got == ref_breaks(sents, embs, thr, limit, lo, hi)


def ref_scan(query, cached, threshold, eligible):  # type: ignore[no-untyped-def]
    """ATLAS's cache scan: strictly better and >= threshold, skipping ineligible entries."""
    best, best_sim = None, 0.0
    for key, emb in cached.items():
        sim = ref_cosine(query, emb) if len(emb) == len(query) else 0.0
        if sim > best_sim and sim >= threshold and eligible(key):
            best, best_sim = key, sim
    return best, best_sim


@settings(max_examples=80)
@given(
    st.lists(st.sampled_from([0.0, 1.0, -1.0, 0.5]), min_size=3, max_size=3),
    st.dictionaries(
        st.text(min_size=1, max_size=3),
        st.lists(st.sampled_from([0.0, 1.0, -1.0, 0.5]), min_size=2, max_size=3),
        max_size=8,
    ),
    st.floats(-1, 1),
    st.sets(st.text(min_size=1, max_size=3)),
)
def test_best_match_picks_the_same_entry(query, cached, threshold, banned) -> None:  # type: ignore[no-untyped-def]
    def eligible(key: str) -> bool:
        return key not in banned

    key, sim = best_semantic_match(query, cached, threshold=threshold, eligible=eligible)
    ref_key, ref_sim = ref_scan(query, cached, threshold, eligible)
    assert key == ref_key
    assert sim == pytest.approx(ref_sim, abs=1e-12)


def test_best_match_tie_goes_to_the_first_entry() -> None:
    cached = {"first": [2.0, 0.0], "second": [1.0, 0.0]}
    assert best_semantic_match([1.0, 0.0], cached, threshold=0.5)[0] == "first"


def test_best_match_nothing_qualifies() -> None:
    assert best_semantic_match([1.0, 0.0], {"a": [0.0, 1.0]}, threshold=0.1) == (None, 0.0)
    assert best_semantic_match([1.0, 0.0], {}, threshold=0.1) == (None, 0.0)


def test_accepts_numpy_input() -> None:
    a = np.array([3.0, 4.0], dtype=np.float32)
    assert math.isclose(cosine_similarity(a, a), 1.0, rel_tol=1e-6)


def _atlas_in_memory_loop(lhs: Any, rhs: Any) -> float:
    """ATLAS's in-memory vector store loop: raises on mismatched lengths."""
    if len(lhs) != len(rhs):
        raise LookupError("Query vector dimensionality mismatch.")
    dot = sum(a * b for a, b in zip(lhs, rhs, strict=True))
    lm = math.sqrt(sum(a * a for a in lhs))
    rm = math.sqrt(sum(b * b for b in rhs))
    if lm == 0 or rm == 0:
        return 0.0
    return dot / (lm * rm)


def test_accelerated_matches_the_loop_and_keeps_its_edge_rules() -> None:
    import random

    from neuralcore.compat.atlas import accelerated

    fast = accelerated(_atlas_in_memory_loop)
    rnd = random.Random(5)
    for dim in (16, 384, 1536):
        a = [rnd.gauss(0, 1) for _ in range(dim)]
        b = [rnd.gauss(0, 1) for _ in range(dim)]
        assert fast(a, b) == pytest.approx(_atlas_in_memory_loop(a, b), rel=1e-12, abs=1e-15)
    with pytest.raises(LookupError, match="dimensionality"):
        fast([1.0] * 20, [1.0] * 21)  # the loop's own error, not ours
    assert fast([0.0] * 20, [1.0] * 20) == 0.0
    assert fast([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.0)  # short: the loop itself
    assert fast.__wrapped__ is _atlas_in_memory_loop  # type: ignore[attr-defined]


def test_accelerated_is_the_original_with_the_switch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from neuralcore.compat.atlas import accelerated

    monkeypatch.setenv("NEURALCORE_COMPAT", "off")
    assert accelerated(_atlas_in_memory_loop) is _atlas_in_memory_loop


def test_embedding_vector_is_a_list_with_its_row() -> None:
    from neuralcore.compat.atlas import EmbeddingVector

    v = EmbeddingVector([3.0, 4.0] * 10, np.asarray([3.0, 4.0] * 10))
    assert v == [3.0, 4.0] * 10
    assert isinstance(v, list)
    assert json.loads(json.dumps(v)) == [3.0, 4.0] * 10
    assert v.norm == pytest.approx(math.sqrt(250.0))
    assert cosine_similarity(v, v) == pytest.approx(1.0)


def test_accelerated_method_binds_and_hands_self_to_the_loop_for_edge_cases() -> None:
    import random

    from neuralcore.compat.atlas import accelerated

    class Calc:
        def __init__(self) -> None:
            self.loop_calls = 0

        def sim(self, a: Any, b: Any) -> float:
            self.loop_calls += 1
            return _atlas_in_memory_loop(a, b)

    original = Calc.sim
    Calc.sim = accelerated(original, method=True)  # type: ignore[method-assign,assignment]
    calc = Calc()
    rnd = random.Random(11)
    a, b = [rnd.gauss(0, 1) for _ in range(384)], [rnd.gauss(0, 1) for _ in range(384)]
    assert calc.sim(a, b) == pytest.approx(_atlas_in_memory_loop(a, b), rel=1e-12)
    assert calc.loop_calls == 0  # the common case never reaches the loop
    assert calc.sim([0.0] * 20, [1.0] * 20) == 0.0
    with pytest.raises(LookupError, match="dimensionality"):
        calc.sim([1.0] * 20, [1.0] * 21)
    with pytest.raises(TypeError):  # numeric strings: the loop's own error, not a parse
        calc.sim(["2"] * 20, ["2"] * 20)
    assert calc.loop_calls == 3
    assert Calc.sim.__wrapped__ is original  # type: ignore[attr-defined]
    assert Calc.sim.__qualname__ == original.__qualname__


def test_accelerated_leaves_components_numpy_would_coerce_to_the_loop() -> None:
    from neuralcore.compat.atlas import accelerated

    seen: list[tuple[Any, Any]] = []

    def loop(a: Any, b: Any) -> float:
        seen.append((a, b))
        return -2.0  # the loop's own answer, whatever it is

    fast = accelerated(loop)
    for odd in (["1.0"] * 20, [10**400] * 20, [[1.0]] * 20, [1.0 + 1j] * 20):
        assert fast(odd, [1.0] * 20) == -2.0
    assert fast(tuple([1.0] * 20), [2.0] * 20) == pytest.approx(1.0)  # tuples: the kernel
    assert len(seen) == 4
