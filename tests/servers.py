"""Real servers for integration tests: re-exported from :mod:`neuralcore._testing`.

One harness for tests and benchmarks; this module keeps the import path ``servers`` that
the test modules use.
"""

from __future__ import annotations

from neuralcore._testing import (
    DurableRedisServer,
    RedisServer,
    TansuServer,
    free_port,
    tansu_binary,
)

__all__ = ("DurableRedisServer", "RedisServer", "TansuServer", "free_port", "tansu_binary")
