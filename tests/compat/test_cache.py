"""QueryResultCache keeps the contract of ATLAS's query-result cache."""

from __future__ import annotations

import time

import pytest

from neuralcore.compat.atlas import CacheEntry, QueryResultCache


def test_exact_hit_ignores_case_and_surrounding_space() -> None:
    cache = QueryResultCache()
    cache.set("  What is Python ", ["a"])
    assert cache.get("what is python") == ["a"]
    assert cache.stats["hits"] == 1
    assert cache.stats["semantic_hits"] == 0


def test_knowledge_base_ids_are_part_of_the_key_in_any_order() -> None:
    cache = QueryResultCache()
    cache.set("q", 1, knowledge_base_ids=["b", "a"])
    assert cache.get("q", knowledge_base_ids=["a", "b"]) == 1
    assert cache.get("q") is None
    assert cache.get("q", knowledge_base_ids=["a"]) is None


def test_semantic_hit_needs_the_threshold() -> None:
    cache = QueryResultCache(similarity_threshold=0.99)
    cache.set("first", "r1", query_embedding=[1.0, 0.0])
    assert cache.get("other", query_embedding=[1.0, 0.3]) is None  # cos 0.958
    assert cache.get("other", query_embedding=[1.0, 0.05]) == "r1"  # cos 0.9988
    assert cache.stats == {
        "size": 1, "max_size": 1000, "hits": 1, "semantic_hits": 1, "misses": 1,
        "hit_rate": 0.5, "ttl_seconds": 300,
    }  # fmt: skip


def test_semantic_scan_prefers_the_most_similar_entry() -> None:
    cache = QueryResultCache(similarity_threshold=0.5)
    cache.set("a", "A", query_embedding=[1.0, 1.0])
    cache.set("b", "B", query_embedding=[1.0, 0.1])
    cache.set("c", "C", query_embedding=[0.0, 1.0])
    assert cache.get("zz", query_embedding=[1.0, 0.0]) == "B"
    assert cache.get("zz", query_embedding=[0.1, 1.0]) == "C"


def test_expired_entries_are_neither_exact_nor_semantic_hits() -> None:
    cache = QueryResultCache(ttl_seconds=0.05, similarity_threshold=0.5)
    cache.set("old", "stale", query_embedding=[1.0, 0.0])
    deadline = time.monotonic() + 10.0
    while cache.get("old") is not None:  # wait for the TTL to pass, not a fixed sleep
        assert time.monotonic() < deadline, "entry never expired"
        time.sleep(0.005)
    cache.set("new", "fresh", query_embedding=[1.0, 0.5])
    assert cache.get("old") is None
    assert cache.get("x", query_embedding=[1.0, 0.0]) == "fresh"


def test_mismatched_embedding_lengths_never_match() -> None:
    cache = QueryResultCache(similarity_threshold=0.1)
    cache.set("a", "A", query_embedding=[1.0, 0.0, 0.0])
    assert cache.get("x", query_embedding=[1.0, 0.0]) is None
    cache.set("b", "B", query_embedding=[1.0, 0.0])
    assert cache.get("x", query_embedding=[1.0, 0.0]) == "B"


def test_oldest_entry_is_evicted_with_its_embedding() -> None:
    cache = QueryResultCache(max_size=2, similarity_threshold=0.9)
    cache.set("a", "A", query_embedding=[1.0, 0.0])
    cache.set("b", "B", query_embedding=[0.0, 1.0])
    cache.set("c", "C", query_embedding=[1.0, 1.0])
    assert cache.stats["size"] == 2
    assert cache.get("a") is None
    assert cache.get("x", query_embedding=[1.0, 0.0]) is None  # A's embedding went too
    assert cache.get("b") == "B"


def test_clear_and_invalidate_reset_everything() -> None:
    cache = QueryResultCache()
    cache.set("a", 1)
    cache.get("a")
    assert cache.invalidate_knowledge_base("kb") == 1
    assert cache.stats["hits"] == 0
    assert cache.get("a") is None
    assert cache.clear() == 0


def test_cache_entry_expiry_and_touch() -> None:
    entry = CacheEntry(value=1, expires_at=time.time() - 1)
    assert entry.is_expired
    entry.touch()
    assert entry.access_count == 1


@pytest.mark.parametrize("n", [1, 50, 500])
def test_scan_scales_and_finds_planted_neighbour(n: int) -> None:
    import numpy as np

    rng = np.random.default_rng(n)
    cache = QueryResultCache(max_size=n + 1, similarity_threshold=0.999)
    for i in range(n):
        cache.set(f"q{i}", i, query_embedding=rng.normal(size=16).tolist())
    target = rng.normal(size=16)
    cache.set("target", "T", query_embedding=target.tolist())
    assert cache.get("?", query_embedding=(target * 3).tolist()) == "T"


def _atlas_pick(
    cache: QueryResultCache, vectors: dict[str, list[float]], query: list[float], threshold: float
) -> str | None:
    """ATLAS's scan restated: insertion order, strict '>' so the earliest best wins."""
    best_key, best = None, 0.0
    for key, stored in vectors.items():
        entry = cache._cache.get(key)
        if entry is None or len(stored) != len(query):
            continue
        dot = sum(a * b for a, b in zip(stored, query, strict=True))
        na, nb = sum(a * a for a in stored) ** 0.5, sum(b * b for b in query) ** 0.5
        score = 0.0 if na == 0 or nb == 0 else dot / (na * nb)
        if score > best and score >= threshold and not entry.is_expired:
            best_key, best = key, score
    return best_key


def test_scan_picks_what_atlas_picks_under_churn() -> None:
    import random

    rnd = random.Random(3)
    threshold = 0.8
    cache = QueryResultCache(max_size=60, ttl_seconds=None, similarity_threshold=threshold)
    basis = [[rnd.gauss(0, 1) for _ in range(24)] for _ in range(5)]
    for step in range(400):
        base = basis[rnd.randrange(5)]
        vec = [x + rnd.choice([0.0, 0.0, 0.05, 0.3]) * rnd.gauss(0, 1) for x in base]
        if rnd.random() < 0.15:
            vec = list(base)  # exact duplicates: ties go to the earliest stored
        if rnd.random() < 0.6:
            cache.set(f"q{rnd.randrange(90)}", step, query_embedding=vec)
        else:
            want = _atlas_pick(cache, cache._query_embeddings, vec, threshold)
            got = cache._best_match(vec)
            assert got == want, step
