"""Typed config: type checks, nested configs, YAML loading, errors naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from neuralcore.core import Config
from neuralcore.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Inner(Config):
    size: int = 10
    policy: Literal["block", "drop_new"] = "block"

    def validate(self) -> None:
        if self.size < 0:
            raise ConfigError("size", self.size, "must be >= 0")


@dataclass(frozen=True, kw_only=True)
class Outer(Config):
    name: str = "bus"
    rate: float = 1.5
    inner: Inner = field(default_factory=Inner)
    channels: tuple[Inner, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


def test_defaults_and_round_trip() -> None:
    cfg = Outer.from_dict({"name": "x", "inner": {"size": 3}, "channels": [{"size": 1}]})
    assert cfg.inner == Inner(size=3)
    assert cfg.channels == (Inner(size=1),)
    assert Outer.from_dict(cfg.to_dict()) == cfg


def test_int_is_accepted_for_float() -> None:
    assert Outer.from_dict({"rate": 2}).rate == 2.0


@pytest.mark.parametrize(
    ("data", "field_name"),
    [
        ({"name": 3}, "name"),
        ({"rate": "fast"}, "rate"),
        ({"rate": True}, "rate"),
        ({"inner": {"size": "big"}}, "inner.size"),
        ({"inner": {"policy": "explode"}}, "inner.policy"),
        ({"channels": [{"size": 1}, {"size": -1}]}, "channels[1].size"),
        ({"bogus": 1}, "bogus"),
        ({"inner": {"bogus": 1}}, "inner.bogus"),
        ({"limit": 1.5}, "limit"),
        ({"tags": {"a": 1}}, "tags"),
    ],
)
def test_bad_values_name_the_field(data: dict[str, object], field_name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Outer.from_dict(data)
    assert info.value.field == field_name
    assert field_name in str(info.value)


def test_constructor_validates_too() -> None:
    with pytest.raises(ConfigError, match="size"):
        Inner(size=-2)


def test_from_yaml_file_and_section(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("messaging:\n  name: atlas\n  inner:\n    size: 7\n", encoding="utf-8")
    cfg = Outer.from_yaml(path, section="messaging")
    assert cfg.name == "atlas"
    assert cfg.inner.size == 7


def test_from_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("messaging:\n  inner:\n    size: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Outer.from_yaml(bad, section="messaging")
    assert info.value.field == "messaging.inner.size"
    with pytest.raises(ConfigError, match="section"):
        Outer.from_yaml(bad, section="nope")
    with pytest.raises(ConfigError, match="cannot read"):
        Outer.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        Outer.from_yaml("a: [unclosed\nb: 2")
    with pytest.raises(ConfigError, match="mapping"):
        Outer.from_yaml("- 1\n- 2\n")


def test_a_config_relabelled_with_its_public_module_still_checks_types() -> None:
    """``neuralcore`` sets ``__module__`` of public classes; field types still resolve."""

    @dataclass(frozen=True, kw_only=True)
    class Local(Config):
        mode: Literal["a", "b"] = "a"
        path: Path | None = None

    Local.__module__ = "neuralcore"
    assert Local.from_dict({"mode": "b"}).mode == "b"
    with pytest.raises(ConfigError, match="'mode'"):
        Local(mode="c")  # type: ignore[arg-type]


def test_literal_fields_reject_unhashable_and_array_like_values() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Local(Config):
        mode: Literal["a", "b"] = "a"

    for bad in ([], {"a": 1}, b"a", 1):
        with pytest.raises(ConfigError, match="'mode'"):
            Local.from_dict({"mode": bad})


@dataclass(frozen=True, kw_only=True)
class Login(Config):
    user: str = "u"
    password: str | None = field(default=None, repr=False, metadata={"secret": True})


@pytest.mark.parametrize("bad", [b"hunter2", ["hunter2"], 1234567])
def test_a_secret_fields_bad_value_is_never_shown(bad: object) -> None:
    with pytest.raises(ConfigError, match="password") as err:
        Login(password=bad)  # type: ignore[arg-type]
    assert "hunter2" not in str(err.value)
    assert "1234567" not in str(err.value)
    assert type(bad).__name__ in str(err.value)
    with pytest.raises(ConfigError) as err:
        Login.from_dict({"password": bad})
    assert "hunter2" not in str(err.value)
    assert "1234567" not in str(err.value)


def test_an_unknown_keys_value_is_not_shown() -> None:
    # a misspelt key may hold a secret: the error names the key and the value's type only
    with pytest.raises(ConfigError, match="pasword") as err:
        Login.from_dict({"pasword": "hunter2"})
    assert "hunter2" not in str(err.value)
    assert "str" in str(err.value)
