"""Shared pieces: configuration, backend selection, optional imports, usable cores.

The error classes live in :mod:`neuralcore.errors`; they are re-exported here for the
engines' internal imports.
"""

from neuralcore.core._backend import BackendInfo, BackendName, backend_info, resolve_backend
from neuralcore.core._config import Config, load_yaml_mapping
from neuralcore.core._cpu import usable_cores
from neuralcore.core._optional import is_available, optional, require
from neuralcore.errors import (
    AuthorizationError,
    BridgeConnectionError,
    BusClosedError,
    ChannelNotFoundError,
    ConfigError,
    DimensionMismatchError,
    IndexFileError,
    InputTypeError,
    InvalidInputError,
    KeyNotFoundError,
    MessagingError,
    MissingDependencyError,
    ModelError,
    ModelNotFoundError,
    NeuralcoreError,
    NonFiniteError,
    PersistenceError,
    QueueFullError,
    RateLimitedError,
    RequestTimeoutError,
    SerializationError,
)

__all__ = (
    "AuthorizationError",
    "BackendInfo",
    "BackendName",
    "BridgeConnectionError",
    "BusClosedError",
    "ChannelNotFoundError",
    "Config",
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
    "backend_info",
    "is_available",
    "optional",
    "load_yaml_mapping",
    "require",
    "resolve_backend",
    "usable_cores",
)
