"""Fixtures for the vector-kernel tests; puts this folder on sys.path for vector_oracle."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from neuralcore.vectors import VectorOps

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from vector_oracle import VECTOR_BACKENDS  # noqa: E402  (needs the path set above)


@pytest.fixture(params=VECTOR_BACKENDS)
def vector_ops(request: pytest.FixtureRequest) -> VectorOps:
    """A :class:`VectorOps` for each backend."""
    return VectorOps(backend=request.param)
