"""The codemod behind ``neuralcore migrate``: point an application's imports at the adapters.

It uses the standard library's :mod:`ast` to find ``from X import ...`` statements naming a
replaced module (absolute or relative, resolved from the file's package), and rewrites only
those statements: names we replace move to a ``from neuralcore.compat.atlas import`` line
(names sorted, placed just above, where isort puts a third-party import), the rest stay in
the original statement with its comments; a statement all of whose names move keeps its
comment lines. In modules that define one of ATLAS's pure-Python cosine loops
(:data:`ACCELERATE`), a block is appended that rebinds each loop to
:func:`neuralcore.compat.atlas.accelerated` of itself, so the module's own callers (the
semantic splitter, the vector stores, ``ConversationService``, the RAG evaluator's
relevancy metrics) get the vector kernels. A loop that is a method is rebound on its class
after the class body, keeping its kind: a ``staticmethod`` stays one, a regular method
``(self, a, b)`` stays one (``accelerated(..., method=True)``); other shapes get a note and
are left alone. ``NEURALCORE_COMPAT=off`` hands back the original functions. Everything
else in the file stays byte for byte.

Tests are left alone unless asked (:func:`is_test_file`): an application's tests should
exercise it, migrated or not.

Guarantees: a file that does not parse (or does not decode as UTF-8) is reported and left
alone; a rewrite that would not parse is discarded; running twice changes nothing more.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = (
    "ACCELERATE",
    "REPLACEMENTS",
    "TARGET_MODULE",
    "MigrationResult",
    "is_test_file",
    "iter_python_files",
    "migrate_file",
    "migrate_source",
)

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

#: module -> cosine loops rebound to ``accelerated(...)``: module-level functions by name,
#: methods as ``Class.method`` (a ``staticmethod`` stays one; a regular method stays one)
ACCELERATE: dict[str, tuple[str, ...]] = {
    "modules.storage.chunking.semantic": ("cosine_similarity",),
    "modules.Server.conversation_routes": ("_cosine_similarity",),
    "modules.conversation_store.vector_pipeline": ("_cosine_similarity",),
    "modules.Tools.providers.vector_store.in_memory": ("_cosine_similarity",),
    "modules.Tools.providers.vector_store.faiss": ("_cosine_score",),
    "core.services.conversations": ("ConversationService._cosine_similarity",),
    "modules.storage.evaluation.evaluator": ("RelevancyCalculator._cosine_similarity",),
}
_MARK = "# neuralcore migrate:"

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


def _isort_key(text: str) -> tuple[int, str]:
    """isort's default order: CONSTANTS, then Classes, then functions; each alphabetical."""
    name = text.split(" as ")[0]
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def _import_line(indent: str, module: str, names: Sequence[str]) -> str:
    line = f"{indent}from {module} import {', '.join(names)}"
    if len(line) <= _MAX_LINE:
        return line
    inner = "".join(f"{indent}    {n},\n" for n in names)
    return f"{indent}from {module} import (\n{inner}{indent})"


def _comments(text: str) -> list[str]:
    """Every comment in a statement's text, in order."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return re.findall(r"#.*", text)
    return [t.string for t in tokens if t.type == tokenize.COMMENT]


_OWN_LINE = re.compile(r"\s*(\w+)(?:\s+as\s+\w+)?\s*,?\s*(#.*)?")


def _without(stmt: list[str], moved: set[str]) -> tuple[str, list[str]] | None:
    """The statement's text without the lines of moved names (comment lines kept), and the
    trailing comments of those lines; ``None`` unless every moved name has its own line."""
    out, carried, found = [], [], set()
    for line in stmt:
        m = _OWN_LINE.fullmatch(line)
        if m is not None and m.group(1) in moved:
            found.add(m.group(1))
            if m.group(2):
                carried.append(m.group(2))
            continue
        out.append(line)
    if found != moved:
        return None
    body = "\n".join(out)
    try:
        ast.parse(body.strip())
    except SyntaxError:
        return None
    return body, carried


def _rewrite_node(node: ast.ImportFrom, package: str, indent: str, stmt: list[str]) -> str | None:
    """Replacement text for one import statement (``stmt``: its source lines), or ``None``
    to leave it. Comments inside the statement are kept."""
    table = _table_for(_resolve(node, package))
    if table is None or any(a.name == "*" for a in node.names):
        return None
    moved = [a for a in node.names if a.name in table]
    if not moved:
        return None
    kept = [a for a in node.names if a.name not in table]
    names = sorted((_alias_text(table[a.name], a.asname or a.name) for a in moved), key=_isort_key)
    ours = _import_line(indent, TARGET_MODULE, names)
    stripped = _without(stmt, {a.name for a in moved}) if kept and len(stmt) > 1 else None
    if stripped is not None:  # one name per line: drop the moved lines, keep the rest as is
        body, carried = stripped
        if carried and "\n" not in ours:
            ours += "  " + "  ".join(carried)
        return f"{ours}\n{body}"
    comments = [f"{indent}{c}" for c in _comments("\n".join(s.strip() for s in stmt))]
    lines = [*comments, ours]
    if kept:
        source_module = "." * node.level + (node.module or "")
        kept_names = [_alias_text(a.name, a.asname) for a in kept]
        lines.append(_import_line(indent, source_module, kept_names))
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


def migrate_source(
    source: str, *, package: str = "", module: str = ""
) -> tuple[str, int, list[str]]:
    """Rewrite the replaced imports in ``source``.

    Parameters
    ----------
    source
        Python source text.
    package
        The dotted package the source lives in (resolves relative imports).
    module
        The source's own dotted module name (selects :data:`ACCELERATE` entries).

    Returns
    -------
    tuple
        ``(new_source, edits, notes)``: edits counts rewritten import statements and an
        appended acceleration block.

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
    new = "".join(lines)
    extra, more_notes = _acceleration(tree, source, module)
    notes.extend(more_notes)
    if extra:
        new = new + ("" if new.endswith("\n") or not new else "\n") + extra
    return new, len(edits) + bool(extra), notes


def _acceleration(tree: ast.Module, source: str, module: str) -> tuple[str, list[str]]:
    """Lines appended to a module defining one of :data:`ACCELERATE`'s loops (only those
    not already there), and notes on loops found in a shape left alone."""
    wanted = ACCELERATE.get(module) or ACCELERATE.get(module.removeprefix("ATLAS."), ())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    rebinds: list[str] = []
    notes: list[str] = []
    for name in wanted:
        owner, _, attr = name.rpartition(".")
        if not owner:
            if name in functions:
                rebinds.append(f"{name} = _nc_accelerated({name})")
            continue
        line = _method_rebind(classes.get(owner), owner, attr, notes)
        if line is not None:
            rebinds.append(line)
    present = {line.strip() for line in source.splitlines()}
    missing = [r for r in rebinds if r.splitlines()[0] not in present]
    if not missing:
        return "", notes
    head = (
        ""
        if _MARK in source
        else (
            f"\n\n{_MARK} the loops above run on neuralcore's vector kernels\n"
            "# (NEURALCORE_COMPAT=off hands back the original functions).\n"
            f"from {TARGET_MODULE} import accelerated as _nc_accelerated  # noqa: E402\n"
        )
    )
    return head + "\n" + "".join(f"{r}\n" for r in missing), notes


def _method_rebind(cls: ast.ClassDef | None, owner: str, attr: str, notes: list[str]) -> str | None:
    """The rebinding of ``owner.attr`` keeping its kind, or ``None`` (with a note when the
    method is there in a shape we do not rebind)."""
    if cls is None:
        return None
    found = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == attr]
    if not found:
        return None
    node = found[-1]  # the last definition is the one the class keeps
    decorators = [d.id if isinstance(d, ast.Name) else "" for d in node.decorator_list]
    target = f"{owner}.{attr}"
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    plain = not (args.vararg or args.kwarg or args.kwonlyargs or args.defaults)
    if plain and decorators == ["staticmethod"] and positional == 2:
        call = f"staticmethod(_nc_accelerated({target}))"
    elif plain and not decorators and positional == 3:
        call = f"_nc_accelerated({target}, method=True)"
    else:
        notes.append(f"line {node.lineno}: {target} is not a plain or static method; left alone")
        return None
    line = f"{target} = {call}"
    if len(line) <= _MAX_LINE:
        return line
    return f"{target} = (\n    {call}\n)"


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
        stmt = [x.rstrip("\r\n") for x in lines[node.lineno - 1 : node.end_lineno]]
        end = node.end_col_offset or len(stmt[-1])
        stmt[-1] = stmt[-1][:end] if len(stmt) > 1 else stmt[-1][node.col_offset : end]
        if len(stmt) == 1:
            stmt[0] = indent + stmt[0]
        text = _rewrite_node(node, package, indent, stmt)
        if text is None:
            continue
        rest = last[end:].rstrip("\r\n")
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
        package = _package_of(path, root)
        module = package if path.stem == "__init__" else f"{package}.{path.stem}".strip(".")
        result.new, result.rewrites, result.notes = migrate_source(
            result.old, package=package, module=module
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


def is_test_file(path: Path) -> bool:
    """A test module or fixture file: under a ``tests``/``test`` folder, or named
    ``test_*.py``, ``*_test.py`` or ``conftest.py``.

    Examples
    --------
    >>> is_test_file(Path("tests/rag/test_x.py")), is_test_file(Path("modules/x.py"))
    (True, False)
    """
    name = path.name
    if name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py"):
        return True
    return bool({"tests", "test"}.intersection(path.parts[:-1]))


def iter_python_files(root: Path, *, include_tests: bool = False) -> Iterator[Path]:
    """``root`` itself if it is a file, else every ``*.py`` below it outside tool dirs
    (and outside tests unless ``include_tests``)."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_DIRS.intersection(rel.parts[:-1]):
            continue
        if include_tests or not is_test_file(rel):
            yield path
