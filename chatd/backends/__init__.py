"""Transports that run the core over real sockets: one event loop, or one thread per client.

``create_server(backend, settings)`` returns an object with ``bind()``,
``serve_forever()``, ``shutdown()`` (safe from any thread or a signal handler)
and ``address``. Nothing here knows IRC.

The servers import ``base`` and ``connection``; nothing imports a server but the
registry below, and only when that server is asked for, so there is no circle.
"""

from __future__ import annotations

import importlib

from chatd.backends.base import BackendSettings, ChatServer

SERVERS: dict[str, tuple[str, str]] = {
    "selectors": ("chatd.backends.selectors_server", "SelectorsServer"),
    "threads": ("chatd.backends.threaded_server", "ThreadedServer"),
}
"""Each backend's name and where its server class lives."""

BACKENDS = tuple(SERVERS)
"""What ``--backend`` offers; the shared test suite runs over all of them."""


def create_server(backend: str, settings: BackendSettings) -> ChatServer:
    """The server for ``backend`` (one of ``BACKENDS``); raises ValueError otherwise."""
    try:
        module_name, class_name = SERVERS[backend]
    except KeyError:
        raise ValueError(f"unknown backend {backend!r}") from None
    server: ChatServer = getattr(importlib.import_module(module_name), class_name)(settings)
    return server


__all__ = ["BACKENDS", "BackendSettings", "ChatServer", "create_server"]
