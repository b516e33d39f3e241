"""The chat state machine: clients, channels and the command table. No I/O.

The core is driven by a backend through four calls on ``Hub`` — ``connect``,
``receive``, ``disconnect`` and ``run_timers`` — and talks back only through the
``Transport`` it was given for each connection. It is not thread-safe: the
threads backend calls it under one lock.
"""

from chatd.core.client import Client, Transport
from chatd.core.config import ServerConfig
from chatd.core.hub import Hub

__all__ = ["Client", "Hub", "ServerConfig", "Transport"]
