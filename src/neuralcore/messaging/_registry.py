"""The registry: channels, subscriptions and taps, and which channels each selection meets.

One owner for the bus's routing state. The facade keeps a read-only reference to
:attr:`Registry.channels` for its inlined publish fast path; everything that changes the
state goes through these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuralcore.core import ChannelNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from neuralcore.messaging._bridge import Tap
    from neuralcore.messaging._channel import Channel
    from neuralcore.messaging._subscription import Subscription

__all__ = ("Registry", "check_name")


def check_name(name: str) -> None:
    """Raise ``InvalidInputError`` for a channel name or pattern that is not valid
    Unicode text (a lone surrogate): no channel can have it (``ChannelConfig`` refuses
    it), and it could not be stored or sent."""
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"channel {name!r} holds a lone surrogate: channel names must be valid UTF-8 text"
            ) from None


class Registry:
    """Channels by name, subscriptions (pattern ones apart), pattern and durable taps.

    Examples
    --------
    >>> reg = Registry()
    >>> reg.subscribed("jobs.1")
    False
    """

    __slots__ = (
        "_subscribed",
        "channels",
        "durable_taps",
        "pattern_taps",
        "patterns",
        "replay_due",
        "subs",
    )

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.subs: list[Subscription] = []
        self.patterns: list[Subscription] = []  # also in subs; they meet later channels
        self.pattern_taps: list[Tap] = []
        self.durable_taps: dict[str, Tap] = {}
        self.replay_due: dict[Tap, int] = {}  # durable taps owed a replay up to a row
        self._subscribed: dict[str, bool] = {}  # answers of subscribed(); bridges ask often

    def channel(self, name: str) -> Channel:
        """The channel ``name``, or ``ChannelNotFoundError`` naming the known ones."""
        ch = self.channels.get(name)
        if ch is None:
            if type(name) is str and not name.isascii():
                check_name(name)
            known = ", ".join(sorted(self.channels)[:10]) or "none"
            raise ChannelNotFoundError(
                f"no channel {name!r} (known: {known}); create it with bus.create_channel({name!r})"
            )
        return ch

    def add_subscription(self, sub: Subscription) -> None:
        """Record ``sub`` (and as a pattern when its selection is one)."""
        self.subs.append(sub)
        if sub.selection.is_pattern:
            self.patterns.append(sub)
        self._subscribed.clear()

    def unsubscribe(self, sub: Subscription) -> None:
        """Detach ``sub`` from every channel and forget it."""
        sub.active = False
        for target in list(sub.targets):
            for ch in self.channels.values():
                if target in ch.targets:
                    ch.detach(sub, target)
        sub.targets.clear()
        self.remove_subscription(sub)

    def remove_subscription(self, sub: Subscription) -> None:
        """Forget ``sub`` (lists are replaced, never mutated while iterated)."""
        self.subs = [s for s in self.subs if s is not sub]
        self.patterns = [s for s in self.patterns if s is not sub]
        self._subscribed.clear()

    def subscribed(self, channel: str) -> bool:
        """True when an active subscription (direct or pattern) selects ``channel``."""
        known = self._subscribed.get(channel)
        if known is None:
            known = any(sub.active and sub.selection.matches(channel) for sub in self.subs)
            if len(self._subscribed) >= 4096:  # bounded: channel names come from outside
                self._subscribed.clear()
            self._subscribed[channel] = known
        return known

    def add_tap(self, tap: Tap) -> None:
        """Record a tap that is a pattern (meets later channels) or durable (by name)."""
        if tap.selection.is_pattern:
            self.pattern_taps.append(tap)
        if tap.durable and tap.name is not None:
            self.durable_taps[tap.name] = tap

    def remove_tap(self, tap: Tap) -> list[Channel]:
        """Forget ``tap``; returns the channels it was attached to (for the caller to
        detach it there)."""
        if tap.name is not None and self.durable_taps.get(tap.name) is tap:
            del self.durable_taps[tap.name]
        self.replay_due.pop(tap, None)
        self.pattern_taps = [t for t in self.pattern_taps if t is not tap]
        return [ch for ch in self.channels.values() if tap in ch.taps]
