"""``neuralcore migrate``: point an application's imports at :mod:`neuralcore.compat.atlas`.

The codemod lives in ``_codemod``, the command line in ``_cli`` (``register(sub)`` for the
``neuralcore`` argparse tree, ``main(argv)`` on its own).

Examples
--------
>>> new, n, _ = migrate_source("from core.messaging.NCB import NeuralCognitiveBus\\n")
>>> n
1
"""

from neuralcore.compat.migrate._cli import main, register
from neuralcore.compat.migrate._codemod import (
    REPLACEMENTS,
    TARGET_MODULE,
    MigrationResult,
    migrate_source,
)

__all__ = ("REPLACEMENTS", "TARGET_MODULE", "MigrationResult", "main", "migrate_source", "register")
