"""Where the error tree lived before :mod:`neuralcore.errors`; kept so internal imports work."""

from neuralcore.errors import *  # noqa: F403
from neuralcore.errors import __all__ as __all__
