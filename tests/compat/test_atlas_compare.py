"""``benchmarks/atlas_compare.py`` end to end, on a stand-in ATLAS tree (CI cannot fetch
ATLAS): it migrates a copy, runs the bus benchmark on both trees and prints ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "atlas_compare.py"

_NCB = '''
"""Stand-in for ATLAS's core/messaging/NCB.py (the published bus)."""
from neuralcore.compat.atlas.bus._bus import NeuralcoreCognitiveBus as NeuralCognitiveBus
from neuralcore.compat.atlas.bus._types import ChannelConfig
'''


def _tree(root: Path) -> Path:
    pkg = root / "atlas" / "core" / "messaging"
    pkg.mkdir(parents=True)
    (root / "atlas" / "core" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "NCB.py").write_text(_NCB)
    (pkg / "agent_bus.py").write_text(
        "from .NCB import (\n    NeuralCognitiveBus,\n    ChannelConfig as NCBChannelConfig,\n)\n"
    )
    return root / "atlas"


def test_compare_migrates_a_copy_and_reports_ratios(tmp_path: Path) -> None:
    atlas = _tree(tmp_path)
    before = (atlas / "core/messaging/agent_bus.py").read_text()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(atlas), "--rounds", "1", "--messages", "300",
         "--skip", "embed", "--skip", "split", "--skip", "cache",
         "--json", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    bus_row = next(line for line in done.stdout.splitlines() if line.startswith("bus "))
    assert bus_row.split()[-2].endswith("x")  # the ratio column
    assert "migrated=neuralcore.compat.atlas.bus._bus.NeuralcoreCognitiveBus" in done.stdout
    assert (atlas / "core/messaging/agent_bus.py").read_text() == before  # the copy changed
    assert '"bus"' in (tmp_path / "out.json").read_text()
