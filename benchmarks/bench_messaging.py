"""Thin wrapper: ``python benchmarks/bench_messaging.py [--atlas-path DIR]``.

Same as ``neuralcore bench messaging``; the code lives in ``neuralcore._bench.messaging``.
"""

from __future__ import annotations

import sys

from neuralcore._bench.messaging import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
