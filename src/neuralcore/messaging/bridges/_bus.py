"""Where the bridges find the bus's port (kept for their imports): see
:mod:`neuralcore.messaging._port`."""

from neuralcore.messaging._port import MessageBusPort, port_for

__all__ = ("MessageBusPort", "port_for")
