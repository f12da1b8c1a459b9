"""The vectors benchmark module: table layout and the HNSW rows hook."""

from __future__ import annotations

import importlib

import pytest

from neuralcore._bench import vectors as bench
from neuralcore._bench._common import Row


def test_columns_put_baselines_first_and_ours_last() -> None:
    rows = [
        Row("a", {bench.PURE: 1.0, bench.NAIVE: 2.0, bench.OURS: 3.0}),
        Row("b", {"hnswlib": 1.0, bench.OURS: 2.0, "faiss": 3.0}),
    ]
    assert bench._columns(rows) == [bench.PURE, bench.NAIVE, "hnswlib", "faiss", bench.OURS]


def test_missing_hnsw_bench_module_gives_no_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str) -> object:
        if name == "neuralcore._bench._hnsw":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name)

    monkeypatch.setattr(bench.importlib, "import_module", fake)
    assert bench._hnsw_rows(quick=True) == []


def test_hnsw_rows_are_appended(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = [Row("hnsw", {bench.OURS: 1.0})]
    monkeypatch.setattr(bench, "rows", lambda quick: [Row("x", {bench.OURS: 2.0})])
    monkeypatch.setattr(bench, "_hnsw_rows", lambda quick: marker)
    (section,) = bench.sections(quick=True)
    assert [r.case for r in section.rows] == ["x", "hnsw"]
    assert section.ours == bench.OURS


def test_hnsw_rows_can_be_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "rows", lambda quick: [Row("x", {bench.OURS: 2.0})])
    monkeypatch.setattr(bench, "_hnsw_rows", lambda quick: pytest.fail("HNSW rows were run"))
    (section,) = bench.sections(quick=True, hnsw=False)
    assert [r.case for r in section.rows] == ["x"]
