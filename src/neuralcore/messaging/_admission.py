"""Authorization: which API key may publish to or read from which channel.

With ``BusConfig.api_keys`` set, every way in is checked (publish, subscribe, patterns as
channels appear, taps, dead letters), and a channel without ``allow_*`` admits any known
key: deny by default. Without ``api_keys``, channels without ``allow_*`` are open. Keys
are never shown: errors and logs say "no API key", "an unknown API key" or the roles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from neuralcore.core import AuthorizationError

if TYPE_CHECKING:
    from neuralcore.messaging._channel import Channel

__all__ = ("Gate",)

logger = logging.getLogger(__name__)


class Gate:
    """Decides authorization from ``api_keys`` (key -> roles), read once at construction.

    The decisions are made once per channel, not per message: :meth:`bind` gives a
    channel the set of keys that may publish and the set that may read there (``None``
    when anyone may, with or without a key). ``ChannelConfig`` and ``BusConfig`` are
    frozen, so a channel's sets never go stale; a new channel gets its own at creation.

    Examples
    --------
    >>> gate = Gate({"k1": ("app",), "k2": ("ops",)})
    >>> sorted(gate.grants(("app",))), sorted(gate.grants(None))
    (['k1'], ['k1', 'k2'])
    >>> Gate({}).grants(None) is None
    True
    """

    __slots__ = ("_keys",)

    def __init__(self, api_keys: Mapping[str, tuple[str, ...]]) -> None:
        self._keys = dict(api_keys)

    @property
    def enabled(self) -> bool:
        """True when API keys are configured (deny by default)."""
        return bool(self._keys)

    def grants(self, allowed: tuple[str, ...] | None) -> frozenset[str] | None:
        """The keys an ``allow_*`` setting admits; ``None`` = anyone (no keys set and
        no ``allow_*``). With ``api_keys`` set, no ``allow_*`` admits any known key."""
        if allowed is None:
            if not self._keys:
                return None
            allowed = ("*",)  # api_keys set: deny by default, any known key may
        return frozenset(
            key
            for key, roles in self._keys.items()
            if "*" in allowed or not set(allowed).isdisjoint(roles)
        )

    def bind(self, ch: Channel) -> None:
        """Give ``ch`` its precomputed publish and subscribe grants."""
        ch.publishers = self.grants(ch.config.allow_publish)
        ch.readers = self.grants(ch.config.allow_subscribe)

    def may(self, ch: Channel, auth: str | None, action: str) -> bool:
        """Whether ``auth`` may ``action`` (``"publish"``/``"subscribe"``) on ``ch``."""
        keys = ch.publishers if action == "publish" else ch.readers
        return keys is None or (type(auth) is str and auth in keys)

    def authorize(self, ch: Channel, auth: str | None, action: str) -> None:
        """:meth:`may`, or ``AuthorizationError`` (counted as denied on the channel)."""
        if self.may(ch, auth, action):
            return
        allowed = ch.config.allow_publish if action == "publish" else ch.config.allow_subscribe
        roles = self._keys.get(auth) if type(auth) is str else None
        ch.stats.denied += 1
        who = (
            "no API key"
            if auth is None
            else ("an unknown API key" if roles is None else f"roles {list(roles)}")
        )
        shown = list(allowed) if allowed is not None else ["any known API key"]
        raise AuthorizationError(
            f"{action} on channel {ch.name!r} denied for {who}; allowed roles: {shown}"
        )

    def pattern_may(self, ch: Channel, auth: str | None, who: str) -> bool:
        """Whether a pattern subscription or tap may reach ``ch``; a refusal is logged."""
        if self.may(ch, auth, "subscribe"):
            return True
        ch.stats.denied += 1
        logger.warning("pattern %s not attached to channel %r: not authorized", who, ch.name)
        return False

    def known(self, auth: str | None) -> None:
        """``AuthorizationError`` for a key that is given but unknown."""
        if self._keys and auth is not None and auth not in self._keys:
            raise AuthorizationError("an unknown API key was given")
