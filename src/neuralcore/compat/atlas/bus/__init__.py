"""The ATLAS-compatible bus: :class:`NeuralcoreCognitiveBus` and its value types.

``_types`` (envelope, configs, plugins, auth), ``_bus`` (the facade: publish, lifecycle),
``_dispatch`` (per-message fan-out), ``_config`` (``apply_config``, hot reload), ``_log``
(ATLAS's persistence file), ``_bridges`` and ``_bench``. Importing this package loads none
of them.
"""
