"""The vector kernels, one module per backend: ``native`` (SimSIMD + BLAS) and ``pure``."""
