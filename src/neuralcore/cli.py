"""The ``neuralcore`` command line: info, benchmarks, model conversion, demo, migration.

Each subcommand lives in the subpackage that owns it and takes its own argv, so this file
only routes; heavy imports happen inside the chosen subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ("main",)

_BENCHES = ("vectors", "embedding", "messaging", "bridges")

# subcommand -> (module, help); the module has ``main(argv: list[str]) -> int``
_ROUTES = {
    "models": ("neuralcore.embedding._cli", "convert and inspect embedding models"),
    "demo": ("neuralcore._demo", "run the end-to-end demo (chunk, embed, index, query)"),
    "migrate": ("neuralcore.compat._migrate", "rewrite an application's imports to neuralcore"),
}


def _parser() -> argparse.ArgumentParser:
    from neuralcore import __version__

    parser = argparse.ArgumentParser(prog="neuralcore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"neuralcore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="show which backend serves each engine")
    bench = sub.add_parser("bench", help="run benchmarks with baselines beside neuralcore")
    bench.add_argument("suite", nargs="?", default="all", choices=(*_BENCHES, "all"))
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="options for the suite")
    for name, (_, text) in _ROUTES.items():
        route = sub.add_parser(name, help=text, add_help=False)
        route.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _run_module(module_name: str, argv: list[str]) -> int:
    module = importlib.import_module(module_name)
    result: int = module.main(argv)
    return result


def _info() -> int:
    from neuralcore import __version__, backend_info

    print(f"neuralcore {__version__}")
    for engine, info in backend_info().items():
        version = f" {info.version}" if info.version else ""
        detail = f" ({info.detail})" if info.detail else ""
        print(f"  {engine:<10} {info.backend:<7} {info.library}{version}{detail}")
    return 0


def _bench(suite: str, rest: list[str]) -> int:
    if suite != "all":
        return _run_module(f"neuralcore._bench.{suite}", rest)
    return _run_module("neuralcore._bench.report", rest)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuralcore`` console script.

    Examples
    --------
    >>> main(["info"])  # doctest: +ELLIPSIS
    neuralcore ...
    0
    """
    from neuralcore.core import NeuralcoreError

    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if words and words[0] in _ROUTES:  # the subcommand parses its own options
            logging.basicConfig(level=logging.WARNING)
            return _run_module(_ROUTES[words[0]][0], words[1:])
        args = _parser().parse_args(words)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
        if args.command == "info":
            return _info()
        if args.command == "bench":
            return _bench(args.suite, list(args.rest))
    except NeuralcoreError as err:
        print(f"neuralcore: error: {err}", file=sys.stderr)
        return 2
    _parser().print_help()
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
