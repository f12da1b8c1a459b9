"""Approximate nearest-neighbour search: :class:`HNSWIndex` and its engines.

One module per engine behind one small interface: ``_faiss`` (the HNSW graph) and
``_exact`` (numpy brute force: the fallback and the reference); ``_file`` is the container
format, ``_graph`` validates a stored graph before any native library sees it.
"""

from neuralcore.vectors.hnsw._index import HNSWIndex

__all__ = ("HNSWIndex",)
