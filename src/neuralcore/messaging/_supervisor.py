"""The supervisor: the one owner of a bus's background tasks.

Every task the bus runs (channel dispatchers, subscriber workers, dead-letter forwards)
is started here and held here until it ends. A task that fails, or one meant to run until
the bus stops that ends on its own, is logged and kept for :meth:`MessageBus.health`; it
never vanishes. Like :class:`asyncio.TaskGroup` it owns its children and cancels them all
at stop, but one child's failure does not cancel its siblings (one broken channel must
not stop the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

__all__ = ("Supervisor",)

logger = logging.getLogger(__name__)
_KEEP = 100  # failures remembered for health()


class Supervisor:
    """Starts, watches and stops the background tasks of one bus.

    Parameters
    ----------
    owner : str
        Shown in log lines (the bus id).

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     sup = Supervisor("demo")
    ...     async def boom():
    ...         raise RuntimeError("bug")
    ...     await asyncio.wait([sup.spawn(boom(), "demo:boom")])
    ...     await asyncio.sleep(0)  # done callbacks run one loop turn later
    ...     return sup.failures()
    >>> asyncio.run(main())
    ('demo:boom: RuntimeError: bug',)
    """

    __slots__ = ("_awaited", "_failures", "_lasting", "_owner", "_tasks", "failed")

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()  # every task still running
        self._lasting: set[asyncio.Task[Any]] = set()  # meant to run until the bus stops
        self._awaited: set[asyncio.Task[Any]] = set()  # finite work drain() waits for
        self._failures: deque[str] = deque(maxlen=_KEEP)
        self.failed = 0  # every failure so far (the deque keeps the last ones)

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str,
        *,
        lasting: bool = False,
        awaited: bool = False,
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned here, on the running loop.

        ``lasting`` tasks (dispatchers) run until the bus stops: one that returns on its
        own is reported like a failure. ``awaited`` ones (a dead letter on its way) are
        work that :meth:`MessageBus.drain` waits for (see :attr:`busy`).
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        if lasting:
            self._lasting.add(task)
        if awaited:
            self._awaited.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        lasting = task in self._lasting
        self._tasks.discard(task)
        self._lasting.discard(task)
        self._awaited.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            from neuralcore.messaging._journal import describe

            self._record(f"{task.get_name()}: {describe(err)}", err)
        elif lasting:
            self._record(f"{task.get_name()}: ended while the bus runs", None)

    def _record(self, text: str, err: BaseException | None) -> None:
        self.failed += 1
        self._failures.append(text)
        logger.error("bus %s: background task failed: %s", self._owner, text, exc_info=err)

    def failures(self) -> tuple[str, ...]:
        """The background tasks that failed, ``"name: Error: text"``, most recent last."""
        return tuple(self._failures)

    @property
    def busy(self) -> bool:
        """Awaited background work (a dead letter on its way) is still running."""
        return bool(self._awaited)

    def tasks(self) -> list[asyncio.Task[Any]]:
        """Every task still running."""
        return list(self._tasks)

    async def stop(self) -> None:
        """Cancel every task and wait until all have ended (from the bus's loop)."""
        tasks = self.tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def cancel_soon(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Cancel every task from any thread (``close()`` cannot await them): at once on
        the loop's own thread, else handed to the loop (the task set is only ever read
        and changed there)."""
        if loop is None or loop.is_closed():
            return
        if _on_loop(loop):
            self._cancel_all()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._cancel_all)

    def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
