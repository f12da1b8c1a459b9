"""Token vectors to sentence vectors, and the output forms: what the engine applies.

:func:`pool` turns a ``(batch, seq, dim)`` model output and its attention mask into one
vector per text (mean, CLS, max or last token), :func:`l2_normalize` scales rows to unit
length, and :func:`finalize` applies matryoshka truncation and the output dtype.

>>> import numpy as np
>>> from neuralcore.embedding.pooling import pool
>>> pool(np.ones((1, 2, 3), dtype=np.float32), np.array([[1, 0]]), "mean").tolist()
[[1.0, 1.0, 1.0]]
"""

from neuralcore.embedding._pooling import OutputDtype, finalize, l2_normalize, pool

__all__ = ("OutputDtype", "finalize", "l2_normalize", "pool")
