"""``neuralcore models``: convert, list and inspect embedding models."""

from __future__ import annotations

import argparse
import json
import sys

from neuralcore.core._errors import NeuralcoreError

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuralcore models", description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = sub.add_parser("convert", help="convert a local sentence-transformers folder")
    convert.add_argument("source", help="sentence-transformers model folder")
    convert.add_argument("-o", "--output", required=True, help="neuralcore model folder to write")
    convert.add_argument("--quantize", choices=("int8", "fp16"), help="also write this graph")
    convert.add_argument(
        "--optimize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="apply ONNX Runtime transformer fusions (default: on)",
    )
    convert.add_argument(
        "--openvino-int8",
        action="store_true",
        help="also write a static int8 OpenVINO graph, calibrated by NNCF (openvino extra)",
    )
    convert.add_argument("--name", help="model name for the manifest (default: folder name)")
    sub.add_parser("list", help="list converted models in the cache folder")
    info = sub.add_parser("info", help="show and verify a converted model's manifest")
    info.add_argument("model", help="model name or folder")
    return parser


def main(argv: list[str]) -> int:
    """Run ``neuralcore models ACTION ...``; returns the exit status.

    Examples
    --------
    >>> main(["list"])  # doctest: +ELLIPSIS
    all-MiniLM-L6-v2 ...
    0
    """
    args = _parser().parse_args(argv)
    try:
        if args.action == "convert":
            return _convert(args)
        if args.action == "list":
            return _list()
        return _info(args.model)
    except NeuralcoreError as err:
        print(f"neuralcore models: error: {err}", file=sys.stderr)
        return 2


def _convert(args: argparse.Namespace) -> int:
    from neuralcore.embedding._convert import convert_model

    info = convert_model(
        args.source,
        args.output,
        quantize=args.quantize,
        optimize=args.optimize,
        name=args.name,
        openvino_int8=args.openvino_int8,
    )
    graphs = ", ".join(f"{k}={v}" for k, v in info.graphs.items())
    print(f"converted {info.name} (dim {info.dimension}, {info.pooling} pooling) -> {info.path}")
    print(f"graphs: {graphs}")
    return 0


def _list() -> int:
    from neuralcore.embedding._models import MANIFEST, models_dir, read_manifest

    folder = models_dir()
    found = sorted(p for p in folder.glob("*") if (p / MANIFEST).is_file())
    if not found:
        print(f"no converted models in {folder}")
    for path in found:
        info = read_manifest(path)
        print(f"{path.name:<24} dim {info.dimension:<5} {', '.join(info.graphs)}")
    return 0


def _info(model: str) -> int:
    from neuralcore.embedding._models import read_manifest, resolve_model, verify_files

    info = read_manifest(resolve_model(model))
    verify_files(info, sorted(info.files))
    print(json.dumps({**info.to_manifest(), "path": str(info.path)}, indent=2))
    print("all files match their manifest hashes")
    return 0
