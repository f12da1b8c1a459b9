"""Real servers for integration tests: a re-export of :mod:`neuralcore._testing`.

One harness for tests and benchmarks. New tests import ``neuralcore._testing`` directly
(the bridge tests do); this path stays for the tests that still import ``servers``
(``tests/test_demo.py``, ``tests/test_readme.py``).
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
