"""``neuralcore bench all`` writes a Markdown report and a PNG chart from real measurements."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neuralcore.cli import main


@pytest.mark.slow
def test_report_runs_a_suite_and_writes_markdown_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench-report.md"
    assert main(["bench", "--quick", "--suites", "messaging", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# neuralcore benchmark report")
    assert "## Messaging: in-process bus" in text
    assert "| publish, per message" in text
    assert "vs heapq+Condition bus" in text
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert printed.startswith("neuralcore bench: running messaging (quick), then writing")
    assert "== messaging took " in printed  # each suite's duration, then the total
    assert re.search(r"Total benchmark time: \d+ s \(messaging \d+ s\)", text)
    assert f"wrote {out}" in printed


def test_unknown_suite_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "all", "--suites", "nope", "--out", str(tmp_path / "r.md")])
    assert info.value.code == 2
