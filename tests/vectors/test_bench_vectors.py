"""The vectors benchmark harness: table layout, the HNSW rows hook, the HNSW rows.

The harness itself is the unit under test, and its only public face is the CLI
(``neuralcore bench vectors``, minutes per run): so this file imports its modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from neuralcore._bench import vectors as bench
from neuralcore._bench._common import Row, format_table
from neuralcore._bench._hnsw import hnsw_rows


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
    monkeypatch.setattr(bench, "rows", lambda quick, on_row=None: [Row("x", {bench.OURS: 2.0})])
    monkeypatch.setattr(bench, "_hnsw_rows", lambda quick: marker)
    (section,) = bench.sections(quick=True)
    assert [r.case for r in section.rows] == ["x", "hnsw"]
    assert section.ours == bench.OURS


def test_hnsw_rows_can_be_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "rows", lambda quick, on_row=None: [Row("x", {bench.OURS: 2.0})])
    monkeypatch.setattr(bench, "_hnsw_rows", lambda quick: pytest.fail("HNSW rows were run"))
    (section,) = bench.sections(quick=True, hnsw=False)
    assert [r.case for r in section.rows] == ["x"]


def test_each_row_is_printed_as_soon_as_it_is_measured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    printed_before_second: list[str] = []

    def fake_rows(quick: bool) -> Iterator[Row]:
        yield Row("first", {bench.NAIVE: 2.0, bench.OURS: 1.0})
        printed_before_second.append(capsys.readouterr().out)
        yield Row("second", {bench.OURS: 3.0})

    hnsw = [Row("hnsw recall", {bench.OURS: 0.96}, unit="value")]
    monkeypatch.setattr(bench, "_rows", fake_rows)
    monkeypatch.setattr(bench, "_hnsw_rows", lambda quick: hnsw)
    assert bench.main(["--quick"]) == 0
    (early,) = printed_before_second
    assert "measured first: numpy naive 2.00 s, neuralcore 1.00 s (2.0x numpy naive)" in early
    assert "| case" not in early  # the table waits for every row
    out = capsys.readouterr().out
    assert out.index("measured second") < out.index("measured hnsw recall") < out.index("| case")
    assert "| first | - | 2.00 s | 1.00 s |" in out  # no pure-Python figure: "-"


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="no faiss-cpu")
def test_hnsw_rows_have_baseline_and_format() -> None:
    rows = hnsw_rows(n=2_000, queries=50, libraries=False)
    assert all(r.values["neuralcore"] > 0 for r in rows)
    recall = next(r for r in rows if r.case == "HNSW recall@10 at the defaults")
    assert recall.values["neuralcore"] >= 0.9
    columns = list(dict.fromkeys(c for r in rows for c in r.values))
    table = format_table(rows, columns, "neuralcore")
    assert "HNSW view() search" in table
    assert table.count("\n") == len(rows) + 1


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="no faiss-cpu")
def test_hnsw_parts_pick_row_groups_and_faiss_rows_compare_the_same_graph() -> None:
    rows = hnsw_rows(True, n=1_000, queries=20, parts=("faiss",))
    assert [r.case for r in rows] == [
        "HNSW build, f32, 2 threads",
        "HNSW vs FAISS, 1 query, ef=64",
        "HNSW vs FAISS, 1 query, ef=256",
        "HNSW vs FAISS, batch of 20, 2 threads, ef=256",
    ]
    for row in rows[1:]:
        assert set(row.values) == {"faiss", "neuralcore"}
        assert all(v > 0 for v in row.values.values())
    # same graph and beam: the same neighbours, so the same recall
    assert "recall@10 faiss 1.000, neuralcore 1.000" in rows[2].note
    with pytest.raises(ValueError, match="unknown HNSW bench parts"):
        hnsw_rows(True, n=100, queries=5, parts=("nope",))


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="no faiss-cpu")
def test_equal_recall_rows_build_faiss_at_its_usual_settings(tmp_path: Path) -> None:
    rows = hnsw_rows(True, n=1_000, queries=20, parts=("equal",), cache=str(tmp_path))
    assert [r.case for r in rows][1:] == [
        "HNSW vs FAISS own build, 1 query, equal recall",
        "HNSW vs FAISS own build, batch of 20, 2 threads, equal recall",
        "HNSW vs FAISS own build, batch of 20, 1 thread, equal recall",
    ]
    for row in rows[1:]:
        assert set(row.values) == {"faiss", "neuralcore"}
        assert "efConstruction 40 (its default)" in row.note
        assert "built in" in row.note  # the first run builds FAISS's graph and saves it
    # FAISS's beam is the smallest reaching neuralcore's recall: its recall is at least that
    found = re.search(r"neuralcore ([\d.]+) \(ef 256\), faiss ([\d.]+) \(ef (\d+)\)", rows[1].note)
    assert found is not None, rows[1].note
    assert float(found[2]) >= float(found[1])
    assert (tmp_path / "faiss-own-1000.faiss").exists()
    again = hnsw_rows(True, n=1_000, queries=20, parts=("equal",), cache=str(tmp_path))
    assert "built in" not in again[0].note + again[1].note


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="no faiss-cpu")
def test_hnsw_cache_reuses_the_f32_index_and_one_storage_type(tmp_path: Path) -> None:
    first = hnsw_rows(True, n=600, queries=10, parts=("i8",), cache=str(tmp_path))
    assert first[0].case == "HNSW build, f32, 2 threads"
    assert (tmp_path / "hard-f32-600.nchnsw").exists()
    again = hnsw_rows(True, n=600, queries=10, parts=("i8",), cache=str(tmp_path))
    cases = [r.case for r in again]
    assert cases[0].startswith("HNSW i8: recall@10")  # loaded: no build row
    assert not any("bf16" in c for c in cases)
    assert again[1].values["neuralcore"] == first[2].values["neuralcore"]  # same memory share


def test_cli_passes_hnsw_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[dict[str, object]] = []

    def fake_hnsw(quick: bool, **options: object) -> list[Row]:
        seen.append(options)
        return [Row("hnsw", {bench.OURS: 1.0})]

    monkeypatch.setattr(bench, "_rows", lambda quick: pytest.fail("kernel rows were run"))
    monkeypatch.setattr(bench, "_hnsw_rows", fake_hnsw)
    argv = ["--no-kernels", "--hnsw-size", "5000", "--hnsw-parts", "search, faiss"]
    assert bench.main([*argv, "--hnsw-cache", "/tmp/x"]) == 0
    assert seen == [{"n": 5000, "parts": ("search", "faiss"), "cache": "/tmp/x"}]
    assert "| hnsw |" in capsys.readouterr().out
