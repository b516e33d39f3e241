"""What the backends share above the connection: their settings and the server interface.

Imports no backend: the registry in ``chatd.backends`` maps names to servers.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from chatd.core import Hub, ServerConfig
from chatd.core.ports import AccountStore
from chatd.history import History

if TYPE_CHECKING:
    import ipaddress

    from chatd.cluster import ClusterSettings
    from chatd.http import HttpRoutes


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
    accounts: AccountStore | None = None
    """Where accounts live; None: accounts are off (no SASL, REGISTER or services)."""
    cluster: ClusterSettings | None = None
    """Join a chat network over Redis (``--cluster``); None: this server is on its own."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, so several processes (``chatd --workers``) share one port and the
    kernel spreads new connections over them; off by default, so a second chatd on a taken port
    still fails loudly instead of quietly splitting its clients."""
    ws_port: int | None = None
    """IRC over WebSocket (and HTTP: the web client, /healthz, /metrics) on this port; None: off."""
    wss_port: int | None = None
    """The same over TLS (needs ``tls_context``); None: off."""
    ws_origins: tuple[str, ...] | None = None
    """Origins (normalised, chatd.backends.websocket.parse_origins) allowed to open a WebSocket;
    ``("*",)``: any; None: only the server's own."""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Whose X-Forwarded-For (WebSocket) and PROXY headers are believed."""
    proxy_protocol: bool = False
    """The TCP and TLS listeners expect a PROXY v1/v2 header, from trusted proxies only."""
    http_routes: HttpRoutes | None = None
    """What answers HTTP on the WebSocket ports; None: a default ``HttpRoutes``."""
    metrics_port: int | None = None
    """A listener of its own for /metrics and /healthz (plain HTTP, nothing else) on this port;
    None: none, /metrics is on the WebSocket ports for loopback peers only."""
    metrics_host: str = "127.0.0.1"
    """The address of that listener: this machine only unless the operator names another."""


class ChatServer(Protocol):
    """A server that can run in a thread of a test or as the process's main loop."""

    address: tuple[str, int]
    tls_address: tuple[str, int] | None
    addresses: dict[str, tuple[str, int]]
    """Every bound listener by kind: tcp, tls, ws, wss, metrics."""

    def bind(self) -> None: ...

    def serve_forever(self) -> None: ...

    def shutdown(self) -> None: ...


def make_hub(settings: BackendSettings) -> Hub:
    return Hub(settings.config, time.monotonic, time.time, settings.history, settings.accounts)


class Deferred:
    """Work a backend runs once the current turn (selectors) or read (threads) is over, on the
    hub's thread or under its lock: what one turn publishes to the network goes out as one
    batch. Truthy while something waits."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []

    def __bool__(self) -> bool:
        return bool(self.calls)

    def defer(self, callback: Callable[[], None]) -> None:
        self.calls.append(callback)

    def run(self) -> None:
        """Everything deferred, including what that defers in turn; a failure is logged and the rest runs."""
        while self.calls:
            batch, self.calls = self.calls, []
            for callback in batch:
                try:
                    callback()
                except Exception:
                    logging.getLogger("chatd").exception("deferred cluster work failed")
