"""The demo's corpus: docstrings of the standard library, read from source, then chunked.

Every Python install has the standard library's sources, so the demo needs no download.
Files are read and parsed by the embedding corpus's reader
(:func:`neuralcore.embedding.parity.read_module`);
docstrings are taken with :mod:`ast` (``ast.get_docstring``, the text ``pydoc`` shows), with
a dotted title each, so no module is imported and nothing runs.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import itertools
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = ("Chunk", "Doc", "chunk_docs", "stdlib_docs")

_MIN_CHARS = 60
_SKIP = frozenset({"this", "antigravity", "idlelib", "lib2to3", "test", "turtledemo"})
# Everyday modules first, so even a small --max-docs corpus answers everyday questions.
_FIRST = (
    "json", "os", "pathlib", "subprocess", "urllib", "hashlib", "argparse", "tempfile", "re",
    "datetime", "collections", "itertools", "functools", "logging", "shutil", "csv", "sqlite3",
    "asyncio", "threading", "typing", "dataclasses", "http", "random", "string", "textwrap",
)  # fmt: skip
_SKIP_SUB = frozenset({"test", "tests", "idle_test"})


class Doc(NamedTuple):
    """One docstring: ``title`` is the dotted name (``json.dumps``)."""

    title: str
    text: str


class Chunk(NamedTuple):
    """A piece of a docstring small enough to embed (``key`` indexes it in HNSW)."""

    key: int
    title: str
    text: str


def _module_names() -> list[str]:
    """Public stdlib modules, plus one level of submodules of packages (``urllib.parse``)."""
    names: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    rest = sorted(n for n in names if not n.startswith("_") and n not in _SKIP | set(_FIRST))
    tops = [n for n in _FIRST if n in names] + rest
    out: list[str] = []
    for name in tops:
        out.append(name)
        out.extend(_submodules(name))
    return out


def _submodules(name: str) -> list[str]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    paths = getattr(spec, "submodule_search_locations", None) or []
    subs = {m.name for m in pkgutil.iter_modules(list(paths)) if not m.name.startswith("_")}
    return [f"{name}.{sub}" for sub in sorted(subs - _SKIP_SUB)]


def _source_path(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin.endswith(".py") else None


def _docs_of(module: str, tree: ast.Module) -> list[Doc]:
    docs = [Doc(module, ast.get_docstring(tree) or "")]
    for node in tree.body:
        docs.extend(_node_docs(module, node))
    return [d for d in docs if len(d.text) >= _MIN_CHARS]


def _node_docs(prefix: str, node: ast.stmt) -> Iterator[Doc]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return
    if node.name.startswith("_"):
        return
    yield Doc(f"{prefix}.{node.name}", ast.get_docstring(node) or "")
    if isinstance(node, ast.ClassDef):
        for child in node.body:
            yield from _node_docs(f"{prefix}.{node.name}", child)


def stdlib_docs(max_docs: int) -> list[Doc]:
    """Up to ``max_docs`` public docstrings of stdlib modules, spread over all modules.

    Modules are taken round-robin (each module's docstring, then each one's first public
    definition, and so on), everyday modules first, so a small corpus covers what people ask.

    Examples
    --------
    >>> docs = stdlib_docs(5)
    >>> len(docs), all(len(d.text) >= 60 for d in docs)
    (5, True)
    """
    per_module: list[list[Doc]] = []
    for name in _module_names():
        docs = _module_docs(name)
        if docs:
            per_module.append(docs)
        if len(per_module) >= max_docs:  # round one alone fills the corpus
            break
    spread = itertools.chain.from_iterable(itertools.zip_longest(*per_module))
    return list(itertools.islice((d for d in spread if d is not None), max_docs))


@functools.cache
def _module_docs(name: str) -> list[Doc]:
    # the embedding corpus's reader (read, tolerate unreadable or invalid files, parse):
    # one reader for both; the demo adds titles and its own choice of modules
    from neuralcore.embedding.parity import read_module

    path = _source_path(name)
    parsed = read_module(path) if path is not None else None
    return _docs_of(name, parsed[1]) if parsed is not None else []


def chunk_docs(docs: list[Doc], *, max_chars: int = 700) -> list[Chunk]:
    """Split docstrings into chunks of whole paragraphs up to ``max_chars`` each.

    Each chunk starts with its docstring's title so a hit says where it came from; a
    paragraph longer than ``max_chars`` is cut at word boundaries.

    Examples
    --------
    >>> chunk_docs([Doc("m.f", "First paragraph.\\n\\nSecond one.")], max_chars=20)
    [Chunk(key=0, title='m.f', text='m.f: First paragraph.'), Chunk(key=1, title='m.f', text='m.f: Second one.')]
    """  # noqa: E501
    chunks: list[Chunk] = []
    for doc in docs:
        for piece in _pack(_paragraphs(doc.text, max_chars), max_chars):
            chunks.append(Chunk(len(chunks), doc.title, f"{doc.title}: {piece}"))
    return chunks


def _paragraphs(text: str, max_chars: int) -> Iterator[str]:
    for para in text.split("\n\n"):
        words = para.split()
        line: list[str] = []
        size = 0
        for word in words:
            if line and size + len(word) + 1 > max_chars:
                yield " ".join(line)
                line, size = [], 0
            line.append(word)
            size += len(word) + 1
        if line:
            yield " ".join(line)


def _pack(paragraphs: Iterator[str], max_chars: int) -> Iterator[str]:
    current = ""
    for para in paragraphs:
        if current and len(current) + len(para) + 1 > max_chars:
            yield current
            current = ""
        current = f"{current} {para}" if current else para
    if current:
        yield current
