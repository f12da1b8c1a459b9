"""Backend selection honours NEURALCORE_BACKEND and per-object requests."""

from __future__ import annotations

import pytest

from neuralcore.core import resolve_backend
from neuralcore.errors import ConfigError


def test_auto_means_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALCORE_BACKEND", raising=False)
    assert resolve_backend(None) == "native"
    assert resolve_backend("auto") == "native"
    assert resolve_backend("python") == "python"


def test_env_forces_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_BACKEND", "python")
    assert resolve_backend("native") == "python"
    assert resolve_backend(None) == "python"


def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_BACKEND", "gpu")
    with pytest.raises(ConfigError, match="NEURALCORE_BACKEND"):
        resolve_backend(None)
    monkeypatch.delenv("NEURALCORE_BACKEND")
    with pytest.raises(ConfigError, match="backend"):
        resolve_backend("turbo")  # type: ignore[arg-type]
