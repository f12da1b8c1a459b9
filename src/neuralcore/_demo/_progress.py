"""A dependency-free progress bar on stderr for the demo's long stages.

On a terminal the bar redraws in place; elsewhere (logs, CI, tests) only the finished
line is written, so captured output stays readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ("Progress",)

_WIDTH = 28


class Progress:
    """Count ``done`` of ``total`` items of one stage and draw ``[####....] 40% 400/1000``.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress("embed", 4, unit="chunks", stream=out)
    >>> bar.advance(4)
    >>> bar.close()
    >>> "100%" in out.getvalue() and "4/4 chunks" in out.getvalue()
    True
    """

    def __init__(
        self, label: str, total: int, *, unit: str = "items", stream: TextIO | None = None
    ) -> None:
        self.label, self.total, self.unit = label, max(total, 0), unit
        self.done = 0
        self._stream = stream or sys.stderr
        self._live = bool(getattr(self._stream, "isatty", lambda: False)())
        self._start = time.perf_counter()
        self._drawn = 0.0

    def advance(self, n: int = 1) -> None:
        """Add ``n`` finished items; redraws at most 20 times a second on a terminal."""
        self.done += n
        now = time.perf_counter()
        if self._live and now - self._drawn >= 0.05:
            self._drawn = now
            self._stream.write("\r" + self._line(now))
            self._stream.flush()

    def close(self) -> None:
        """Draw the final line and end it."""
        self._stream.write(("\r" if self._live else "") + self._line(time.perf_counter()) + "\n")
        self._stream.flush()

    def _line(self, now: float) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = round(frac * _WIDTH)
        rate = self.done / max(now - self._start, 1e-9)
        bar = "#" * filled + "." * (_WIDTH - filled)
        return (
            f"{self.label:<8} [{bar}] {frac:4.0%} {self.done}/{self.total} {self.unit}"
            f" {rate:,.0f}/s"
        )
