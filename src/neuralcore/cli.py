"""The ``neuralcore`` command line: one argparse tree.

Each subcommand module adds its own parser with ``register(sub)`` and sets ``run`` on it;
this module builds the tree, runs the chosen command, and prints a ``NeuralcoreError`` as
one line, ``neuralcore: error: ...``, with exit status 2. Subcommand modules import only
the standard library at module level, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ("build_parser", "main")

_DESCRIPTION = (
    "Native-speed embeddings, vector search and messaging. "
    "Run 'neuralcore COMMAND --help' for a command's options."
)

# command -> (module whose ``register(sub)`` adds it, help shown if the module cannot load)
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("neuralcore._demo", "run the end-to-end demo"),
    "bench": ("neuralcore._bench", "run benchmarks"),
    "models": ("neuralcore.embedding._cli", "convert and inspect embedding models"),
    "migrate": ("neuralcore.compat.migrate", "rewrite an application's imports to neuralcore"),
}

Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns


def build_parser() -> argparse.ArgumentParser:
    """The whole ``neuralcore`` command tree.

    Examples
    --------
    >>> build_parser().parse_args(["-v", "info"]).verbose
    True
    """
    from neuralcore import __version__

    parser = argparse.ArgumentParser(prog="neuralcore", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"neuralcore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser(
        "info",
        help="show which backend serves each engine",
        description="Show which library serves each engine, its version, and why.",
    )
    info.set_defaults(run=_info)
    for name, (module_name, text) in _COMMANDS.items():
        _register(sub, name, module_name, text)
    return parser


def _register(sub: Subparsers[Any], name: str, module_name: str, text: str) -> None:
    from neuralcore.errors import MissingDependencyError

    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError as err:  # the command says so when it is run
        _unavailable(sub, name, text, err)
        return
    module.register(sub)


def _unavailable(sub: Subparsers[Any], name: str, text: str, err: Exception) -> None:
    parser = sub.add_parser(name, help=text, description=str(err), add_help=False)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        raise err

    parser.set_defaults(run=run, passthrough=True)


def _info(args: argparse.Namespace) -> int:
    from neuralcore import __version__, backend_info

    engines = backend_info()  # a bad NEURALCORE_BACKEND fails here, before any output
    print(f"neuralcore {__version__}")
    for engine, info in engines.items():
        version = f" {info.version}" if info.version else ""
        detail = f" ({info.detail})" if info.detail else ""
        print(f"  {engine:<10} {info.backend:<7} {info.library}{version}{detail}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuralcore`` console script; returns the exit status.

    Examples
    --------
    >>> main(["info"])  # doctest: +ELLIPSIS
    neuralcore ...
    0
    """
    from neuralcore.errors import NeuralcoreError

    parser = build_parser()
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if extra:  # options a suite or an unavailable command gets as they are, or a mistake
        if not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.rest = [*extra, *args.rest]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 1
    try:
        result: int = args.run(args)
    except NeuralcoreError as err:
        print(f"neuralcore: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT
        print("neuralcore: interrupted", file=sys.stderr)
        # work cut short leaves objects whose finalizers complain at exit ("coroutine ...
        # was never awaited", "Exception ignored in ..."); after Ctrl-C, as the process exits,
        # that is noise
        warnings.simplefilter("ignore")
        sys.unraisablehook = _quiet
        return 130
    return result


def _quiet(unraisable: Any) -> None:
    """An unraisable-exception hook that prints nothing."""


if __name__ == "__main__":
    raise SystemExit(main())
