"""Transports that run the core over real sockets: one event loop, or one thread per client.

``create_server(backend, settings)`` returns an object with ``bind()``,
``serve_forever()``, ``shutdown()`` (safe from any thread or a signal handler)
and ``address``. Nothing here knows IRC.
"""

from __future__ import annotations

from chatd.backends.base import BackendSettings, ChatServer, create_server

BACKENDS = ("selectors", "threads")

__all__ = ["BACKENDS", "BackendSettings", "ChatServer", "create_server"]
