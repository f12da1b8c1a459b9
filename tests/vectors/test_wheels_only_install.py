"""The vectors extra installs from wheels alone: no compiler, no source builds.

A fresh virtual environment gets the extra's requirements (read from ``pyproject.toml``)
with ``pip install --only-binary=:all:`` and with every compiler disabled (``CC``/``CXX``
point at ``false``), so a dependency without a wheel for this Python fails the install
instead of being built with ``-march=native``. Then neuralcore, from this checkout, must
run the native kernels, a Corpus and an HNSW graph (save, load, view) in that environment.
pip uses its ordinary index configuration and cache (PyPI, or the mirror configured here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMOKE = """
import numpy as np, tempfile, pathlib
import faiss, simsimd
from neuralcore import backend_info
from neuralcore.vectors import Corpus, HNSWIndex, cosine_similarity
info = backend_info()
assert info["vectors"].backend == "native", info["vectors"]
assert info["hnsw"].library == "faiss", info["hnsw"]
x = np.random.default_rng(0).standard_normal((500, 32)).astype(np.float32)
assert abs(cosine_similarity(x[0], x[0]) - 1.0) < 1e-6
assert Corpus(x).top_k(x[3], 1)[0].tolist() == [3]
index = HNSWIndex(32, dtype="bf16")
index.add(np.arange(500), x)
path = pathlib.Path(tempfile.mkdtemp()) / "i.nchnsw"
index.save(path)
assert HNSWIndex.load(path).search(x[7], k=1)[0].tolist() == [7]
with HNSWIndex.view(path) as view:
    assert view.search(x[9], k=1)[0].tolist() == [9]
print("ok", faiss.__version__, faiss.get_compile_options())
"""


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["vectors"])


@pytest.mark.slow
@pytest.mark.integration
def test_vectors_extra_installs_from_wheels_only_and_runs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    env = {**os.environ, "CC": "false", "CXX": "false", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--only-binary=:all:", *_requirements()],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    run = subprocess.run(
        [str(python), "-c", SMOKE],
        env={**env, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok"), run.stdout
    assert "DD" in run.stdout  # FAISS picks its SIMD level at run time (dynamic dispatch)
