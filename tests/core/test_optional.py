"""Optional imports raise an error naming the extra, and only for a missing module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from neuralcore.core import is_available, require
from neuralcore.errors import MissingDependencyError


def test_missing_module_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"neuralcore-runtime\[redis\]") as info:
        require("definitely_not_installed_pkg", extra="redis")
    assert isinstance(info.value, ImportError)
    assert not is_available("definitely_not_installed_pkg")


def test_broken_installed_package_is_not_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "brokenpkg_nc").mkdir()
    (tmp_path / "brokenpkg_nc" / "__init__.py").write_text("import another_missing_dep_nc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("brokenpkg_nc", extra="x")
    assert not isinstance(info.value, MissingDependencyError)
    sys.modules.pop("brokenpkg_nc", None)


def test_present_module() -> None:
    assert require("json", extra="none").dumps([1]) == "[1]"
    assert is_available("json")
