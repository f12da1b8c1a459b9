"""The optional compiled glue (everything else: pyproject.toml). Two C extensions:

* ``neuralcore.vectors._kernels._accel``: the one-pair cosine kernels' argument checks.
  Without it the kernels run as Python functions (same answers; one 384-d float32 pair
  then costs ~1.9x SimSIMD's own call instead of ~0.7x: ~350 ns instead of ~135 ns,
  measured 2026-11-29, ``neuralcore bench vectors --no-hnsw``). Numpy is used for its
  headers only (build requirement).
* ``neuralcore.messaging._accel``: the publish path's common case (the new message, the
  codec's checks around msgspec, a bridge's buffering, Kafka pack framing). Without it
  the same steps run as Python (same messages, bytes and errors; a bridged publish costs
  ~1 us more, measured 2026-11-29, ``neuralcore bench bridges``).

``optional=True``: without a C compiler the build still succeeds. Tests of this
repository fail when either extension is missing, since the shipped speed depends on them.
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
        ),
        Extension(
            "neuralcore.messaging._accel",
            ["src/neuralcore/messaging/_accel.c"],
            optional=True,
        ),
    ]
)
