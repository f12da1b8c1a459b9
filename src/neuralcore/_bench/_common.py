"""Timing and table helpers shared by every benchmark module."""

from __future__ import annotations

import gc
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from neuralcore.core._cpu import usable_cores

__all__ = (
    "Row",
    "Section",
    "format_section",
    "format_table",
    "machine_line",
    "median_seconds",
    "ratio_text",
)


class Row(NamedTuple):
    """One benchmark line: the same case timed for each contender (seconds or a rate)."""

    case: str
    values: dict[str, float]
    unit: str = "time"  # "time" (lower is better) or "rate" (higher is better) or "value"
    note: str = ""


def median_seconds(fn: Callable[[], object], *, repeat: int = 7, min_time: float = 0.05) -> float:
    """Median wall time of one ``fn()`` call, looping enough calls per sample to be measurable."""
    fn()  # warm-up: caches, lazy imports, allocator
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / repeat or number >= 1 << 20:
            break
        number *= 4
    samples = [elapsed / number]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat - 1):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples)


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _fmt(value: float, unit: str) -> str:
    if value != value:  # NaN: not measured
        return "-"
    if unit == "time":
        return _fmt_time(value)
    if unit == "rate":
        return f"{value:,.0f}/s"
    return f"{value:,.4g}"


def ratio_text(baseline: float, ours: float, unit: str) -> str:
    """How many times better ours is than the baseline (``"12.3x"``; below 1, two decimals,
    ``"0.47x"``: goals such as "at least half" sit there)."""
    if baseline != baseline or ours != ours or baseline <= 0 or ours <= 0 or unit == "value":
        return "-"
    ratio = baseline / ours if unit == "time" else ours / baseline
    return f"{ratio:.2f}x" if ratio < 0.995 else f"{ratio:.1f}x"


def format_table(
    rows: Sequence[Row], columns: Sequence[str], ours: str, *, baseline: str | None = None
) -> str:
    """A Markdown table: one column per contender, then the ratios.

    Without ``baseline``: ``ours`` against each other column. With it: every other column
    against ``baseline`` (several of ours against one reference).
    """
    if baseline is None:
        pairs = [(ours, other, f"vs {other}") for other in columns if other != ours]
    else:
        pairs = [(c, baseline, f"{c} vs {baseline}") for c in columns if c != baseline]
    head = ["case", *columns, *(label for _, _, label in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.case + (f" ({row.note})" if row.note else "")]
        cells += [_fmt(row.values.get(c, float("nan")), row.unit) for c in columns]
        for mine, other, _ in pairs:
            nan = float("nan")
            cells.append(
                ratio_text(row.values.get(other, nan), row.values.get(mine, nan), row.unit)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    """A one-line description of the machine the numbers come from."""

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = usable_cores()
    return f"{cpu}, {cores} cores usable, Python {platform.python_version()}, {platform.system()}"


class Section(NamedTuple):
    """One benchmark table: a title, its rows, the contender columns and which one is ours."""

    title: str
    rows: list[Row]
    columns: list[str]
    ours: str
    notes: str = ""
    baseline: str | None = None


def format_section(section: Section) -> str:
    """Markdown heading, table and notes for one section."""
    parts = [
        f"## {section.title}\n",
        format_table(section.rows, section.columns, section.ours, baseline=section.baseline),
    ]
    if section.notes:
        parts.append("\n" + section.notes)
    return "\n".join(parts) + "\n"
