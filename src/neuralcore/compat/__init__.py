"""Drop-in adapters that let an application swap neuralcore in without rewriting itself.

``neuralcore.compat.atlas`` serves ATLAS's embedding provider, message bus and similarity
helpers; ``neuralcore migrate`` rewrites an application's imports to it, and
``NEURALCORE_COMPAT=off`` switches back to the originals at run time. Importing this
package is cheap: nothing heavy loads until an adapter is used.

>>> from neuralcore.compat import compat_enabled
"""

from neuralcore.compat._switch import ENV_VAR, compat_enabled

__all__ = ("ENV_VAR", "compat_enabled")
