"""A drop-in for ATLAS's query-result cache whose semantic scan is one matrix product.

Same constructor, ``stats`` keys, ``get``/``set``/``clear``/``invalidate_knowledge_base`` and
matching rules as ATLAS's ``QueryResultCache``: exact hits by a hash of the normalised query
and knowledge-base ids, then (given a query embedding) the most similar live entry at or
above ``similarity_threshold``. With a working numpy, query embeddings are kept in a
:class:`neuralcore.vectors.Corpus` (normalised once, when stored), so a lookup is one
matrix-vector product however many entries there are; the few best are then rescored in
float64 as ATLAS scores them, so the same entry wins. Without numpy (or with ATLAS's test
stub in its place) the scan is ATLAS's loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from threading import RLock
from typing import Any

from neuralcore.compat.atlas._np import real_numpy
from neuralcore.compat.atlas._vectors import _py_cosine

__all__ = ("CacheEntry", "QueryResultCache")

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class CacheEntry:
    """One cached value with its timestamps (the fields of ATLAS's cache entry).

    Examples
    --------
    >>> CacheEntry(value=1).is_expired
    False
    """

    value: Any
    created_at: float = dataclasses.field(default_factory=time.time)
    expires_at: float | None = None
    access_count: int = 0
    last_accessed: float = dataclasses.field(default_factory=time.time)

    @property
    def is_expired(self) -> bool:
        """True once ``expires_at`` has passed."""
        return self.expires_at is not None and time.time() > self.expires_at

    def touch(self) -> None:
        """Record one access."""
        self.last_accessed = time.time()
        self.access_count += 1


class QueryResultCache:
    """Cache of retrieval results keyed by query, with semantic near-duplicate matching.

    Parameters
    ----------
    max_size
        Most entries kept; the least recently stored is evicted first.
    ttl_seconds
        Lifetime of an entry, or ``None``/``0`` for no expiry.
    similarity_threshold
        Minimum cosine similarity for a semantic hit.
    embedding_cache
        Accepted for interface compatibility (ATLAS passes its embedding cache); unused.

    Examples
    --------
    >>> cache = QueryResultCache(similarity_threshold=0.9)
    >>> cache.set("what is python", ["doc1"], query_embedding=[1.0, 0.0])
    >>> cache.get("What is Python?", query_embedding=[0.99, 0.05])
    ['doc1']
    >>> cache.stats["semantic_hits"]
    1
    """

    def __init__(
        self,
        max_size: int = 1000,
        ttl_seconds: float | None = 300,
        similarity_threshold: float = 0.95,
        embedding_cache: Any = None,
    ) -> None:
        self._max_size = max_size
        self._ttl_seconds = ttl_seconds
        self._similarity_threshold = similarity_threshold
        self._embedding_cache = embedding_cache
        self._cache: OrderedDict[str, CacheEntry] = OrderedDict()
        self._query_embeddings: dict[str, list[float]] = {}
        self._rank: dict[str, int] = {}  # key -> its place in _query_embeddings' order
        self._ranks = itertools.count()
        self._scans: dict[int, _Scan] = {}  # vector length -> index of those embeddings
        self._scan_broken = False
        self._lock = RLock()
        self._hits = self._misses = self._semantic_hits = 0

    @property
    def stats(self) -> dict[str, Any]:
        """Size, hits, semantic hits, misses, hit rate and settings."""
        with self._lock:
            total = self._hits + self._misses
            return {
                "size": len(self._cache),
                "max_size": self._max_size,
                "hits": self._hits,
                "semantic_hits": self._semantic_hits,
                "misses": self._misses,
                "hit_rate": self._hits / total if total > 0 else 0.0,
                "ttl_seconds": self._ttl_seconds,
            }

    @staticmethod
    def _hash_key(query: str, knowledge_base_ids: Sequence[str] | None = None) -> str:
        parts = [query.lower().strip()]
        if knowledge_base_ids:
            parts.append(",".join(sorted(knowledge_base_ids)))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def get(
        self,
        query: str,
        knowledge_base_ids: Sequence[str] | None = None,
        query_embedding: Sequence[float] | None = None,
    ) -> Any | None:
        """The cached result for ``query`` (exact, then semantic), or ``None``."""
        key = self._hash_key(query, knowledge_base_ids)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and not entry.is_expired:
                self._cache.move_to_end(key)
                entry.touch()
                self._hits += 1
                return entry.value
            if entry is not None:
                self._forget(key)
            return self._semantic_get(query_embedding)

    def _semantic_get(self, query_embedding: Sequence[float] | None) -> Any | None:
        """Scan stored query embeddings; count a semantic hit or a miss."""
        match = None
        if query_embedding is not None and len(query_embedding) > 0:
            match = self._best_match(query_embedding)
        if match is None:
            self._misses += 1
            return None
        entry = self._cache[match]
        entry.touch()
        self._hits += 1
        self._semantic_hits += 1
        return entry.value

    def _best_match(self, query: Sequence[float]) -> str | None:
        """ATLAS's scan: among live, unexpired entries of the query's length whose cosine is
        above 0 and at least the threshold, the highest; ties go to the earliest stored."""
        scan = self._scan_for(len(query))
        if scan is not None:
            return scan.best(self, query)
        best_key, best = None, 0.0
        for key, stored in self._query_embeddings.items():
            if key not in self._cache or len(stored) != len(query):
                continue
            score = _py_cosine(stored, query)
            if score > best and score >= self._similarity_threshold and self._live(key):
                best_key, best = key, score
        if best_key is not None:
            logger.debug("semantic cache hit: %.3f similarity", best)
        return best_key

    def _live(self, key: str) -> bool:
        entry = self._cache.get(key)
        return entry is not None and not entry.is_expired

    def _scan_for(self, dim: int) -> _Scan | None:
        """The vector index of stored embeddings of length ``dim`` (``None``: use the loop,
        when numpy is missing or a stub, or the index could not take a vector)."""
        if self._scan_broken or real_numpy() is None:
            return None
        scan = self._scans.get(dim)
        if scan is None or scan.stale():
            try:
                scan = self._scans[dim] = _Scan(dim, self._query_embeddings, self._rank)
            except (ImportError, ValueError, TypeError):  # no SimSIMD, odd vectors: the loop
                self._scan_broken = True
                return None
        return scan

    def set(
        self,
        query: str,
        result: Any,
        knowledge_base_ids: Sequence[str] | None = None,
        query_embedding: Sequence[float] | None = None,
    ) -> None:
        """Store ``result`` for ``query``, evicting the oldest entries when full."""
        key = self._hash_key(query, knowledge_base_ids)
        expires_at = time.time() + self._ttl_seconds if self._ttl_seconds else None
        with self._lock:
            while self._cache and len(self._cache) >= self._max_size:
                oldest, _ = self._cache.popitem(last=False)
                self._forget(oldest, entry_gone=True)
            self._cache[key] = CacheEntry(value=result, expires_at=expires_at)
            if query_embedding is not None and len(query_embedding) > 0:
                vector = list(query_embedding)
                if key in self._query_embeddings:
                    self._drop_from_scan(key)
                else:
                    self._rank[key] = next(self._ranks)  # dict order, as ATLAS scans it
                self._query_embeddings[key] = vector
                scan = self._scans.get(len(vector))
                if scan is not None and not self._scan_broken:
                    try:
                        scan.add(key, vector)
                    except (ValueError, TypeError):
                        self._scan_broken = True

    def _forget(self, key: str, *, entry_gone: bool = False) -> None:
        if not entry_gone:
            self._cache.pop(key, None)
        if key in self._query_embeddings:
            self._drop_from_scan(key)
            del self._query_embeddings[key]
            del self._rank[key]

    def _drop_from_scan(self, key: str) -> None:
        scan = self._scans.get(len(self._query_embeddings[key]))
        if scan is not None:
            scan.drop(key)

    def invalidate_knowledge_base(self, kb_id: str) -> int:
        """Drop everything (entries do not record their knowledge bases); returns the count."""
        return self.clear()

    def clear(self) -> int:
        """Drop all entries and reset the counters; returns how many entries there were."""
        with self._lock:
            count = len(self._cache)
            self._cache.clear()
            self._query_embeddings.clear()
            self._rank.clear()
            self._scans.clear()
            self._scan_broken = False
            self._hits = self._misses = self._semantic_hits = 0
            return count


class _Scan:
    """Stored query embeddings of one length in a :class:`neuralcore.vectors.Corpus`
    (rows normalised once, when stored), for the cache's semantic lookups.

    The corpus scores in float32; every entry within ``_MARGIN`` of the best is scored
    again in float64 the way ATLAS does, so the pick is ATLAS's pick. Dropped entries are
    masked, and the corpus is rebuilt once most of it is masked.
    """

    _MARGIN = 1e-4

    def __init__(self, dim: int, vectors: dict[str, list[float]], rank: dict[str, int]) -> None:
        from neuralcore.vectors import Corpus

        self.dim, self.rank = dim, rank
        keys = [k for k, v in vectors.items() if len(v) == dim]
        self.keys: list[str | None] = list(keys)
        self.pos = {k: i for i, k in enumerate(keys)}
        self.vectors = vectors
        self.corpus = Corpus([vectors[k] for k in keys] if keys else None, dim=dim)
        self.dead = 0

    def stale(self) -> bool:
        return self.dead > 64 and self.dead * 2 > len(self.keys)

    def add(self, key: str, vector: list[float]) -> None:
        self.corpus.add([vector])
        self.pos[key] = len(self.keys)
        self.keys.append(key)

    def drop(self, key: str) -> None:
        i = self.pos.pop(key, None)
        if i is not None:
            self.keys[i] = None
            self.dead += 1

    def best(self, cache: QueryResultCache, query: Sequence[float]) -> str | None:
        np = real_numpy()
        assert np is not None  # a scan exists only with numpy
        if not self.pos:
            return None
        scores = self.corpus.cosine(query)
        floor = max(cache._similarity_threshold, 0.0) - self._MARGIN
        live = [
            (float(scores[i]), k)
            for i in np.flatnonzero(scores >= floor).tolist()
            if (k := self.keys[i]) is not None and k in cache._cache and cache._live(k)
        ]
        if not live:
            return None
        top = max(score for score, _ in live)
        near = sorted(
            (k for score, k in live if score >= top - self._MARGIN), key=lambda k: self.rank[k]
        )
        q = np.asarray(query, dtype=np.float64)
        best_key, best = None, 0.0
        for key in near:  # ATLAS's float64 cosine; the earliest stored wins a tie
            row = np.asarray(self.vectors[key], dtype=np.float64)
            norms = float(np.sqrt(row @ row)) * float(np.sqrt(q @ q))
            score = float(row @ q) / norms if norms else 0.0
            if score > best and score >= cache._similarity_threshold:
                best_key, best = key, score
        if best_key is not None:
            logger.debug("semantic cache hit: %.3f similarity", best)
        return best_key
