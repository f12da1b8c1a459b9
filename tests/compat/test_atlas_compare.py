"""``benchmarks/atlas_compare.py`` end to end, on a stand-in ATLAS tree (CI cannot fetch
ATLAS): it migrates a copy, runs the bus benchmark on both trees and prints ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "atlas_compare.py"

_NCB = '''
"""Stand-in for ATLAS's core/messaging/NCB.py (the published bus)."""
from neuralcore.compat.atlas import ChannelConfig
from neuralcore.compat.atlas import NeuralcoreCognitiveBus as NeuralCognitiveBus
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
    _cosine_standins(root / "atlas")
    return root / "atlas"


_CONVERSATIONS = """
import math


class ConversationService:
    @staticmethod
    def _cosine_similarity(left, right):
        if not left or not right:
            return 0.0
        dot = sum(a * b for a, b in zip(left, right))
        norms = math.sqrt(sum(a * a for a in left)) * math.sqrt(sum(b * b for b in right))
        return dot / norms if norms > 0 else 0.0
"""
_EVALUATOR = """
import math


class RelevancyCalculator:
    def __init__(self):
        raise RuntimeError("loads a model; the benchmark must not call this")

    def _cosine_similarity(self, vec1, vec2):
        dot = sum(a * b for a, b in zip(vec1, vec2))
        norms = math.sqrt(sum(a * a for a in vec1)) * math.sqrt(sum(b * b for b in vec2))
        return 0.0 if norms == 0 else dot / norms
"""


def _cosine_standins(atlas: Path) -> None:
    """Stand-ins for ATLAS's two cosine loops written as methods."""
    files = {
        "core/services/__init__.py": "",
        "core/services/conversations.py": _CONVERSATIONS,
        "modules/__init__.py": "",
        "modules/storage/__init__.py": "",
        "modules/storage/evaluation/__init__.py": "",
        "modules/storage/evaluation/evaluator.py": _EVALUATOR,
    }
    for rel, text in files.items():
        (atlas / rel).parent.mkdir(parents=True, exist_ok=True)
        (atlas / rel).write_text(text)


def test_compare_migrates_a_copy_and_reports_ratios(tmp_path: Path) -> None:
    atlas = _tree(tmp_path)
    before = (atlas / "core/messaging/agent_bus.py").read_text()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(atlas), "--rounds", "1", "--messages", "300",
         "--skip", "embed", "--skip", "split", "--skip", "cache",
         "--pairs", "40",
         "--json", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    bus_row = next(line for line in done.stdout.splitlines() if line.startswith("bus "))
    assert bus_row.split()[-2].endswith("x")  # the ratio column
    assert re.search(r"migrated=neuralcore\.compat\.atlas\.\S*NeuralcoreCognitiveBus", done.stdout)
    assert (atlas / "core/messaging/agent_bus.py").read_text() == before  # the copy changed
    for row, owner in (
        ("conv-cosine", "ConversationService"),
        ("eval-cosine", "RelevancyCalculator"),
    ):
        line = next(line for line in done.stdout.splitlines() if line.startswith(f"{row} "))
        assert line.split()[-2].endswith("x")
        assert f"published={owner}; migrated={owner} (accelerated)" in done.stdout
    assert '"bus"' in (tmp_path / "out.json").read_text()
