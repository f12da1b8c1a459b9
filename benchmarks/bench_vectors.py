"""Vector kernels vs pure Python and naive numpy: ``python benchmarks/bench_vectors.py [--quick]``.

A thin wrapper over ``neuralcore bench vectors`` so the numbers come from one code path.
"""

from __future__ import annotations

import sys

from neuralcore._bench.vectors import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
