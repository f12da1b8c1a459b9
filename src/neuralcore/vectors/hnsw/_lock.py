"""A small readers-writer lock: many concurrent searches, or one mutation.

Writers are preferred (new readers wait while a writer waits) so a steady stream of
searches cannot starve ``add``. FAISS releases the GIL inside ``search`` and ``add``,
so readers really do run in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("RWLock",)


class RWLock:
    """Shared (``read``) / exclusive (``write``) lock; not reentrant.

    Examples
    --------
    >>> lock = RWLock()
    >>> with lock.read(), lock.read():
    ...     pass
    >>> with lock.write():
    ...     pass
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0

    def acquire_read(self) -> None:
        """Take the lock shared (pair with :meth:`release_read`; cheaper than ``read()``)."""
        with self._mutex:  # the condition's own lock, entered without its Python wrapper
            if self._writing or self._waiting_writers:
                self._cond.wait_for(lambda: not self._writing and not self._waiting_writers)
            self._readers += 1

    def release_read(self) -> None:
        """Give back a shared hold; the last reader out wakes a waiting writer."""
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._waiting_writers:
                self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared."""
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively."""
        with self._cond:
            self._waiting_writers += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._waiting_writers -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
