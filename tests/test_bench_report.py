"""``neuralcore bench all`` writes a Markdown report and a PNG chart from real measurements."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from neuralcore._bench import vectors
from neuralcore.cli import main


def test_report_runs_a_suite_and_writes_markdown_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real vectors suite, measured; only its HNSW rows (a minute on 2 cores) are left
    # out: the report's job is running suites, timing them and writing the files
    monkeypatch.setattr(vectors, "sections", functools.partial(vectors.sections, hnsw=False))
    out = tmp_path / "bench-report.md"
    assert main(["bench", "--quick", "--suites", "vectors", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# neuralcore benchmark report\n\nMachine: ")
    assert "## Vectors" in text
    assert re.search(r"^\| cosine, 1 pair \| .* \| \d+\.\dx \|", text, re.MULTILINE)  # a ratio
    assert "vs pure Python" in text
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"![speed-ups]({png.name})" in text
    printed = capsys.readouterr().out
    assert printed.startswith("neuralcore bench: running vectors (quick), then writing")
    assert "== vectors took " in printed  # each suite's duration, then the total
    assert re.search(r"Total benchmark time: \d+ s \(vectors \d+ s\)", text)
    assert f"wrote {out} and {png}" in printed


def test_unknown_suite_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "all", "--suites", "nope", "--out", str(tmp_path / "r.md")])
    assert info.value.code == 2
