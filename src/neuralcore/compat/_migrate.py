"""``neuralcore migrate PATH [--dry-run]``: point an application's imports at the adapters.

The codemod uses the standard library's :mod:`ast` to find ``from X import ...`` statements
naming a replaced module (absolute or relative, resolved from the file's package), and
rewrites only those lines: names we replace move to ``from neuralcore.compat.atlas import``,
the rest keep their original import. Everything else in the file stays byte for byte.

Guarantees: a file that does not parse (or does not decode as UTF-8) is reported and left
alone; a rewrite that would not parse is discarded; running twice changes nothing more;
``--dry-run`` prints the unified diff and writes nothing.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

__all__ = ("REPLACEMENTS", "TARGET_MODULE", "MigrationResult", "main", "migrate_source")

TARGET_MODULE = "neuralcore.compat.atlas"

_NCB = {
    "NeuralCognitiveBus": "NeuralCognitiveBus",
    "ChannelConfig": "ChannelConfig",
    "SubscriberConfig": "SubscriberConfig",
    "Message": "Message",
    "SecurityConfig": "SecurityConfig",
    "Plugin": "Plugin",
}
_PROVIDER = {"HuggingFaceEmbeddingProvider": "HuggingFaceEmbeddingProvider"}

#: module -> {name imported from it: name in ``neuralcore.compat.atlas``}
REPLACEMENTS: dict[str, dict[str, str]] = {
    "core.messaging.NCB": _NCB,
    "core.messaging": {"NeuralCognitiveBus": "NeuralCognitiveBus", "NCBMessage": "Message"},
    "modules.storage.embeddings.huggingface": _PROVIDER,
    "modules.storage.embeddings": _PROVIDER,
    "modules.storage.chunking.semantic": {"cosine_similarity": "cosine_similarity"},
    "modules.storage.chunking": {"cosine_similarity": "cosine_similarity"},
    "modules.storage.retrieval.cache": {"QueryResultCache": "QueryResultCache"},
    "modules.storage.retrieval": {"QueryResultCache": "QueryResultCache"},
}

_SKIP_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", "site-packages", ".tox"}
)
_MAX_LINE = 99


@dataclass
class MigrationResult:
    """What the codemod did to one file.

    Attributes
    ----------
    path: the file.
    label: the file's name in diffs (relative to the migrated folder).
    old, new: its text before and after (equal when nothing changed).
    skipped: why the file was left alone (``""`` when it was processed).
    rewrites: how many import statements were rewritten.
    notes: what was found but left alone, and why.
    """

    path: Path
    label: str = ""
    old: str = ""
    new: str = ""
    skipped: str = ""
    rewrites: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when the new text differs from the old."""
        return not self.skipped and self.old != self.new

    def diff(self) -> str:
        """Unified diff of the change (empty when unchanged)."""
        lines = difflib.unified_diff(
            self.old.splitlines(keepends=True),
            self.new.splitlines(keepends=True),
            fromfile=f"a/{self.label or self.path}",
            tofile=f"b/{self.label or self.path}",
        )
        return "".join(lines)


def _resolve(node: ast.ImportFrom, package: str) -> str:
    """Absolute module name of ``from ... import`` (relative levels climb ``package``)."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".") if package else []
    base = parts[: len(parts) - (node.level - 1)] if node.level - 1 <= len(parts) else []
    return ".".join([*base, *([node.module] if node.module else [])])


def _table_for(module: str) -> dict[str, str] | None:
    """Replacement names for ``module`` (also when the app is installed as ``ATLAS.``)."""
    return REPLACEMENTS.get(module) or REPLACEMENTS.get(module.removeprefix("ATLAS."))


def _alias_text(name: str, asname: str | None) -> str:
    return name if asname is None or asname == name else f"{name} as {asname}"


def _import_line(indent: str, module: str, names: Sequence[str]) -> str:
    line = f"{indent}from {module} import {', '.join(names)}"
    if len(line) <= _MAX_LINE:
        return line
    inner = "".join(f"{indent}    {n},\n" for n in names)
    return f"{indent}from {module} import (\n{inner}{indent})"


def _rewrite_node(node: ast.ImportFrom, package: str, indent: str) -> str | None:
    """Replacement text for one import statement, or ``None`` to leave it."""
    table = _table_for(_resolve(node, package))
    if table is None or any(a.name == "*" for a in node.names):
        return None
    moved = [a for a in node.names if a.name in table]
    if not moved:
        return None
    kept = [a for a in node.names if a.name not in table]
    lines = []
    if kept:
        source_module = "." * node.level + (node.module or "")
        lines.append(
            _import_line(indent, source_module, [_alias_text(a.name, a.asname) for a in kept])
        )
    new_names = [_alias_text(table[a.name], a.asname or a.name) for a in moved]
    lines.append(_import_line(indent, TARGET_MODULE, new_names))
    return "\n".join(lines)


def _package_of(path: Path, root: Path) -> str:
    """Dotted package of ``path``: its folders below ``root`` (namespace packages included),
    then upwards past ``root`` while folders hold an ``__init__.py``."""
    top = root if root.is_dir() else root.parent
    try:
        parts = list(path.parent.resolve().relative_to(top.resolve()).parts)
    except ValueError:
        top, parts = path.parent, []
    here = top.resolve()
    while (here / "__init__.py").exists() and here != here.parent:
        parts.insert(0, here.name)
        here = here.parent
    return ".".join(parts)


def migrate_source(source: str, *, package: str = "") -> tuple[str, int, list[str]]:
    """Rewrite the replaced imports in ``source``.

    Parameters
    ----------
    source
        Python source text.
    package
        The dotted package the source lives in (resolves relative imports).

    Returns
    -------
    tuple
        ``(new_source, statements_rewritten, notes)``.

    Raises
    ------
    SyntaxError
        ``source`` does not parse.

    Examples
    --------
    >>> new, n, _ = migrate_source("from core.messaging.NCB import NeuralCognitiveBus\\n")
    >>> print(new, end="")
    from neuralcore.compat.atlas import NeuralCognitiveBus
    >>> migrate_source(new)[1]
    0
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits, notes = _plan_edits(tree, lines, package)
    for start, end, text in sorted(edits, reverse=True):
        tail = lines[end - 1]
        newline = tail[len(tail.rstrip("\r\n")) :] or "\n"
        lines[start - 1 : end] = [text + newline]
    return "".join(lines), len(edits), notes


def _plan_edits(
    tree: ast.Module, lines: list[str], package: str
) -> tuple[list[tuple[int, int, str]], list[str]]:
    edits: list[tuple[int, int, str]] = []
    notes: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            notes.extend(_import_notes(node))
        if not isinstance(node, ast.ImportFrom) or node.end_lineno is None:
            continue
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        indent = first[: node.col_offset]
        text = _rewrite_node(node, package, indent)
        if text is None:
            continue
        rest = last[node.end_col_offset :].rstrip("\r\n") if node.end_col_offset else ""
        if indent.strip() or (rest.strip() and not rest.strip().startswith("#")):
            notes.append(f"line {node.lineno}: shares its line with other code; not rewritten")
            continue
        edits.append((node.lineno, node.end_lineno, text + rest))
    return edits, notes


def _import_notes(node: ast.Import) -> Iterator[str]:
    for alias in node.names:
        if _table_for(alias.name) is not None:
            yield (
                f"line {node.lineno}: 'import {alias.name}' left as is; "
                f"use 'from {alias.name} import ...' so it can be rewritten"
            )


def migrate_file(path: Path, *, root: Path, write: bool) -> MigrationResult:
    """Run the codemod on one file; writes only when ``write`` and the text changed."""
    result = MigrationResult(path, label=_label(path, root))
    try:
        result.old = path.read_text(encoding="utf-8")
        result.new, result.rewrites, result.notes = migrate_source(
            result.old, package=_package_of(path, root)
        )
        ast.parse(result.new)
    except (UnicodeDecodeError, SyntaxError, ValueError) as err:
        result.skipped = f"{type(err).__name__}: {err}"
        result.new = result.old
        return result
    if write and result.changed:
        path.write_text(result.new, encoding="utf-8")
    return result


def _label(path: Path, root: Path) -> str:
    return path.name if root.is_file() else path.relative_to(root).as_posix()


def iter_python_files(root: Path) -> Iterator[Path]:
    """``root`` itself if it is a file, else every ``*.py`` below it outside tool dirs."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.py")):
        if not _SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuralcore migrate",
        description="Rewrite imports of ATLAS's bus, embedding provider and similarity code "
        f"to {TARGET_MODULE} (set NEURALCORE_COMPAT=off to switch back at run time).",
    )
    parser.add_argument("path", type=Path, help="a Python file or a directory to migrate")
    parser.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Entry point of ``neuralcore migrate``; returns the exit status.

    Prints the unified diff of every changed file on stdout and a summary (skipped files,
    notes) on stderr. Exit status 0 on success, 2 when ``PATH`` does not exist.
    """
    items = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(items[1:] if items[:1] == ["--"] else items)
    stdout = out or sys.stdout
    root: Path = args.path
    if not root.exists():
        print(f"neuralcore migrate: {root}: no such file or directory", file=sys.stderr)
        return 2
    results = [migrate_file(p, root=root, write=not args.dry_run) for p in iter_python_files(root)]
    for result in results:
        stdout.write(result.diff())
    _summary(results, dry_run=args.dry_run)
    return 0


def _summary(results: Sequence[MigrationResult], *, dry_run: bool) -> None:
    for result in results:
        if result.skipped:
            print(f"skipped {result.path}: {result.skipped}", file=sys.stderr)
        for note in result.notes:
            print(f"note {result.path}: {note}", file=sys.stderr)
    changed = [r for r in results if r.changed]
    statements = sum(r.rewrites for r in changed)
    verb = "would rewrite" if dry_run else "rewrote"
    print(
        f"{verb} {statements} import(s) in {len(changed)} of {len(results)} file(s)",
        file=sys.stderr,
    )
