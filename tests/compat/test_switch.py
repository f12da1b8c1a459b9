"""The rollout switch: NEURALCORE_COMPAT=off hands back the application's originals."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import neuralcore.compat.atlas as atlas
from neuralcore.compat import compat_enabled
from neuralcore.compat.atlas import NeuralcoreCognitiveBus
from neuralcore.core import ConfigError, MissingDependencyError


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", True), ("on", True), ("1", True), ("OFF", False), ("0", False), ("false", False)],
)
def test_values(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("NEURALCORE_COMPAT", value)
    assert compat_enabled() is expected


def test_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_COMPAT", "maybe")
    with pytest.raises(ConfigError) as info:
        compat_enabled()
    assert info.value.field == "NEURALCORE_COMPAT"


@pytest.fixture
def fake_ncb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    pkg = tmp_path / "core" / "messaging"
    pkg.mkdir(parents=True)
    (tmp_path / "core" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "NCB.py").write_text("class NeuralCognitiveBus:\n    original = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [m for m in sys.modules if m == "core" or m.startswith("core.")]:
        del sys.modules[name]


def test_on_serves_neuralcore(monkeypatch: pytest.MonkeyPatch, fake_ncb: None) -> None:
    monkeypatch.delenv("NEURALCORE_COMPAT", raising=False)
    assert atlas.NeuralCognitiveBus is NeuralcoreCognitiveBus


def test_off_serves_the_original(monkeypatch: pytest.MonkeyPatch, fake_ncb: None) -> None:
    monkeypatch.setenv("NEURALCORE_COMPAT", "off")
    assert atlas.NeuralCognitiveBus.original is True
    assert atlas.NeuralcoreCognitiveBus is NeuralcoreCognitiveBus  # own names never switch


def test_off_without_the_application_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_COMPAT", "off")
    with pytest.raises(MissingDependencyError, match="NEURALCORE_COMPAT=off"):
        _ = atlas.QueryResultCache


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = atlas.Nope  # type: ignore[attr-defined]
