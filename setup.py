"""The optional compiled glue of the one-pair cosine kernels (everything else: pyproject.toml).

``optional=True``: without a C compiler the build still succeeds and the kernels run as
Python functions (same answers; one 384-d float32 pair then costs ~1.9x SimSIMD's own call
instead of ~0.7x: ~350 ns instead of ~135 ns, measured 2026-11-29, ``neuralcore bench
vectors --no-hnsw``). A test of this repository fails when the extension is missing, since
the shipped speed depends on it. Numpy is used for its headers only (build requirement).
"""

import numpy
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "neuralcore.vectors._kernels._accel",
            ["src/neuralcore/vectors/_kernels/_accel.c"],
            include_dirs=[numpy.get_include()],
            optional=True,
        )
    ]
)
