"""The public names of neuralcore.embedding are pinned."""

import ast
from pathlib import Path

import pytest

import neuralcore.embedding
from neuralcore.core import InputTypeError


def test_public_names_are_pinned() -> None:
    assert neuralcore.embedding.__all__ == (
        "KNOWN_MODELS",
        "CacheStats",
        "EmbeddingCache",
        "EmbeddingConfig",
        "EmbeddingEngine",
        "KnownModel",
        "ModelInfo",
        "RuntimeInfo",
        "convert_model",
        "load_model_info",
        "neuralcore_home",
    )
    for name in neuralcore.embedding.__all__:
        assert getattr(neuralcore.embedding, name) is not None


def test_public_submodules_are_pinned() -> None:
    import neuralcore.embedding.parity
    import neuralcore.embedding.pooling

    assert neuralcore.embedding.parity.__all__ == (
        "EXACT_COSINE",
        "GATE_COSINE",
        "GATE_TOP10",
        "Parity",
        "benchmark_texts",
        "calibration_texts",
        "compare",
        "hostile_texts",
        "parity_queries",
        "parity_texts",
        "read_module",
    )
    assert neuralcore.embedding.pooling.__all__ == (
        "OutputDtype",
        "finalize",
        "l2_normalize",
        "pool",
    )
    # the gate the issue sets: min cosine 0.99, top-10 overlap 0.95, exact 0.9999
    parity = neuralcore.embedding.parity
    assert (parity.GATE_COSINE, parity.GATE_TOP10, parity.EXACT_COSINE) == (0.99, 0.95, 0.9999)


def test_known_models_cover_the_issue_list() -> None:
    assert set(neuralcore.embedding.KNOWN_MODELS) == {
        "all-MiniLM-L6-v2",
        "all-mpnet-base-v2",
        "bge-small-en-v1.5",
        "bge-base-en-v1.5",
        "e5-small-v2",
    }


def test_read_module_parses_without_importing_and_skips_bad_files(tmp_path: Path) -> None:
    from neuralcore.embedding.parity import read_module

    good = tmp_path / "good.py"
    good.write_text('"""Doc of a module never imported."""\nraise SystemExit(3)\n', "utf-8")
    source, tree = read_module(good) or ("", ast.Module([], []))
    assert ast.get_docstring(tree) == "Doc of a module never imported."
    assert source.endswith("raise SystemExit(3)\n")
    (tmp_path / "bad.py").write_text("def broken(:\n", "utf-8")
    (tmp_path / "latin1.py").write_bytes(b"x = '\xe9'\n")
    for name in ("bad.py", "latin1.py", "missing.py"):
        assert read_module(tmp_path / name) is None, name
    for bad in (None, 123, b"x.py"):
        with pytest.raises(InputTypeError, match=r"path must be a str or os\.PathLike"):
            read_module(bad)  # type: ignore[arg-type]
