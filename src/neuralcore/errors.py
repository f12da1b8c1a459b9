"""The one exception hierarchy of neuralcore (``from neuralcore.errors import ...``).

Every error raised on purpose by neuralcore derives from :class:`NeuralcoreError`, and
also from the builtin it resembles, so ``except ValueError`` keeps working. Every name is
also importable from ``neuralcore`` itself::

    NeuralcoreError
    ├── ConfigError (ValueError)
    ├── InvalidInputError (ValueError)
    │   ├── DimensionMismatchError
    │   └── NonFiniteError
    ├── InputTypeError (TypeError)
    ├── MissingDependencyError (ImportError)
    ├── IndexFileError (ValueError)
    ├── KeyNotFoundError (KeyError)
    ├── ModelError (ValueError)
    │   └── ModelNotFoundError (LookupError)
    ├── SerializationError (ValueError)
    ├── MessagingError
    │   ├── ChannelNotFoundError (LookupError)
    │   ├── BusClosedError (RuntimeError)
    │   ├── QueueFullError
    │   ├── RateLimitedError
    │   ├── AuthorizationError (PermissionError)
    │   ├── RequestTimeoutError (TimeoutError)
    │   └── PersistenceError (OSError)
    └── BridgeConnectionError (ConnectionError)
"""

from __future__ import annotations

import reprlib

__all__ = (
    "AuthorizationError",
    "BridgeConnectionError",
    "BusClosedError",
    "ChannelNotFoundError",
    "ConfigError",
    "DimensionMismatchError",
    "IndexFileError",
    "InputTypeError",
    "InvalidInputError",
    "KeyNotFoundError",
    "MessagingError",
    "MissingDependencyError",
    "ModelError",
    "ModelNotFoundError",
    "NeuralcoreError",
    "NonFiniteError",
    "PersistenceError",
    "QueueFullError",
    "RateLimitedError",
    "RequestTimeoutError",
    "SerializationError",
)


class NeuralcoreError(Exception):
    """Root of every error neuralcore raises on purpose.

    Examples
    --------
    >>> try:
    ...     raise ConfigError("threads", -1, "must be >= 1")
    ... except NeuralcoreError as err:
    ...     print(err)
    config field 'threads' = -1: must be >= 1
    """


class ConfigError(NeuralcoreError, ValueError):
    """A configuration field has a bad value; ``field`` names it."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"config field {field!r} = {_short(value)}: {reason}")


class InvalidInputError(NeuralcoreError, ValueError):
    """An argument's value is unusable (empty where data is needed, out of range...)."""


class DimensionMismatchError(InvalidInputError):
    """Two arrays whose shapes must agree do not; the message names both shapes."""


class NonFiniteError(InvalidInputError):
    """An input holds NaN or infinity where finite numbers are required."""


class InputTypeError(NeuralcoreError, TypeError):
    """An argument has the wrong type or dtype (object or string arrays, non-str texts...)."""


class MissingDependencyError(NeuralcoreError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class IndexFileError(NeuralcoreError, ValueError):
    """An index file is missing, truncated, corrupt or of a foreign format."""


class KeyNotFoundError(NeuralcoreError, KeyError):
    """A key asked for is not in the index or store."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class ModelError(NeuralcoreError, ValueError):
    """A model folder or file is missing, truncated, foreign or fails its manifest hash."""


class ModelNotFoundError(ModelError, LookupError):
    """No converted model of that name or path; the message says how to convert one."""


class SerializationError(NeuralcoreError, ValueError):
    """A payload cannot be encoded, or bytes cannot be decoded, at a process boundary."""


class MessagingError(NeuralcoreError):
    """Base of message-bus errors."""


class ChannelNotFoundError(MessagingError, LookupError):
    """Publishing or subscribing to a channel that does not exist."""


class BusClosedError(MessagingError, RuntimeError):
    """The bus is stopped or closed."""


class QueueFullError(MessagingError):
    """A channel with overflow policy ``error`` (or a timed-out ``block``) is full."""


class RateLimitedError(MessagingError):
    """A publish exceeded the channel's rate limit."""


class AuthorizationError(MessagingError, PermissionError):
    """The caller may not publish to or subscribe on that channel."""


class RequestTimeoutError(MessagingError, TimeoutError):
    """A request got no reply in time."""


class PersistenceError(MessagingError, OSError):
    """The durable store failed (corrupt file, disk error)."""


class BridgeConnectionError(NeuralcoreError, ConnectionError):
    """A bridge cannot reach its server."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 80, 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 8


def _short(value: object) -> str:
    """A bounded repr: a 100,000-deep list or a 1 MB string still gives a short message."""
    return _REPR.repr(value)
