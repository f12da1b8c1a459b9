"""Typed configuration: frozen dataclasses validated at construction, loadable from dict/YAML.

Subclass :class:`Config` with ``@dataclass(frozen=True, kw_only=True)`` fields; types are
checked on construction and ``ConfigError`` names the bad field (``channels[2].max_size``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from neuralcore.core._errors import ConfigError

__all__ = ("Config", "load_yaml_mapping")

C = TypeVar("C", bound="Config")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base for neuralcore configuration objects.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Pool(Config):
    ...     size: int = 4
    >>> Pool.from_dict({"size": 8}).size
    8
    >>> Pool.from_dict({"size": "x"})
    Traceback (most recent call last):
    ...
    neuralcore.errors.ConfigError: config field 'size' = 'x': expected int
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _HOMES[cls] = cls.__module__  # before neuralcore re-labels it with the public path

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _check_type(field.name, value, hints[field.name], field.metadata.get("secret"))
        self.validate()

    def validate(self) -> None:
        """Check cross-field rules; override and raise :class:`ConfigError`."""

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], *, path: str = "") -> C:
        """Build from a mapping; unknown keys and bad values raise ``ConfigError``."""
        if not isinstance(data, Mapping):
            raise ConfigError(path or cls.__name__, data, "expected a mapping")
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        for key in data:
            if key not in names:  # its value is not shown: a misspelt key may hold a secret
                raise ConfigError(
                    _join(path, str(key)),
                    f"<{type(data[key]).__name__}>",
                    f"unknown key for {cls.__name__}",
                )
        kwargs = {k: _convert(_join(path, k), v, hints[k]) for k, v in data.items()}
        try:
            return cls(**kwargs)
        except ConfigError as err:
            if path and not err.field.startswith(path):
                raise ConfigError(_join(path, err.field), err.value, err.reason) from None
            raise

    @classmethod
    def from_yaml(cls: type[C], source: str | os.PathLike[str], *, section: str | None = None) -> C:
        """Build from a YAML file path (or YAML text), optionally from one top-level section."""
        data = load_yaml_mapping(source)
        if section is not None:
            if section not in data:
                raise ConfigError(section, None, "section missing from YAML")
            data = data[section]
        return cls.from_dict(data, path=section or "")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, suitable for YAML/JSON."""
        return dataclasses.asdict(self)


def load_yaml_mapping(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping from a file path or from YAML text (safe loader only)."""
    from neuralcore.core._optional import require

    yaml = require("yaml", extra="yaml", package="PyYAML")
    text = str(source)
    path = Path(text)
    if isinstance(source, os.PathLike) or ("\n" not in text and path.suffix in {".yml", ".yaml"}):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError("path", str(source), f"cannot read YAML file: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError("yaml", str(source)[:80], f"invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError("yaml", type(data).__name__, "top level must be a mapping")
    return data


_HOMES: dict[type, str] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Field types of ``cls``, resolved in the modules that define it and its bases.

    ``typing.get_type_hints`` would look names up in ``cls.__module__``, which the top-level
    package sets to ``"neuralcore"`` for public classes; the defining modules are kept apart.
    """
    hints = _HINTS.get(cls)
    if hints is None:
        namespace: dict[str, Any] = {}
        for base in reversed(cls.__mro__):
            home = sys.modules.get(_HOMES.get(base, base.__module__))
            namespace.update(vars(home) if home is not None else {})
        hints = _HINTS[cls] = typing.get_type_hints(cls, globalns=namespace)
    return hints


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(name: str, value: Any, hint: Any) -> Any:
    """Turn plain data into nested configs / tuples where the hint asks for them."""
    origin = get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, Config) and isinstance(value, Mapping):
        return hint.from_dict(value, path=name)
    if origin in (Union, types.UnionType):
        for arm in get_args(hint):
            if isinstance(arm, type) and issubclass(arm, Config) and isinstance(value, Mapping):
                return arm.from_dict(value, path=name)
        return value
    if origin is tuple and isinstance(value, list | tuple):
        args = get_args(hint)
        item = args[0] if args else Any
        return tuple(_convert(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if origin is dict and isinstance(value, Mapping):
        _, item = get_args(hint) or (Any, Any)
        return {k: _convert(f"{name}.{k}", v, item) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_type(name: str, value: Any, hint: Any, secret: bool | None = None) -> None:
    if not _matches(value, hint):  # a secret field's value is never shown, only its type
        shown = f"<{type(value).__name__}>" if secret else value
        raise ConfigError(name, shown, f"expected {_describe(hint)}")


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = get_origin(hint)
    if origin is Literal:  # compare like with like: an array's == is elementwise
        args = get_args(hint)
        return type(value) in {type(a) for a in args} and value in args
    if origin in (Union, types.UnionType):
        return any(_matches(value, arm) for arm in get_args(hint))
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        pairs = zip(value, args, strict=True) if len(args) == len(value) else None
        return pairs is not None and all(_matches(v, a) for v, a in pairs)
    if origin is dict:
        key_t, val_t = get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(
            _matches(k, key_t) and _matches(v, val_t) for k, v in value.items()
        )
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))
