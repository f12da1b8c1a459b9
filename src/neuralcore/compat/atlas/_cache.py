"""A drop-in for ATLAS's query-result cache whose semantic scan is one matrix product.

Same constructor, ``stats`` keys, ``get``/``set``/``clear``/``invalidate_knowledge_base`` and
matching rules as ATLAS's ``QueryResultCache``: exact hits by a hash of the normalised query
and knowledge-base ids, then (given a query embedding) the most similar live entry at or
above ``similarity_threshold``. With a working numpy, query embeddings are kept in a float64
matrix, rebuilt only when entries change, so a lookup scans thousands of entries without a
Python loop; without one (or with ATLAS's test stub in its place) the scan is ATLAS's loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from threading import RLock
from typing import Any

from neuralcore.compat.atlas._np import real_numpy
from neuralcore.compat.atlas._vectors import _np_row_cosines, _py_cosine

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
        self._matrix: tuple[list[str], Any] | None = None
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

    def _best_match(self, query_embedding: Sequence[float]) -> str | None:
        keys, scores = self._scores(query_embedding)
        if not keys:
            return None
        top = max(range(len(keys)), key=scores.__getitem__)  # the first of equal best wins
        entry = self._cache.get(keys[top])
        if entry is not None and not entry.is_expired:
            order: Iterable[int] = (top,)
        else:  # the best one expired: walk down in score order, as ATLAS's scan would pick
            order = sorted(range(len(keys)), key=lambda i: -scores[i])
        for i in order:
            score = scores[i]
            if not (score > 0.0 and score >= self._similarity_threshold):
                return None
            entry = self._cache.get(keys[i])
            if entry is not None and not entry.is_expired:
                logger.debug("semantic cache hit: %.3f similarity", score)
                return keys[i]
        return None

    def _scores(self, query: Sequence[float]) -> tuple[list[str], list[float]]:
        """Keys of stored embeddings of the query's length, and their cosine to ``query``."""
        dim = len(query)
        np = real_numpy()
        if np is None:
            keys = [k for k, v in self._query_embeddings.items() if len(v) == dim]
            return keys, [_py_cosine(self._query_embeddings[k], query) for k in keys]
        if self._matrix is None or self._matrix[1].shape[1] != dim:
            keys = [k for k, v in self._query_embeddings.items() if len(v) == dim]
            rows = np.asarray([self._query_embeddings[k] for k in keys], dtype=np.float64)
            self._matrix = (keys, rows.reshape(len(keys), dim))
        keys, rows = self._matrix
        if not keys:
            return [], []
        scores = _np_row_cosines(np, rows, np.asarray(query, dtype=np.float64))
        return keys, scores.tolist()

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
                self._query_embeddings[key] = list(query_embedding)
                self._matrix = None

    def _forget(self, key: str, *, entry_gone: bool = False) -> None:
        if not entry_gone:
            self._cache.pop(key, None)
        if self._query_embeddings.pop(key, None) is not None:
            self._matrix = None

    def invalidate_knowledge_base(self, kb_id: str) -> int:
        """Drop everything (entries do not record their knowledge bases); returns the count."""
        return self.clear()

    def clear(self) -> int:
        """Drop all entries and reset the counters; returns how many entries there were."""
        with self._lock:
            count = len(self._cache)
            self._cache.clear()
            self._query_embeddings.clear()
            self._matrix = None
            self._hits = self._misses = self._semantic_hits = 0
            return count
