"""``neuralcore migrate PATH``: the command line of the codemod (see ``_codemod``).

Follows the CLI protocol: :func:`register` adds the subcommand to the ``neuralcore``
argparse tree; :func:`main` runs it on its own. Only argparse and the standard library are
imported at module level.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from neuralcore.core._errors import InvalidInputError

__all__ = ("main", "register")

_TARGET = "neuralcore.compat.atlas"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` to the ``neuralcore`` command tree."""
    parser = sub.add_parser(
        "migrate",
        help="rewrite an application's imports to neuralcore",
        description="Rewrite imports of ATLAS's bus, embedding provider and similarity code "
        f"to {_TARGET} (set NEURALCORE_COMPAT=off to switch back at run time). Tests are "
        "left alone unless --include-tests is given.",
    )
    _arguments(parser)
    parser.set_defaults(run=_run)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="a Python file or a directory to migrate")
    parser.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    parser.add_argument(
        "--include-tests",
        action="store_true",
        help="also rewrite test files (tests/, test_*.py, *_test.py, conftest.py)",
    )


def _run(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Migrate ``args.path``; diffs on stdout, a summary on stderr.

    Raises
    ------
    InvalidInputError
        ``path`` does not exist.
    """
    from neuralcore.compat.migrate._codemod import iter_python_files, migrate_file

    root: Path = args.path
    if not root.exists():
        raise InvalidInputError(f"migrate: {root}: no such file or directory")
    stdout = out or sys.stdout
    files = iter_python_files(root, include_tests=args.include_tests)
    results = [migrate_file(p, root=root, write=not args.dry_run) for p in files]
    for result in results:
        stdout.write(result.diff())
    for result in results:
        if result.skipped:
            print(f"skipped {result.path}: {result.skipped}", file=sys.stderr)
        for note in result.notes:
            print(f"note {result.path}: {note}", file=sys.stderr)
    changed = [r for r in results if r.changed]
    verb = "would rewrite" if args.dry_run else "rewrote"
    edits = sum(r.rewrites for r in changed)
    print(
        f"{verb} {edits} statement(s) in {len(changed)} of {len(results)} file(s)", file=sys.stderr
    )
    return 0


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """``neuralcore migrate`` on its own; returns the exit status (2 for a bad path)."""
    items = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="neuralcore migrate")
    _arguments(parser)
    args = parser.parse_args(items[1:] if items[:1] == ["--"] else items)
    try:
        return _run(args, out=out)
    except InvalidInputError as err:
        print(f"neuralcore: error: {err}", file=sys.stderr)
        return 2
