"""The one place that chooses the messaging codec, and reports the choice."""

from __future__ import annotations

from typing import Literal

from neuralcore.core import BackendInfo, ConfigError, is_available, resolve_backend
from neuralcore.messaging._codec import Codec, JsonCodec, MsgpackCodec

__all__ = ("describe_backend", "make_codec")


def _msgspec_usable() -> bool:
    return resolve_backend() == "native" and is_available("msgspec")


def make_codec(name: Literal["auto", "msgpack", "json"], *, max_size: int) -> Codec:
    """Build the codec named in ``BusConfig.codec``.

    Examples
    --------
    >>> make_codec("json", max_size=1024).name
    'json'
    """
    if name == "json":
        return JsonCodec(max_size=max_size)
    if name == "msgpack" or (name == "auto" and _msgspec_usable()):
        if not is_available("msgspec"):
            raise ConfigError(
                "codec", name, 'needs msgspec: pip install "neuralcore-runtime[messaging]"'
            )
        return MsgpackCodec(max_size=max_size)
    return JsonCodec(max_size=max_size)


def describe_backend(engine: str) -> BackendInfo:
    """Report the codec the bus uses at boundaries (in-process delivery never encodes).

    Examples
    --------
    >>> describe_backend("messaging").engine
    'messaging'
    """
    if _msgspec_usable():
        import msgspec

        from neuralcore.messaging._native import accelerated

        detail = "MessagePack codec; compiled publish path"
        if not accelerated():  # measured 2026-11-29, neuralcore bench bridges
            detail = (
                "MessagePack codec; publish path without its compiled glue (not built: "
                "a bridged publish costs ~1 us more)"
            )
        return BackendInfo(engine, "native", "msgspec", msgspec.__version__, detail)
    detail = "NEURALCORE_BACKEND=python" if is_available("msgspec") else "msgspec not installed"
    return BackendInfo(engine, "python", "stdlib json", "", detail)
