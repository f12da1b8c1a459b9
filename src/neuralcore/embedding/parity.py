"""The parity gate and its text sets, for checking a converted model against a reference.

A variant passes the gate when, on :func:`parity_texts` (prose, code, Markdown, tables,
short queries, other languages and hostile strings), its worst cosine against
sentence-transformers is at least :data:`GATE_COSINE` and the mean top-10 retrieval
overlap of :func:`parity_queries` is at least :data:`GATE_TOP10`; :func:`compare` measures
both. Conversion runs the gate on every variant and records the fastest passing one as the
model's default (``neuralcore models info NAME`` shows the figures). The file-based texts
are read with :func:`read_module` (source and :mod:`ast` tree, no import).

>>> from neuralcore.embedding.parity import GATE_COSINE, parity_texts
>>> GATE_COSINE, len(parity_texts()) > 200
(0.99, True)
"""

from neuralcore.embedding._corpus import (
    benchmark_texts,
    calibration_texts,
    hostile_texts,
    parity_texts,
    read_module,
)
from neuralcore.embedding._parity import (
    EXACT_COSINE,
    GATE_COSINE,
    GATE_TOP10,
    Parity,
    compare,
    parity_queries,
)

__all__ = (
    "EXACT_COSINE",
    "GATE_COSINE",
    "GATE_TOP10",
    "Parity",
    "benchmark_texts",
    "calibration_texts",
    "compare",
    "hostile_texts",
    "parity_queries",
    "parity_texts",
    "read_module",
)
