"""The ATLAS-compatible embedding provider (``_provider``) and its result types (``_types``).

Importing this package loads neither; numpy is imported only when vectors are computed.
"""
