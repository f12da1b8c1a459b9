"""What a channel pattern is and what it matches: one grammar for the whole bus.

Subscriptions, taps and bridge configurations all select channels with :class:`Selector`.
The grammar is :mod:`fnmatch`'s, case-sensitive: ``*`` matches any run of characters
(dots included), ``?`` one character, ``[abc]`` / ``[!abc]`` one character of (not of) a
set. A text with none of ``*``, ``?``, ``[`` is a plain channel name and matches only
itself; channel names therefore may not contain those characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate

from neuralcore.core import InputTypeError, InvalidInputError

__all__ = ("PATTERN_CHARS", "Selector", "is_pattern")

PATTERN_CHARS = frozenset("*?[")
"""Characters that make a selector text a pattern (and are refused in channel names)."""


def is_pattern(text: str) -> bool:
    """True when ``text`` is a pattern rather than a plain channel name.

    Examples
    --------
    >>> is_pattern("jobs.?"), is_pattern("jobs.high")
    (True, False)
    """
    return not PATTERN_CHARS.isdisjoint(text)


class Selector:
    """One or several channel names or patterns; :meth:`matches` decides membership.

    Parameters
    ----------
    selection : str or iterable of str
        A channel name, a pattern (``"rag.*"``, ``"jobs.?"``, ``"log.[ab]"``), or several.

    Raises
    ------
    InputTypeError
        ``selection`` (or one of its items) is not a string.
    InvalidInputError
        An empty selection or an empty text.

    Examples
    --------
    >>> s = Selector(("rag.*", "jobs.?"))
    >>> s.matches("rag.query"), s.matches("jobs.1"), s.matches("jobs.10")
    (True, True, False)
    >>> s.is_pattern, Selector("jobs").names
    (True, ('jobs',))
    """

    __slots__ = ("_exact", "_regex", "names", "patterns", "texts")

    def __init__(self, selection: str | Iterable[str]) -> None:
        texts = (selection,) if isinstance(selection, str) else _texts(selection)
        if not texts:
            raise InvalidInputError("a channel selection needs at least one name or pattern")
        for text in texts:
            if type(text) is not str:
                raise InputTypeError(
                    f"a channel name or pattern must be a str, got {type(text).__name__}"
                )
            if not text:
                raise InvalidInputError("a channel name or pattern must not be empty")
        self.texts: tuple[str, ...] = texts
        self.names: tuple[str, ...] = tuple(t for t in texts if not is_pattern(t))
        self.patterns: tuple[str, ...] = tuple(t for t in texts if is_pattern(t))
        self._exact = frozenset(self.names)
        joined = "|".join(f"(?:{translate(p)})" for p in self.patterns)
        self._regex = re.compile(joined).match if joined else None

    @property
    def is_pattern(self) -> bool:
        """True when some part is a pattern (it may match channels created later)."""
        return bool(self.patterns)

    def matches(self, channel: str) -> bool:
        """True when ``channel`` is selected."""
        if channel in self._exact:
            return True
        regex = self._regex
        return regex is not None and regex(channel) is not None

    def __repr__(self) -> str:
        shown = self.texts[0] if len(self.texts) == 1 else self.texts
        return f"Selector({shown!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selector) and other.texts == self.texts

    def __hash__(self) -> int:
        return hash(self.texts)


def _texts(selection: Iterable[str]) -> tuple[str, ...]:
    try:
        return tuple(selection)
    except TypeError:
        raise InputTypeError(
            f"a channel selection must be a str or an iterable of str, "
            f"got {type(selection).__name__}"
        ) from None
