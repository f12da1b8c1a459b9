"""Import optional dependencies with an error that says which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from neuralcore.core._errors import MissingDependencyError

__all__ = ("is_available", "optional", "require")


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Only a missing top-level module is translated; an ImportError raised from inside an
    installed package (a broken install) is re-raised unchanged.

    Examples
    --------
    >>> require("json", extra="none").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or not module.startswith(err.name.split(".")[0]):
            raise
        dist = package or module.split(".")[0]
        raise MissingDependencyError(
            f'{dist} is required for this feature: pip install "neuralcore-runtime[{extra}]"'
        ) from None  # the hint says everything; the ModuleNotFoundError adds nothing


def is_available(module: str) -> bool:
    """True when ``module`` can be imported (it is imported to find out)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def optional(module: str) -> ModuleType | None:
    """``module`` imported, or None when it cannot be (an optional compiled extension).

    Examples
    --------
    >>> optional("json").__name__, optional("neuralcore._no_such_module")
    ('json', None)
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
