"""The optional compiled glue of the one-pair cosine kernels (everything else: pyproject.toml).

``optional=True``: without a C compiler the build still succeeds and the kernels run as
Python functions (same answers; the one-pair call then costs ~1.8x instead of ~1.1x of
SimSIMD's own call). A test of this repository fails when the extension is missing, since
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
