"""Backend choice, as users see it: ``VectorOps(backend=...)`` and ``backend_info()``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from vector_oracle import needs_native

import neuralcore
from neuralcore.core import MissingDependencyError
from neuralcore.vectors import HNSWIndex, VectorOps


def _child(code: str, **env: str) -> None:
    """Run ``code`` in a fresh interpreter: the process default is chosen once, at first use."""
    full_env = {**os.environ, **env}
    if not env:
        full_env.pop("NEURALCORE_BACKEND", None)
    run = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_python_forced_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_BACKEND", "python")
    assert VectorOps(backend="native").backend == "python"  # the environment wins, as documented
    code = "from neuralcore.vectors import VectorOps\nassert VectorOps().backend == 'python'\n"
    _child(code, NEURALCORE_BACKEND="python")


@needs_native
def test_auto_is_native_when_numpy_and_simsimd_import() -> None:
    assert VectorOps().backend == "native"
    assert neuralcore.backend_info()["vectors"].backend == "native"


def test_auto_falls_back_and_says_why() -> None:
    # fault injection: the SIMD libraries blocked in a fresh interpreter, as if not installed
    code = (
        "import sys\nsys.modules['numkong'] = sys.modules['simsimd'] = None\n"
        "import neuralcore\nfrom neuralcore.vectors import VectorOps, dot\n"
        "from neuralcore.core import MissingDependencyError\n"
        "info = neuralcore.backend_info()['vectors']\n"
        "assert info.backend == 'python', info\n"
        "assert 'numkong or simsimd is not installed' in info.detail, info\n"
        "assert VectorOps().backend == 'python' and dot([1, 2], [3, 4]) == 11.0\n"
        "try:\n    VectorOps(backend='native')\nexcept MissingDependencyError as err:\n"
        "    assert 'simsimd' in str(err)\nelse:\n    raise SystemExit('no error')\n"
    )
    _child(code)


def test_native_request_without_the_libraries_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALCORE_BACKEND", raising=False)
    # fault injection: both SIMD libraries unimportable (the kernels already loaded stay)
    monkeypatch.setitem(sys.modules, "numkong", None)
    monkeypatch.setitem(sys.modules, "simsimd", None)
    with pytest.raises(MissingDependencyError, match="numkong or simsimd is not installed"):
        VectorOps(backend="native")


@needs_native
def test_instances_use_the_requested_kernels() -> None:
    assert VectorOps(backend="python").kernels.__name__.endswith(".pure")
    assert VectorOps(backend="native").kernels.__name__.endswith(".native")
    assert "python" in repr(VectorOps(backend="python"))


def test_backend_info_reports_the_default_choice() -> None:
    info = neuralcore.backend_info()["vectors"]
    assert (info.engine, info.backend) == ("vectors", VectorOps().backend)
    if info.backend == "native":
        assert info.library in ("numpy+numkong", "numpy+simsimd")
        assert "+" in info.version


def test_hnsw_report_matches_what_an_index_uses() -> None:
    info = neuralcore.backend_info()["hnsw"]
    assert info.engine == "hnsw"
    assert info.backend == HNSWIndex(4).backend.backend
