"""``neuralcore bench all``: every suite in one process, written to bench-report.md + a PNG.

Each suite module exposes ``sections(quick: bool) -> list[Section]``; this module runs them,
prints and writes the Markdown report, and draws the ratio chart with matplotlib when present.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import time
from pathlib import Path

from neuralcore._bench import SUITES
from neuralcore._bench._common import Section, format_section, machine_line

__all__ = ("main",)

_log = logging.getLogger(__name__)
_SUITES = tuple(SUITES)


def _run_suite(name: str, quick: bool) -> list[Section]:
    module = importlib.import_module(f"neuralcore._bench.{name}")
    sections: list[Section] = module.sections(quick)
    return sections


def _ratios(sections: list[Section]) -> list[tuple[str, float]]:
    """(label, ours-vs-first-baseline ratio) for every row that has one."""
    found: list[tuple[str, float]] = []
    for section in sections:
        baseline = section.baseline or next((c for c in section.columns if c != section.ours), "")
        for row in section.rows:
            ours = row.values.get(section.ours, float("nan"))
            base = row.values.get(baseline, float("nan"))
            if row.unit == "value" or not (ours > 0 and base > 0):
                continue
            ratio = base / ours if row.unit == "time" else ours / base
            topic = section.title.split(":")[0]
            found.append((f"{topic}: {row.case.split(' (')[0]} vs {baseline}", ratio))
    return found


def _chart(sections: list[Section], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log.warning("matplotlib is not installed: no chart (pip install matplotlib)")
        return False
    ratios = _ratios(sections)
    if not ratios:
        return False
    labels = [re.sub(r"\s+", " ", label)[:90] for label, _ in ratios]
    fig, ax = plt.subplots(figsize=(13, 0.32 * len(ratios) + 1.5))
    ax.barh(labels, [r for _, r in ratios], color="#3b7dd8")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speed-up of neuralcore over the baseline (log scale; >1 is faster)")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str]) -> int:
    """Run the benchmark suites, print each one's duration, and write the report."""
    parser = argparse.ArgumentParser(prog="neuralcore bench all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--out", default="bench-report.md", help="Markdown report path")
    parser.add_argument("--suites", default=",".join(_SUITES), help="comma-separated suites")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    for name in names:
        if name not in _SUITES:
            parser.error(f"unknown suite {name!r}; choose from {', '.join(_SUITES)}")
    print(
        f"neuralcore bench: running {', '.join(names)}{' (quick)' if args.quick else ''}, then"
        f" writing {args.out}; 'neuralcore bench SUITE' runs one suite.",
        flush=True,
    )
    started = time.perf_counter()
    sections: list[Section] = []
    durations: list[str] = []
    for name in names:
        print(f"== {name}", flush=True)
        suite_started = time.perf_counter()
        for section in _run_suite(name, args.quick):
            print(format_section(section), flush=True)
            sections.append(section)
        durations.append(f"{name} {time.perf_counter() - suite_started:.0f} s")
        print(f"== {name} took {time.perf_counter() - suite_started:.0f} s", flush=True)
    out = Path(args.out)
    chart = out.with_suffix(".png")
    has_chart = _chart(sections, chart)
    body = [f"# neuralcore benchmark report\n\nMachine: {machine_line()}\n"]
    body += [format_section(s) for s in sections]
    if has_chart:
        body.append(f"![speed-ups]({chart.name})\n")
    total = f"Total benchmark time: {time.perf_counter() - started:.0f} s ({', '.join(durations)})"
    body.append(total + "\n")
    out.write_text("\n".join(body), encoding="utf-8")
    print(total)
    print(f"wrote {out}" + (f" and {chart}" if has_chart else ""))
    return 0
