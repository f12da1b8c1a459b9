"""The rollout switch: ``NEURALCORE_COMPAT`` turns the ATLAS adapters on or off.

Migrated code imports ATLAS names from :mod:`neuralcore.compat.atlas`; with the switch off,
that module hands back ATLAS's own classes and functions, so a rollout can be undone by
setting one environment variable, without touching the rewritten imports again.
"""

from __future__ import annotations

import os

from neuralcore.core._errors import ConfigError

__all__ = ("ENV_VAR", "compat_enabled")

ENV_VAR = "NEURALCORE_COMPAT"
_ON = frozenset({"", "1", "on", "true", "yes", "neuralcore"})
_OFF = frozenset({"0", "off", "false", "no", "atlas"})


def compat_enabled() -> bool:
    """Whether :mod:`neuralcore.compat.atlas` serves neuralcore's adapters (the default).

    Reads ``NEURALCORE_COMPAT`` on every call: ``on``/``1``/``true`` (or unset) selects the
    adapters, ``off``/``0``/``false`` selects the application's original implementations.

    Raises
    ------
    ConfigError
        the variable holds anything else.

    Examples
    --------
    >>> os.environ["NEURALCORE_COMPAT"] = "off"
    >>> compat_enabled()
    False
    >>> del os.environ["NEURALCORE_COMPAT"]
    """
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ConfigError(ENV_VAR, raw, "expected on/off (also 1/0, true/false, yes/no)")
