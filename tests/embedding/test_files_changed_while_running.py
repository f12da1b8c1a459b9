"""Model files and OpenVINO's compiled-kernel cache damaged while an engine runs.

Each scenario runs in a subprocess with its own ``NEURALCORE_HOME`` (a copy of the model's
files where they are damaged; the installed model is never touched): a file truncated
under a running engine must give vectors or a ModelError, never kill the process with a
signal (a memory-mapped file truncated under the reader is SIGBUS).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import os, sys
from pathlib import Path
import numpy as np
from neuralcore.embedding import EmbeddingEngine
from neuralcore.errors import ModelError

model, step = Path(sys.argv[1]), sys.argv[2]
many = [f"filler {i} about queues and streams " * 6 for i in range(40)]
engine = EmbeddingEngine(model, threads=2, batch_tokens=64)
print("loaded", engine.runtime_info.variant, flush=True)
engine.embed(["where is the cat?"])
if step == "warm":
    engine.embed(many)  # both compiled models written to the cache folder
    sys.exit(0)
cache = Path(os.environ["NEURALCORE_HOME"]) / "openvino-cache"
blobs = sorted(cache.glob("*.blob"))
assert blobs, "no compiled-kernel cache"
for blob in blobs:
    with open(blob, "r+b") as f:
        f.truncate(1000)
graph = model / "model_int8_openvino.bin"
with open(graph, "r+b") as f:
    f.truncate(graph.stat().st_size // 3)
print("truncated", len(blobs), flush=True)
for texts in (many, ["where is the cat?"], many):
    try:
        out = engine.embed(texts)
        print("ok", bool(np.isfinite(out).all()), flush=True)
    except ModelError as err:
        print("ModelError", str(err)[:80], flush=True)
"""


def _home(tmp_path: Path, model_dir: Path) -> tuple[Path, Path]:
    """A fresh home whose model folder links to the installed files, the .bin copied."""
    home = tmp_path / "home"
    copy = home / "models" / model_dir.name
    copy.mkdir(parents=True)
    for item in model_dir.iterdir():
        if item.name in ("model_int8_openvino.bin", "neuralcore.json"):
            shutil.copy(item, copy / item.name)
        else:
            (copy / item.name).symlink_to(item)
    return home, copy


def _run(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEURALCORE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_graph_and_cache_truncated_while_running_is_no_crash(
    tmp_path: Path, model_dir: Path
) -> None:
    home, copy = _home(tmp_path, model_dir)
    warm = _run(home, str(copy), "warm")
    assert warm.returncode == 0, warm.stderr[-2000:]
    # the second process loads the compiled models from the cache, then both the graph's
    # weights and the cached blobs are truncated under it before its throughput model
    # is compiled (the split graph is still held)
    run = _run(home, str(copy), "damage")
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    lines = run.stdout.splitlines()
    assert lines[0] == "loaded openvino-int8-bf16"
    assert lines[1].startswith("truncated ")
    assert len(lines) == 5
    for line in lines[2:]:
        assert line == "ok True" or line.startswith("ModelError"), line


def test_a_fifo_in_the_cache_folder_does_not_hang_the_load(tmp_path: Path, model_dir: Path) -> None:
    home, copy = _home(tmp_path, model_dir)
    assert _run(home, str(copy), "warm").returncode == 0
    blobs = sorted((home / "openvino-cache").glob("*.blob"))
    assert blobs
    for blob in blobs:  # OpenVINO opened it and waited for a writer, forever
        blob.unlink()
        os.mkfifo(blob)
    (home / "openvino-cache" / "link.blob").symlink_to(blobs[0])
    run = _run(home, str(copy), "warm", timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ["loaded openvino-int8-bf16"]
    left = list((home / "openvino-cache").iterdir())
    assert all(p.is_file() and not p.is_symlink() for p in left), left
