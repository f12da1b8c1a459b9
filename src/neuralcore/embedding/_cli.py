"""``neuralcore models``: convert, list and inspect embedding models.

Registered into the ``neuralcore`` command tree by :func:`register`; :func:`main` runs the
subcommand alone (``main(["list"])``). Only argparse and the standard library are imported
here; the converter and the manifest reader are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ("main", "register")

_DESCRIPTION = (
    "Convert a local sentence-transformers model folder into a neuralcore model folder,"
    " list the converted models, or show and verify one (its variants, their measured"
    " parity with sentence-transformers and speed, and which variant is the default)."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``models`` (convert / list / info) to a ``neuralcore`` subcommand tree."""
    parser = sub.add_parser(
        "models", help="convert and inspect embedding models", description=_DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = actions.add_parser(
        "convert",
        help="convert a local sentence-transformers folder",
        description="Export a sentence-transformers folder to ONNX (and OpenVINO), measure"
        " each variant against sentence-transformers, and record the fastest variant that"
        " passes the parity gate as the default.",
    )
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
    convert.add_argument(
        "--select",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure parity and speed of every variant against sentence-transformers and"
        " record the default (default: on when sentence-transformers is installed)",
    )
    convert.add_argument("--name", help="model name for the manifest (default: folder name)")
    actions.add_parser(
        "list",
        help="list converted models in the cache folder",
        description="List the converted models in the cache folder and their defaults.",
    )
    info = actions.add_parser(
        "info",
        help="show and verify a converted model's manifest",
        description="Show a converted model's manifest, its variants with measured parity"
        " and speed, the default and exact variants, and check every file's hash.",
    )
    info.add_argument("model", help="model name or folder")
    parser.set_defaults(run=_run)


def main(argv: list[str]) -> int:
    """Run ``neuralcore models ACTION ...`` alone; returns the exit status.

    Errors are printed as ``neuralcore: error: ...`` on stderr with status 2.

    Examples
    --------
    >>> main(["list"])  # doctest: +ELLIPSIS
    all-MiniLM-L6-v2 ...
    0
    """
    from neuralcore.errors import NeuralcoreError

    parser = argparse.ArgumentParser(prog="neuralcore")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", *argv])
    try:
        result: int = args.run(args)
    except NeuralcoreError as err:
        print(f"neuralcore: error: {err}", file=sys.stderr)
        return 2
    return result


def _run(args: argparse.Namespace) -> int:
    if args.action == "convert":
        return _convert(args)
    if args.action == "list":
        return _list()
    return _info(args.model)


def _convert(args: argparse.Namespace) -> int:
    from neuralcore.embedding._convert import convert_model

    info = convert_model(
        args.source,
        args.output,
        quantize=args.quantize,
        optimize=args.optimize,
        name=args.name,
        openvino_int8=args.openvino_int8,
        select=args.select,
    )
    graphs = ", ".join(f"{k}={v}" for k, v in info.graphs.items())
    print(f"converted {info.name} (dim {info.dimension}, {info.pooling} pooling) -> {info.path}")
    print(f"graphs: {graphs}")
    for line in _variant_lines(info):
        print(line)
    return 0


def _list() -> int:
    from neuralcore.embedding._models import MANIFEST, models_dir, read_manifest

    folder = models_dir()
    found = sorted(p for p in folder.glob("*") if (p / MANIFEST).is_file())
    if not found:
        print(f"no converted models in {folder}")
    for path in found:
        info = read_manifest(path)
        print(
            f"{path.name:<24} dim {info.dimension:<5} default {info.default:<14}"
            f" variants {', '.join(info.variant_names())}"
        )
    return 0


def _info(model: str) -> int:
    from neuralcore.embedding._models import read_manifest, resolve_model, verify_files

    info = read_manifest(resolve_model(model))
    verify_files(info, sorted(info.files))
    print(json.dumps({**info.to_manifest(), "path": str(info.path)}, indent=2))
    for line in _variant_lines(info):
        print(line)
    print("all files match their manifest hashes")
    return 0


def _variant_lines(info: Any) -> list[str]:
    lines = [f"default variant: {info.default} (EmbeddingEngine() runs it)"]
    lines.append(f"exact variant: {info.exact} (EmbeddingEngine(precision='exact'))")
    if not info.parity:
        lines.append("parity not measured at conversion (sentence-transformers not installed)")
        return lines
    lines.append(f"{'variant':<20} {'min cosine':>10} {'top-10':>7} {'ms/100 texts':>13}  gate")
    for name, row in info.parity.items():
        gate = "pass" if row.get("passes") else "FAIL"
        lines.append(
            f"{name:<20} {row.get('min_cosine', 0.0):>10.5f} {row.get('top10', 0.0):>7.3f}"
            f" {row.get('ms_100', 0.0):>13.1f}  {gate}"
        )
    return lines
