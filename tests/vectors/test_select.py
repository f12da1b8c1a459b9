"""Backend choice: one place (``_select``), reported by ``backend_info()``."""

from __future__ import annotations

import pytest
from vector_oracle import needs_native

import neuralcore
from neuralcore.core import MissingDependencyError
from neuralcore.vectors import VectorOps, _select


def test_python_forced_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_BACKEND", "python")
    assert _select._choose("auto")[0] == "python"
    assert _select._choose("native")[0] == "python"  # the environment wins, as documented


def test_auto_is_native_when_numpy_and_simsimd_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALCORE_BACKEND", raising=False)
    assert _select._choose("auto") == ("native", "")


def test_auto_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALCORE_BACKEND", raising=False)
    monkeypatch.setattr(_select, "_missing_native", lambda: "simsimd is not installed")
    assert _select._choose("auto") == ("python", "simsimd is not installed")
    with pytest.raises(MissingDependencyError, match="simsimd"):
        _select._choose("native")
    monkeypatch.setenv("NEURALCORE_BACKEND", "native")
    with pytest.raises(MissingDependencyError):
        _select._choose("auto")


def test_missing_native_names_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _select.importlib.import_module

    def fake(name: str) -> object:
        if name in ("numkong", "simsimd"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name)

    monkeypatch.setattr(_select.importlib, "import_module", fake)
    assert "numkong or simsimd is not installed" in _select._missing_native()


@needs_native
def test_instances_use_the_requested_kernels() -> None:
    assert VectorOps(backend="python").kernels.__name__.endswith(".pure")
    assert VectorOps(backend="native").kernels.__name__.endswith(".native")
    assert "python" in repr(VectorOps(backend="python"))


def test_backend_info_reports_the_default_choice() -> None:
    info = neuralcore.backend_info()["vectors"]
    assert (info.engine, info.backend) == ("vectors", _select.default_choice()[0])
    if info.backend == "native":
        assert info.library in ("numpy+numkong", "numpy+simsimd")
        assert "+" in info.version


def test_hnsw_is_described_by_its_own_module() -> None:
    from neuralcore.vectors.hnsw._index import describe_hnsw_backend

    assert _select.describe_backend("hnsw") == describe_hnsw_backend()
