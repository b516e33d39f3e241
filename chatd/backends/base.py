"""What the backends share: their settings and the server interface tests and the CLI use."""

from __future__ import annotations

import errno
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from chatd.core import Hub, ServerConfig
from chatd.history import History

if TYPE_CHECKING:
    from chatd.cluster import ClusterSettings

PAUSE_FLUSH_S = 0.1
"""How long a peer must pause after bytes with no newline before they count as a line."""

CLOSE_LINGER_S = 5.0
"""How long a closing connection may take to drain its queue before it is cut."""

SHUTDOWN_GRACE_S = 2.0
"""How long shutdown waits for queued messages and goodbyes to drain before closing sockets."""

ACCEPT_BACKOFF_MIN_S = 0.05
ACCEPT_BACKOFF_MAX_S = 1.0
"""Out of descriptors (EMFILE): stop accepting for a while, doubling up to the max, instead of spinning."""

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """Transport-level settings, next to the core's ``ServerConfig``."""

    host: str = "127.0.0.1"
    port: int = 6667
    sendq_bytes: int = 1 << 20
    config: ServerConfig = field(default_factory=ServerConfig)
    tls_port: int | None = None
    tls_context: ssl.SSLContext | None = None
    history: History | None = None
    cluster: ClusterSettings | None = None
    """Join a chat network over Redis (``--cluster``); None: this server is on its own."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, so several processes (``chatd --workers``) share one port and the
    kernel spreads new connections over them; off by default, so a second chatd on a taken port
    still fails loudly instead of quietly splitting its clients."""


class ChatServer(Protocol):
    """A server that can run in a thread of a test or as the process's main loop."""

    address: tuple[str, int]
    tls_address: tuple[str, int] | None

    def bind(self) -> None: ...

    def serve_forever(self) -> None: ...

    def shutdown(self) -> None: ...


def make_hub(settings: BackendSettings) -> Hub:
    return Hub(settings.config, time.monotonic, time.time, settings.history)


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket; raises OSError (for the CLI to report) when the port is taken.

    With ``reuse_port`` the socket sets SO_REUSEPORT before binding: every process that does
    the same (as the same user) gets its own accept queue on the port and the kernel
    balances new connections over them. A socket bound without it still blocks the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def tune_accepted(sock: socket.socket) -> None:
    """We coalesce writes ourselves, so Nagle only adds latency; keepalive finds dead plain peers."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


ALL_BACKENDS = ("selectors", "threads", "asyncio")
"""Every backend ``create_server`` knows; the shared test suite runs over ``BACKENDS`` only."""


def create_server(backend: str, settings: BackendSettings) -> ChatServer:
    """The server for ``backend`` (one of ``ALL_BACKENDS``); raises ValueError otherwise."""
    if backend == "asyncio":
        from chatd.backends.asyncio_server import AsyncioServer

        return AsyncioServer(settings)
    if backend == "selectors":
        from chatd.backends.selectors_server import SelectorsServer

        return SelectorsServer(settings)
    if backend == "threads":
        from chatd.backends.threaded_server import ThreadedServer

        return ThreadedServer(settings)
    raise ValueError(f"unknown backend {backend!r}")
