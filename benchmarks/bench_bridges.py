"""Thin wrapper: ``python benchmarks/bench_bridges.py [--messages N] [--only redis|kafka]``.

Same as ``neuralcore bench bridges``; the code lives in ``neuralcore._bench.bridges``.
"""

from __future__ import annotations

import sys

from neuralcore._bench.bridges import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
