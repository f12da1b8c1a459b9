"""Request/reply: unguessable correlation ids, and only the request itself is answered."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from neuralcore.messaging._message import Message

__all__ = ("Pending", "Requests", "new_correlation_id")

logger = logging.getLogger(__name__)


def new_correlation_id() -> str:
    """An unguessable correlation id (128 random bits, hex).

    Examples
    --------
    >>> len(new_correlation_id())
    32
    """
    return secrets.token_hex(16)


class Pending:
    """A request waiting for its answer: only its own message may answer it."""

    __slots__ = ("channel", "future", "msg_id")

    def __init__(self, future: asyncio.Future[Any], channel: str) -> None:
        self.future = future
        self.channel = channel
        self.msg_id: str | None = None


class Requests:
    """The requests this bus waits on, by correlation id (the only owner of that map)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}

    def open(self, channel: str) -> tuple[str, Pending]:
        """Register a new request on ``channel`` (call on the event loop)."""
        cid = new_correlation_id()
        pending = self._pending[cid] = Pending(asyncio.get_running_loop().create_future(), channel)
        return cid, pending

    def close(self, cid: str) -> None:
        """The requester stopped waiting (answered, timed out or cancelled)."""
        self._pending.pop(cid, None)

    def answer_local(self, request: Message, cid: str, payload: Any) -> None:
        """Answer with ``request`` itself: a forged message with a copied id is ignored."""
        pending = self._pending.get(cid)
        if pending is None:
            return
        if request.channel != pending.channel or request.id != pending.msg_id:
            logger.warning(
                "reply ignored: message %s on %r is not the request %s... waits for",
                request.id, request.channel, cid[:8],
            )  # fmt: skip
            return
        self.resolve(cid, payload)

    def resolve(self, cid: str, payload: Any) -> None:
        """Answer request ``cid`` (a reply a bridge brought home)."""
        pending = self._pending.pop(cid, None)
        if pending is not None and not pending.future.done():
            pending.future.set_result(payload)

    def cancel_all(self) -> None:
        """The bus stops: nobody will answer."""
        for pending in self._pending.values():
            pending.future.cancel()
        self._pending.clear()
