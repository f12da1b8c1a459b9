"""Turn a local sentence-transformers folder into a neuralcore model folder.

The transformer is exported with torch's TorchScript exporter (opset 17, dynamic batch and
sequence axes), fused with ONNX Runtime's transformer optimizer, optionally quantized to
int8 (dynamic, per-channel) or converted to fp16, and checked against torch on a padded
batch before the manifest is written. With ``openvino_int8`` the unfused export is also
quantized statically (weights and activations) by NNCF for OpenVINO, calibrated on a
fixed set of standard-library docstrings, and saved as OpenVINO IR (``.xml`` + ``.bin``).
Only this module imports torch and NNCF, and only while converting; inference never does.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

from neuralcore.core._optional import require
from neuralcore.embedding._corpus import calibration_texts
from neuralcore.embedding._models import (
    KNOWN_MODELS,
    RECIPE,
    ModelInfo,
    Pooling,
    sha256_file,
    write_manifest,
)
from neuralcore.embedding._parity import measure_variants
from neuralcore.errors import ConfigError, ModelError

__all__ = ("calibration_texts", "convert_model")

logger = logging.getLogger(__name__)

Quantize = Literal["int8", "fp16"]
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_GRAPHS = {
    "fp32": "model.onnx",
    "int8": "model_int8.onnx",
    "fp16": "model_fp16.onnx",
    "openvino-int8": "model_int8_openvino.xml",
}
_ATTENTION = "neuralcore_export"
# MatMuls the static int8 OpenVINO graph keeps in floating point (node-name patterns of the
# TorchScript export): attention output and FFN down-projections
_OPENVINO_FLOAT_SCOPES = (r".*output/dense.*",)
_GELU_OPS = {"Gelu", "BiasGelu", "FastGelu"}


def convert_model(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    quantize: Quantize | None = None,
    optimize: bool = True,
    name: str | None = None,
    openvino_int8: bool = False,
    select: bool | None = None,
) -> ModelInfo:
    """Convert a sentence-transformers model folder into a neuralcore model folder.

    Parameters
    ----------
    source : path
        Local sentence-transformers folder (weights, tokenizer, ``modules.json``...).
    output : path
        Folder to write; created, and replaced if it already holds a model.
    quantize : {"int8", "fp16"}, optional
        Also write a quantized graph beside the fp32 one.
    optimize : bool
        Apply ONNX Runtime's transformer fusions (attention, layer norm, GELU).
    name : str, optional
        Model name for the manifest; defaults to the source folder's name.
    openvino_int8 : bool
        Also write a static int8 OpenVINO IR (``model_int8_openvino.xml`` + ``.bin``),
        quantized by NNCF on built-in calibration texts (about 20-40 s more); used by
        ``EmbeddingEngine(quantization="int8", runtime="openvino")``.
    select : bool, optional
        Measure every variant against sentence-transformers on the parity set (worst
        cosine, top-10 retrieval overlap) and for speed on this machine, and record the
        fastest variant passing the gate as the default (``EmbeddingEngine()`` runs it)
        and the fastest with fp32 parity as the exact one. Default: when
        sentence-transformers is installed; without it the default is fp32.

    Returns
    -------
    ModelInfo
        The manifest of the new folder.

    Raises
    ------
    ModelError
        The source is not a usable model folder, or the exported graph disagrees with torch.
    MissingDependencyError
        torch or onnx is not installed (``pip install "neuralcore-runtime[convert]"``), or
        ``openvino_int8`` without openvino/nncf (``neuralcore-runtime[openvino]``).

    Examples
    --------
    >>> convert_model("/nonexistent", "/tmp/out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    neuralcore.errors.ModelError: source model folder /nonexistent does not exist
    """
    src, out = Path(source).expanduser(), Path(output).expanduser()
    if quantize not in (None, "int8", "fp16"):
        raise ConfigError("quantize", quantize, "expected None, 'int8' or 'fp16'")
    if not src.exists():
        raise ModelError(f"source model folder {src} does not exist")
    if not src.is_dir():
        raise ModelError(f"source model folder {src} is not a folder")
    if not (src / "config.json").is_file():
        raise ModelError(f"source model folder {src} has no config.json; not a transformer folder")
    settings = _read_settings(src, name or src.name)
    _check_replaceable(out)  # before minutes of work, not after
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=_parent(out)) as tmp:
        work = Path(tmp)
        dimension = _export(src, work / "raw.onnx")
        _write_tokenizer(src, work / "tokenizer.json")
        graphs = {"fp32": _GRAPHS["fp32"]}
        if openvino_int8:
            max_length = int(settings["max_length"])
            ov_path = work / _GRAPHS["openvino-int8"]
            _quantize_openvino_int8(work / "raw.onnx", ov_path, work / "tokenizer.json", max_length)
            graphs["openvino-int8"] = _GRAPHS["openvino-int8"]
        fp32 = work / _GRAPHS["fp32"]
        _optimize(work / "raw.onnx", fp32, src) if optimize else (work / "raw.onnx").rename(fp32)
        (work / "raw.onnx").unlink(missing_ok=True)
        if quantize == "int8":
            _quantize_int8(fp32, work / _GRAPHS["int8"])
        elif quantize == "fp16":
            _to_fp16(fp32, work / _GRAPHS["fp16"])
        if quantize:
            graphs[quantize] = _GRAPHS[quantize]
        files = {p.name: sha256_file(p) for p in sorted(work.iterdir()) if p.is_file()}
        info = ModelInfo(
            dimension=dimension, graphs=graphs, files=files, recipe=RECIPE, path=work, **settings
        )
        if select is None:
            select = importlib.util.find_spec("sentence_transformers") is not None
        if select:
            write_manifest(info)
            chosen = measure_variants(work, src, info.variant_names())
            (work / "neuralcore.json").unlink()
            info = dataclasses.replace(info, **chosen)
        info = dataclasses.replace(info, path=out)
        _replace_folder(work, out)
    write_manifest(info)
    logger.info("converted %s into %s (%s)", src, out, ", ".join(graphs))
    return info


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _check_replaceable(out: Path) -> None:
    """Refuse an output folder that holds something other than a neuralcore model."""
    if out.is_dir() and any(out.iterdir()) and not (out / "neuralcore.json").is_file():
        raise ModelError(f"output folder {out} exists and is not a neuralcore model folder")
    if out.exists() and not out.is_dir():
        raise ModelError(f"output folder {out} exists and is not a folder")


def _replace_folder(work: Path, out: Path) -> None:
    if out.exists():
        _check_replaceable(out)
        shutil.rmtree(out)
    out.mkdir()
    for item in work.iterdir():
        item.rename(out / item.name)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError, RecursionError) as err:  # "["*100000 is too deep
        raise ModelError(f"cannot read {path}: {err}") from err


def _max_positions(config: dict[str, Any]) -> int:
    """Tokens the model's position embeddings cover (RoBERTa-style models skip padding+1)."""
    if not isinstance(config, dict):
        raise ModelError(f"config.json holds {type(config).__name__}, not an object")
    try:
        positions = int(config.get("max_position_embeddings", 512))
        if config.get("model_type") in ("roberta", "xlm-roberta", "camembert", "mpnet"):
            positions -= int(config.get("pad_token_id", 1)) + 1
    except (TypeError, ValueError) as err:
        raise ModelError(f"config.json has a bad max_position_embeddings: {err}") from None
    if positions < 1:
        raise ModelError(f"config.json gives {positions} usable positions; expected >= 1")
    return positions


def _read_settings(src: Path, name: str) -> dict[str, Any]:
    """Pooling, normalisation, length and prefixes: known table first, then the folder."""
    known = KNOWN_MODELS.get(name)
    if known is not None:
        return {
            "name": name,
            "pooling": known.pooling,
            "max_length": known.max_length,
            "normalize": known.normalize,
            "query_prefix": known.query_prefix,
            "document_prefix": known.document_prefix,
            "max_positions": known.max_positions,
        }
    modules = _load_json(src / "modules.json") or []
    pooling_dir = next((m["path"] for m in modules if m["type"].endswith(".Pooling")), "1_Pooling")
    prompts = _load_json(src / "config_sentence_transformers.json").get("prompts") or {}
    max_length = _load_json(src / "sentence_bert_config.json").get("max_seq_length")
    model_config = _load_json(src / "config.json")
    model_max = _max_positions(model_config)
    return {
        "name": name,
        "pooling": _pooling_mode(_load_json(src / pooling_dir / "config.json")),
        "max_length": min(int(max_length or 512), model_max),
        "max_positions": model_max,
        "normalize": any(m["type"].endswith(".Normalize") for m in modules),
        "query_prefix": str(prompts.get("query", "")),
        "document_prefix": str(prompts.get("document", prompts.get("passage", ""))),
    }


def _pooling_mode(config: dict[str, Any]) -> Pooling:
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_max_tokens"):
        return "max"
    if config.get("pooling_mode_lasttoken"):
        return "last"
    return "mean"


def _export(src: Path, path: Path) -> int:
    """Export the transformer with torch and check it against torch; returns the width."""
    torch = require("torch", extra="convert")
    transformers = require("transformers", extra="convert")
    transformers.AttentionInterface.register(_ATTENTION, _div_attention)
    try:
        model = transformers.AutoModel.from_pretrained(
            str(src), attn_implementation=_ATTENTION, local_files_only=True
        )
    except (ValueError, TypeError):  # architecture without the attention registry
        model = transformers.AutoModel.from_pretrained(
            str(src), attn_implementation="eager", local_files_only=True
        )
    model.eval()
    wrapper = _wrap(torch, model)
    sample = _padded_batch(torch, seq=9, seed=0)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            wrapper,
            sample,
            str(path),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in (*_INPUTS, "last_hidden_state")},
            opset_version=17,
            dynamo=False,
        )
    _check_against_torch(torch, wrapper, path)
    return int(model.config.hidden_size)


def _div_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **_: Any
) -> tuple[Any, None]:
    """Eager attention written the way ONNX Runtime's attention fusion recognises it."""
    import torch

    scores = torch.matmul(query, key.transpose(2, 3)) / float(query.shape[-1]) ** 0.5
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _wrap(torch: Any, model: Any) -> Any:
    class Exportable(torch.nn.Module):  # type: ignore[misc]
        """Takes 2-D masks, hands the model an additive 4-D one (no data-dependent branches)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            mask = attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)
            extended = (1.0 - mask) * -10000.0
            kwargs = {"input_ids": input_ids, "attention_mask": extended}
            if getattr(self.model.config, "type_vocab_size", 0):
                kwargs["token_type_ids"] = token_type_ids
            return self.model(**kwargs).last_hidden_state

    return Exportable().eval()


def _padded_batch(torch: Any, *, seq: int, seed: int) -> tuple[Any, Any, Any]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (4, seq), generator=gen)
    mask = torch.ones(4, seq, dtype=torch.long)
    for row in range(1, 4):
        mask[row, int(torch.randint(1, seq, (1,), generator=gen)) :] = 0
    ids[0, 0] = 101
    return ids, mask, torch.zeros_like(ids)


def _check_against_torch(torch: Any, wrapper: Any, path: Path) -> None:
    import numpy as np

    ort = require("onnxruntime", extra="embedding")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seq, seed in ((5, 1), (37, 2)):
        batch = _padded_batch(torch, seq=seq, seed=seed)
        with torch.no_grad():
            expected = wrapper(*batch).numpy()
        feeds = {i.name: b.numpy() for i, b in zip(session.get_inputs(), batch, strict=False)}
        got = session.run(None, feeds)[0]
        mask = batch[1].numpy()[..., None].astype(bool)
        error = float(np.abs(np.where(mask, got - expected, 0.0)).max())
        if error > 1e-3:
            raise ModelError(f"exported graph {path.name} differs from torch (max error {error})")


def _optimize(raw: Path, out: Path, src: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    config = _load_json(src / "config.json")
    model = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        opt_level=1,
        use_gpu=False,
    )
    logger.info("fused operators: %s", model.get_fused_operator_statistics())
    model.save_model_to_file(str(out))


def _quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8, per-channel QInt8 weights; the most sensitive MatMuls stay fp32.

    Activations are quantized per tensor at run time, so wide-range inputs hurt most.
    On all-MiniLM-L6-v2 (400 stdlib docstrings vs sentence-transformers) quantizing every
    MatMul gives a worst cosine of ~0.985; keeping the six FFN down-projections (fed by
    GELU) in fp32 gives 0.9915; also keeping the first layer (fed by the embeddings) gives
    0.9927 at about the same speed, so both stay fp32.
    """
    onnx = require("onnx", extra="convert")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32), load_external_data=False).graph
    producers = {o: n for n in graph.node for o in n.output}
    keep = [n.name for n in graph.node if _is_ffn_output(n, producers)]
    keep += _first_layer(graph.node)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=sorted(set(keep)),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def _is_ffn_output(node: Any, producers: dict[str, Any]) -> bool:
    if node.op_type != "MatMul":
        return False
    parent = producers.get(node.input[0])
    if parent is not None and parent.op_type in _GELU_OPS:
        return True
    name = str(node.name)
    return "output/dense" in name and "attention" not in name


def _first_layer(nodes: Any) -> list[str]:
    """Names of the MatMul/Attention nodes before the second attention block."""
    names, blocks = [], 0
    for node in nodes:
        if node.op_type in ("Attention", "Softmax"):
            blocks += 1
            if blocks == 2:
                break
        if node.op_type in ("Attention", "MatMul"):
            names.append(str(node.name))
    return names


def _quantize_openvino_int8(raw: Path, out: Path, tokenizer_path: Path, max_length: int) -> None:
    """Static int8 (NNCF, transformer preset) of the unfused export, saved as OpenVINO IR.

    Calibrated on :func:`calibration_texts` (prose, code, Markdown, tables, queries and
    other languages; disjoint from the parity set), each text one unpadded sequence, so
    padding never skews the ranges. The output projections (attention output and FFN
    down-projection, :data:`_OPENVINO_FLOAT_SCOPES`) stay in floating point: with every
    MatMul quantized, the worst cosine vs sentence-transformers on the parity set was
    0.958 (short texts such as "?" and "This is"); with those kept it was 0.9957.

    Why all twelve (six layers x two), not only the sensitive layers: measured per layer on a
    held-out quarter of the calibration texts (plus their first words, lone punctuation and
    400-fold repeated words), never on the parity set. Keeping any single projection in float
    leaves the worst cosine at 0.77-0.93; the FFN down-projections of layers 0 and 1 matter
    most, but even those plus layer 0's attention output give 0.946 (parity set 0.969). Leaving
    out any one of the twelve costs the least for layer 1's and layer 5's attention output and
    layer 5's down-projection (0.990-0.991); quantizing those three too passes the gate (parity
    worst cosine 0.9945, top-10 0.970) but was not measurably faster (within the ~10% noise of
    a shared 2-core machine); on the benchmark texts even the all-int8 graph is only ~1.2x the
    kept-in-float one, so the recipe stays. SmoothQuant alpha 0.5 (instead of NNCF's 0.95) or
    min/max activation ranges change the worst cosine by under 0.005 with these kept in float
    and do not rescue the all-int8 graph (0.963 and 0.959 on the parity set).
    """
    import numpy as np

    ov = require("openvino", extra="openvino")
    nncf = require("nncf", extra="openvino")
    tokenizers = require("tokenizers", extra="embedding")
    tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    model = ov.Core().read_model(str(raw))
    names = {i.get_any_name() for i in model.inputs}
    items = []
    for encoding in tokenizer.encode_batch(calibration_texts()):
        ids = np.asarray([encoding.ids], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        }
        items.append({k: v for k, v in feeds.items() if k in names})
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = nncf.quantize(
                model,
                nncf.Dataset(items),
                model_type=nncf.ModelType.TRANSFORMER,
                preset=nncf.QuantizationPreset.MIXED,
                subset_size=len(items),
                ignored_scope=nncf.IgnoredScope(patterns=list(_OPENVINO_FLOAT_SCOPES)),
            )
    finally:
        nncf_logger.setLevel(level)
    ov.save_model(quantized, str(out), compress_to_fp16=False)


def _to_fp16(fp32: Path, out: Path) -> None:
    onnx = require("onnx", extra="convert")
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(fp32)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(out))


def _write_tokenizer(src: Path, out: Path) -> None:
    """Copy ``tokenizer.json`` without its fixed padding/truncation (the engine sets both)."""
    path = src / "tokenizer.json"
    if not path.is_file():
        transformers = require("transformers", extra="convert")
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(src), local_files_only=True)
        tokenizer.backend_tokenizer.save(str(out))
        path = out
    data = _load_json(path)
    data["padding"] = None
    data["truncation"] = None
    out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
