"""Publish and dispatch hooks: one owner for both lists and for how hooks are run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neuralcore.core import InputTypeError
from neuralcore.messaging._message import Message

if TYPE_CHECKING:
    from neuralcore.messaging._metrics import ChannelStats
    from neuralcore.messaging._subscription import Subscription

__all__ = ("DispatchAfter", "DispatchBefore", "Middleware", "PublishHook")

PublishHook = Callable[[Message], Message]
DispatchBefore = Callable[[Message, "Subscription"], None]
DispatchAfter = Callable[[Message, "Subscription", BaseException | None], None]


class Middleware:
    """The bus's hooks. ``publish`` and ``dispatch`` are read on the hot path (an empty
    list means no hook to run); only :meth:`add_publish` / :meth:`add_dispatch` change them.

    Examples
    --------
    >>> mw = Middleware()
    >>> mw.add_publish(lambda m: m)
    >>> len(mw.publish), len(mw.dispatch)
    (1, 0)
    """

    __slots__ = ("afters", "befores", "dispatch", "publish")

    def __init__(self) -> None:
        self.publish: list[PublishHook] = []
        self.dispatch: list[tuple[DispatchBefore | None, DispatchAfter | None]] = []
        # The same hooks split by kind, for the dispatcher's loop: with no ``after`` hook
        # it calls the ``before`` hooks and awaits the handler itself (no wrapper frame).
        self.befores: tuple[DispatchBefore, ...] = ()
        self.afters: tuple[DispatchAfter, ...] = ()

    def add_publish(self, hook: PublishHook) -> None:
        """Run ``hook(message) -> message`` on every publish."""
        if not callable(hook):
            raise InputTypeError(f"a publish hook must be callable, got {type(hook).__name__}")
        self.publish.append(hook)

    def add_dispatch(self, before: DispatchBefore | None, after: DispatchAfter | None) -> None:
        """Run ``before(msg, sub)`` / ``after(msg, sub, error)`` around handler calls."""
        for hook in (before, after):
            if hook is not None and not callable(hook):
                raise InputTypeError(f"a dispatch hook must be callable, got {type(hook).__name__}")
        self.dispatch.append((before, after))
        self.befores = tuple(b for b, _ in self.dispatch if b is not None)
        self.afters = tuple(a for _, a in self.dispatch if a is not None)

    def run_publish(self, stats: ChannelStats, msg: Message) -> Message:
        """Every publish hook in turn; a failing or misbehaving one counts as an error."""
        for hook in self.publish:
            try:
                out = hook(msg)
            except Exception:
                stats.errors += 1
                raise
            if not isinstance(out, Message):
                stats.errors += 1
                raise InputTypeError(
                    f"publish hook {hook!r} returned {type(out).__name__}, not a Message"
                )
            msg = out
        return msg

    def call(self, sub: Subscription, msg: Message, handler: Callable[[Message], Any]) -> Any:
        """A sync handler call wrapped in the dispatch hooks."""
        hooks = self.dispatch
        for before, _ in hooks:
            if before is not None:
                before(msg, sub)
        error: BaseException | None = None
        try:
            return handler(msg)
        except Exception as err:
            error = err
            raise
        finally:
            for _, after in hooks:
                if after is not None:
                    after(msg, sub, error)

    async def call_async(self, sub: Subscription, msg: Message, timeout: float | None) -> Any:
        """An async handler call wrapped in the dispatch hooks (and ``timeout``)."""
        hooks = self.dispatch
        for before, _ in hooks:
            if before is not None:
                before(msg, sub)
        error: BaseException | None = None
        try:
            coro = sub.handler(msg)
            return await (coro if timeout is None else asyncio.wait_for(coro, timeout))
        except Exception as err:
            error = err
            raise
        finally:
            for _, after in hooks:
                if after is not None:
                    after(msg, sub, error)
