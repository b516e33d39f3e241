"""The chat state machine: clients, channels and the command table. No I/O.

A backend drives the core through ``Hub.connect`` (a new connection), a
``chatd.core.session.Session`` per connection (its bytes, framed and flood-controlled,
reach ``Hub.receive``), ``Hub.disconnect`` and ``Hub.run_timers``; the core talks back
only through the ``Transport`` it was given for each connection, and through the
fan-out groups a backend may register (``chatd.core.fanout``). It is not thread-safe:
the threads backend calls it under one lock.
"""

from chatd.core.client import Client, Transport
from chatd.core.config import ServerConfig
from chatd.core.hub import Hub

__all__ = ["Client", "Hub", "ServerConfig", "Transport"]
