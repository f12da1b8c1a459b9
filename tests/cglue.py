"""The compiled glue's shared check: a C file compiles with every warning an error."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path


def assert_compiles_cleanly(source: Path, *include_dirs: str, cwd: Path) -> None:
    """``source`` passes ``-Wall -Wextra -Werror -fsyntax-only`` against Python's headers
    (and ``include_dirs``); a missing C compiler fails, since the glue is required here."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "the glue needs a C compiler in this repository's setup"
    includes = [f"-I{d}" for d in (sysconfig.get_paths()["include"], *include_dirs)]
    done = subprocess.run(
        [cc, "-Wall", "-Wextra", "-Werror", "-fsyntax-only", *includes, str(source)],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
