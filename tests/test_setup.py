"""``make setup`` converts the model again when the model cache is gone, and only then."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make") or "make"  # the task runner is required: no skip without it


def _plan(home: Path) -> list[str]:
    """The commands ``make setup`` would run (``make -n``: nothing runs)."""
    done = subprocess.run(
        [str(MAKE), "-n", "setup", f"NEURALCORE_HOME={home}"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.splitlines()


def test_a_missing_model_cache_is_converted_again(tmp_path: Path) -> None:
    assert "bash scripts/post_install.sh" in _plan(tmp_path / "empty-home")


def test_a_present_model_cache_is_left_alone(tmp_path: Path) -> None:
    manifest = tmp_path / "models" / "all-MiniLM-L6-v2" / "neuralcore.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}", encoding="utf-8")
    assert "bash scripts/post_install.sh" not in _plan(tmp_path)


def test_setup_script_parses() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "setup.sh")], check=True, timeout=30)
