"""The parity gate, and the choice of a model's default variant at conversion.

A variant passes the gate when, on :func:`~neuralcore.embedding._corpus.parity_texts`
(every kind of text, hostile strings included), its worst cosine against
sentence-transformers is at least :data:`GATE_COSINE` and the mean overlap of its top-10
retrieval with sentence-transformers' is at least :data:`GATE_TOP10`. The default variant
is the fastest one that passes; the exact variant the fastest one whose worst cosine is at
least :data:`EXACT_COSINE`. Speed is measured on this machine, warm, on 100 texts.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from neuralcore.embedding._corpus import benchmark_texts, parity_texts

__all__ = (
    "EXACT_COSINE",
    "GATE_COSINE",
    "GATE_TOP10",
    "Parity",
    "choose",
    "compare",
    "measure_variants",
    "parity_queries",
)

logger = logging.getLogger(__name__)

GATE_COSINE = 0.99
GATE_TOP10 = 0.95
EXACT_COSINE = 0.9999
_CANDIDATES = (
    "fp32",
    "int8",
    "openvino-bf16",
    "openvino-int8",
    "openvino-int8-bf16",
)
_TIMED_ROUNDS = 2


class Parity(NamedTuple):
    """How one variant compares with the reference on the parity set."""

    min_cosine: float
    top10: float
    worst: int  # index of the text with the lowest cosine


def parity_queries(texts: Sequence[str]) -> list[str]:
    """The retrieval queries of the gate: the short, non-blank texts of the parity set.

    Examples
    --------
    >>> parity_queries(["", "short query", "x" * 500])
    ['short query']
    """
    return [t for t in texts if t.strip() and len(t) <= 80]


def _unit(a: NDArray[Any]) -> NDArray[np.float64]:
    a = np.asarray(a, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    unit: NDArray[np.float64] = a / np.maximum(norms, 1e-12)
    return unit


def compare(
    vectors: NDArray[Any],
    query_vectors: NDArray[Any],
    reference: NDArray[Any],
    reference_queries: NDArray[Any],
) -> Parity:
    """Worst cosine per text and mean top-10 overlap of query retrieval vs the reference.

    Examples
    --------
    >>> a = np.eye(12, dtype=np.float32)
    >>> compare(a, a[:2], a, a[:2]).min_cosine
    1.0
    """
    ours, ref = _unit(vectors), _unit(reference)
    cosines = (ours * ref).sum(axis=1)
    k = min(10, len(ref))
    mine = np.argsort(-(ours @ _unit(query_vectors).T), axis=0, kind="stable")[:k]
    theirs = np.argsort(-(ref @ _unit(reference_queries).T), axis=0, kind="stable")[:k]
    overlaps = [len(set(mine[:, q]) & set(theirs[:, q])) / k for q in range(mine.shape[1])]
    top10 = float(np.mean(overlaps)) if overlaps else 1.0
    worst = int(np.argmin(cosines))
    return Parity(round(float(cosines[worst]), 6), round(top10, 4), worst)


def _sentence_transformers(source: Path) -> Callable[[list[str]], NDArray[np.float32]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # third-party import-time notices
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(source), device="cpu")

    def embed(texts: list[str]) -> NDArray[np.float32]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(
                model.encode(texts, batch_size=32, show_progress_bar=False), dtype=np.float32
            )

    return embed


def measure_variants(folder: Path, source: Path, variants: Sequence[str]) -> dict[str, Any]:
    """Parity and speed of each variant of the converted ``folder`` vs sentence-transformers.

    Returns ``{"parity": {variant: row}, "default": name, "exact": name}``; each row holds
    ``min_cosine``, ``top10``, ``worst_text`` (its first 40 characters), ``ms_100`` and
    ``passes``. Variants whose runtime is not installed are left out.
    """
    from neuralcore.embedding._engine import EmbeddingEngine
    from neuralcore.embedding._models import VARIANTS

    texts = parity_texts()
    queries = parity_queries(texts)
    timed = benchmark_texts(100)
    st = _sentence_transformers(source)
    reference, reference_queries = st(texts), st(queries)
    embedders: dict[str, Callable[[list[str]], Any]] = {"sentence-transformers": st}
    rows: dict[str, dict[str, Any]] = {}
    for name in (v for v in _CANDIDATES if v in variants):
        if importlib.util.find_spec(VARIANTS[name].runtime) is None:
            continue
        engine = EmbeddingEngine(folder, variant=name)
        parity = compare(engine.embed(texts), engine.embed(queries), reference, reference_queries)
        embedders[name] = engine.embed
        rows[name] = {
            "min_cosine": parity.min_cosine,
            "top10": parity.top10,
            "worst_text": texts[parity.worst][:40],
            "passes": parity.min_cosine >= GATE_COSINE and parity.top10 >= GATE_TOP10,
        }
    # timed round-robin, best of rounds: a load spike on a shared machine hits every
    # contender alike instead of whichever happened to run during it
    best = {name: float("inf") for name in embedders}
    for embed in embedders.values():
        embed(timed)  # warm: shapes compiled, arenas grown
    for _ in range(_TIMED_ROUNDS):
        for name, embed in embedders.items():
            start = time.perf_counter()
            embed(timed)
            best[name] = min(best[name], time.perf_counter() - start)
    for name, row in rows.items():
        row["ms_100"] = round(best[name] * 1000, 1)
        row["vs_sentence_transformers"] = round(best["sentence-transformers"] / best[name], 2)
        logger.info("variant %s: %s", name, row)
    default, exact = choose(rows)
    return {"parity": rows, "default": default, "exact": exact}


def choose(rows: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(default, exact): the fastest variant passing the gate / with fp32 parity.

    Falls back to ``fp32`` when none qualifies.

    Examples
    --------
    >>> rows = {
    ...     "fp32": {"min_cosine": 1.0, "top10": 1.0, "ms_100": 500.0, "passes": True},
    ...     "openvino-int8": {"min_cosine": 0.995, "top10": 0.97, "ms_100": 120.0, "passes": True},
    ...     "int8": {"min_cosine": 0.98, "top10": 0.94, "ms_100": 100.0, "passes": False},
    ... }
    >>> choose(rows)
    ('openvino-int8', 'fp32')
    """
    passing = [(r["ms_100"], n) for n, r in rows.items() if r["passes"]]
    exact = [(r["ms_100"], n) for n, r in rows.items() if r["min_cosine"] >= EXACT_COSINE]
    return (min(passing)[1] if passing else "fp32", min(exact)[1] if exact else "fp32")
