"""Small shared names: priorities, mode literals and handler signatures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from neuralcore.messaging._message import Message

__all__ = (
    "Durability",
    "Filter",
    "Handler",
    "Outcome",
    "Overflow",
    "Priority",
)


class Priority(IntEnum):
    """Named priorities; a lower number is more urgent, FIFO within one priority.

    Any ``int`` is accepted where a priority is expected; these are the usual levels.

    Examples
    --------
    >>> Priority.CRITICAL < Priority.NORMAL
    True
    >>> int(Priority.BACKGROUND)
    100
    """

    CRITICAL = 0
    HIGH = 25
    NORMAL = 50
    LOW = 75
    BACKGROUND = 100


Overflow: TypeAlias = Literal["block", "drop_new", "drop_oldest", "error"]
"""What a full channel does with one more message (see :class:`ChannelConfig`)."""

Durability: TypeAlias = Literal["process", "power"]
"""``"process"``: survives a process crash; ``"power"``: also survives power loss."""

Outcome: TypeAlias = Literal["acked", "dead_lettered", "dropped", "expired"]
"""How a message was settled (given to a bridge's ``on_settled`` callback)."""

Handler: TypeAlias = "Callable[[Message], Any] | Callable[[Message], Awaitable[Any]]"
Filter: TypeAlias = "Callable[[Message], bool]"
