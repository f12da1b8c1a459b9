"""The error hierarchy in ``neuralcore.errors``: one root, builtin bases where natural."""

from __future__ import annotations

import pytest

import neuralcore
from neuralcore import errors

_BUILTIN_BASE = {
    "ConfigError": ValueError,
    "InvalidInputError": ValueError,
    "DimensionMismatchError": ValueError,
    "NonFiniteError": ValueError,
    "InputTypeError": TypeError,
    "MissingDependencyError": ImportError,
    "IndexFileError": ValueError,
    "KeyNotFoundError": KeyError,
    "ModelError": ValueError,
    "ModelNotFoundError": LookupError,
    "SerializationError": ValueError,
    "ChannelNotFoundError": LookupError,
    "BusClosedError": RuntimeError,
    "AuthorizationError": PermissionError,
    "RequestTimeoutError": TimeoutError,
    "PersistenceError": OSError,
    "BridgeConnectionError": ConnectionError,
}


@pytest.mark.parametrize(("name", "builtin"), sorted(_BUILTIN_BASE.items()))
def test_error_derives_from_root_and_builtin(name: str, builtin: type[Exception]) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, neuralcore.NeuralcoreError)
    assert issubclass(cls, builtin)
    assert getattr(neuralcore, name) is cls


def test_every_public_error_is_listed_here() -> None:
    found = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.NeuralcoreError)
    }
    assert found - {"NeuralcoreError", "MessagingError", "QueueFullError", "RateLimitedError"} == (
        set(_BUILTIN_BASE)
    )


def test_config_error_names_field() -> None:
    err = errors.ConfigError("channels[1].max_size", -5, "must be >= 0")
    assert err.field == "channels[1].max_size"
    assert "channels[1].max_size" in str(err)
    assert "-5" in str(err)


def test_key_not_found_message_is_not_quoted() -> None:
    assert str(errors.KeyNotFoundError("key 7 is not in the index")) == "key 7 is not in the index"


def test_a_huge_or_deep_value_gives_a_short_message() -> None:
    deep: object = 0
    for _ in range(100_000):
        deep = [deep]
    assert len(str(errors.ConfigError("x", deep, "bad"))) < 80
    assert len(str(errors.ConfigError("x", "a" * 1_000_000, "bad"))) < 200


def test_the_old_private_path_still_imports() -> None:
    from neuralcore.core import _errors  # the old private path is what this test checks

    assert _errors.ConfigError is errors.ConfigError
