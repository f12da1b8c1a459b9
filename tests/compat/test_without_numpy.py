"""The adapters import and work where numpy is missing or is a stub (ATLAS's test suite
installs one when numpy is not imported yet): every drop-in falls back to the stdlib.

Each case runs in a fresh interpreter, so the stub is in place before anything imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# ATLAS's conftest: a module named numpy with a handful of list-based helpers
_STUB = """
import sys, types
np = types.ModuleType("numpy")
np.array = lambda value: value
np.ndarray = list
np.float32 = "float32"
np.concatenate = lambda items: [x for item in items for x in item]
sys.modules["numpy"] = np
"""
_MISSING = "import sys\nsys.modules['numpy'] = None  # import numpy raises ImportError\n"

_EXERCISE = """
import asyncio, json, math
import neuralcore.compat.atlas as atlas
from neuralcore.compat.atlas import (
    QueryResultCache, accelerated, best_semantic_match, buffer_similarity,
    cosine_similarity, semantic_breaks, NeuralCognitiveBus, ChannelConfig,
    HuggingFaceEmbeddingProvider, EmbeddingVector,
)
out = {}
out["names"] = all(getattr(atlas, n) is not None for n in atlas.__all__)
out["cos"] = cosine_similarity([1.0] * 20, [1.0] * 19 + [0.0])
out["zero"] = cosine_similarity([0.0] * 20, [1.0] * 20)
try:
    cosine_similarity([1.0], [1.0, 2.0])
except ValueError:
    out["mismatch"] = "ValueError"
out["buffer"] = buffer_similarity([[1, 0], [0, 1], [1, 0]], 2, buffer_size=2)
out["breaks"] = semantic_breaks(["a", "b", "c"], [[1, 0], [1, 0], [0, 1]])
out["best"] = best_semantic_match([1.0, 0.0], {"a": [0, 1], "b": [1, 0.1]}, threshold=0.9)[0]
cache = QueryResultCache(similarity_threshold=0.9)
cache.set("what is python", ["doc1"], query_embedding=[1.0, 0.0])
out["cache"] = cache.get("What is Python?", query_embedding=[0.99, 0.05])
def loop(a, b):
    return sum(x * y for x, y in zip(a, b)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
out["accelerated"] = accelerated(loop)([1.0] * 32, [2.0] * 32)
out["vector"] = EmbeddingVector([3.0, 4.0]).norm
out["provider"] = HuggingFaceEmbeddingProvider().name

async def bus():
    b = NeuralCognitiveBus()
    b.create_channel("c", ChannelConfig(name="c"))
    got = []
    async def h(msg):
        got.append(msg.payload)
    await b.register_subscriber("c", "h", h)
    await b.start()
    await b.publish("c", 1)
    while not got:
        await asyncio.sleep(0)
    await b.stop()
    return got
out["bus"] = asyncio.run(bus())
print(json.dumps(out))
"""


@pytest.mark.parametrize("setup", [_STUB, _MISSING], ids=["stub-numpy", "no-numpy"])
def test_drop_ins_fall_back_to_the_stdlib(setup: str) -> None:
    code = textwrap.dedent(setup) + _EXERCISE
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["names"] is True
    assert out["cos"] == pytest.approx(19 / math_sqrt(20 * 19), rel=1e-12)
    assert out["zero"] == 0.0
    assert out["mismatch"] == "ValueError"
    assert out["buffer"] == 0.5
    assert out["breaks"] == [2]
    assert out["best"] == "b"
    assert out["cache"] == ["doc1"]
    assert out["accelerated"] == pytest.approx(1.0, rel=1e-12)
    assert out["vector"] == 5.0
    assert out["provider"] == "huggingface"
    assert out["bus"] == [1]


def math_sqrt(x: float) -> float:
    return float(x) ** 0.5


def test_importing_the_adapters_imports_no_numpy() -> None:
    code = (
        "import sys\n"
        "from neuralcore.compat.atlas import NeuralCognitiveBus, HuggingFaceEmbeddingProvider\n"
        "from neuralcore.compat.atlas import QueryResultCache, cosine_similarity, accelerated\n"
        "import neuralcore.compat.migrate\n"
        "print('numpy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
