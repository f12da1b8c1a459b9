"""Real English text every Python install has: docstrings of the standard library.

Used to calibrate the static int8 graph and, by the benchmark and the parity tests, as a
fixed text set. Docstrings are read with :mod:`ast`; no module is imported.
"""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

__all__ = ("stdlib_docstrings",)

_KINDS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def stdlib_docstrings(n: int) -> list[str]:
    """Up to ``n`` distinct docstrings (>= 20 chars) of top-level stdlib modules, in file order.

    Examples
    --------
    >>> texts = stdlib_docstrings(3)
    >>> len(texts), all(len(t) >= 20 for t in texts)
    (3, True)
    """
    found: dict[str, None] = {}
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            doc = ast.get_docstring(node) if isinstance(node, _KINDS) else None
            if doc and len(doc) >= 20:
                found.setdefault(doc)
                if len(found) >= n:
                    return list(found)
    return list(found)
