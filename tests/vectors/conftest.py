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


# The one-pair cosine kernels run through the compiled glue (``_kernels/_accel.c``) when it
# is built, else as the Python kernels it wraps. The kernel tests of these modules run
# against both: "python" rebuilds the module functions and VectorOps' classes without it.
GLUE_MODULES = frozenset(
    {
        "test_api",
        "test_bad_arguments",
        "test_native_simd_levels",
        "test_ops_inputs",
        "test_ops_properties",
        "test_strides_magnitudes",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if Path(str(metafunc.module.__file__)).stem in GLUE_MODULES:
        metafunc.parametrize("pair_glue", ["compiled", "python"], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the duplicates: a stdlib-backend case does not touch the glue."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        values = params.params if params is not None else {}
        stdlib = values.get("backend") == "python" or values.get("vector_ops") == "python"
        (drop if stdlib and values.get("pair_glue") == "python" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def pair_glue(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which one-pair path serves: ``"compiled"`` (as installed) or ``"python"``."""
    mode: str = getattr(request, "param", "compiled")
    if mode == "python":
        python_pair_kernels(monkeypatch)
    return mode


def python_pair_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve the module functions and new VectorOps instances with the Python pair kernels."""
    import neuralcore
    import neuralcore.vectors as nv
    from neuralcore.vectors import _ops
    from neuralcore.vectors._kernels import native

    monkeypatch.setattr(native, "_ACCEL", None)
    monkeypatch.setattr(_ops, "_VARIANTS", {})  # classes made afresh, without the glue
    for name in native._GLUED:
        glued = getattr(_ops, name)
        python = getattr(glued, "fallback", glued)  # the Python kernel the glue wraps
        for attribute in ("__doc__", "__signature__", "__module__", "__name__", "__qualname__"):
            setattr(python, attribute, getattr(glued, attribute))
        for module in (_ops, nv):
            monkeypatch.setattr(module, name, python)
        if name in vars(neuralcore):
            monkeypatch.setattr(neuralcore, name, python)
