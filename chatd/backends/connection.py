"""What every backend's connection is, whatever waits and sends for it: one class, one accept.

A backend subclasses ``Connection`` with how it is told of output
(``output_ready``), how a graceful close is bounded (``linger``) and how the
socket is cut (``cut``); the rest — the outbox and its bound, close and abort,
TLS between the core's bytes and the wire, the input handed to the core's
``Session`` — is written here once. Listening, accepting with a back-off and the
socket options of an accepted socket are here too.

Invariants:
- The core's bytes collect in ``outbox``; ``write`` never lets it pass
  ``sendq_bytes`` (it refuses instead). Only a farewell and a fan-out group's
  appends may go past it, and a queue found past it when the backend flushes is
  reported (``overflowed``), never sent.
- ``wire`` is what goes to the socket: the outbox itself over plain TCP; with TLS
  and/or WebSocket the outbox is framed and encrypted into it in one go per flush
  (``encode_output``), so a fan-out of many lines costs one record — and only while
  the wire holds less than ``WIRE_LOW_WATER_BYTES``, so a peer that does not read
  leaves the core's bytes in the bounded outbox, where the send queue bound sees them.
- Before the core hears of a connection (``client`` None), its input goes to a PROXY
  header parser and a WebSocket handshake (``take_input``); once ``ready``, the
  backend ``attach``es it with ``host``, the client's real address. A plain TCP or TLS
  connection without PROXY is ready at once and attached at accept.
- ``pending`` is True from the write that gives the backend work until the
  backend takes it; ``output_ready`` is called once per such stretch, not per write.
- ``closing`` comes before ``closed`` and neither is ever undone. Once closing,
  writes are dropped (the core is done with the connection); once closed, the
  socket is gone and both buffers are empty.
- Nothing here calls the hub or blocks; the backend does both as its design allows.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from chatd.backends.proxy_protocol import ProxyHeaderError, ProxyHeaderParser
from chatd.backends.tls import TlsSession
from chatd.backends.websocket import WebPolicy, WebSocketSession, irc_host
from chatd.core.session import Session
from chatd.http import HttpRoutes

if TYPE_CHECKING:
    from chatd.backends.base import BackendSettings
    from chatd.core import Client, Hub

log = logging.getLogger("chatd")

RECV_BYTES = 65536
"""One read's worth: a busy client's whole burst of lines, framed in one ``feed``."""

CLOSE_LINGER_S = 5.0
"""How long a closing connection may take to drain its queue before it is cut."""

SHUTDOWN_GRACE_S = 2.0
"""How long shutdown waits for queued messages and goodbyes to drain before closing sockets."""

ACCEPT_BACKOFF_MIN_S = 0.05
ACCEPT_BACKOFF_MAX_S = 1.0
"""Out of descriptors (EMFILE): stop accepting for a while, doubling up to the max, instead of spinning."""

WIRE_LOW_WATER_BYTES = 65536
"""Encode more of the outbox only while the wire holds less than this (see the invariants)."""

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class ConnectionEnded(Exception):
    """The connection's input says it must end (a bad PROXY header, bad TLS); the message says why."""


class Connection:
    """One accepted socket as the core's ``Transport``; a backend subclasses it with how it sends."""

    __slots__ = (
        "client",
        "closed",
        "closing",
        "host",
        "kind",
        "outbox",
        "peer",
        "pending",
        "proxy",
        "sendq_bytes",
        "session",
        "sock",
        "tls",
        "wire",
        "ws",
    )

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        sendq_bytes: int,
        tls_context: ssl.SSLContext | None = None,
        *,
        host: str = "",
        websocket: WebPolicy | None = None,
        proxy_protocol: bool = False,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.host = host
        """The client's address as the core sees it: the socket's, or a PROXY header's."""
        self.sendq_bytes = sendq_bytes
        self.tls = TlsSession(tls_context) if tls_context is not None else None
        self.ws = WebSocketSession(websocket, host) if websocket is not None else None
        self.proxy = ProxyHeaderParser() if proxy_protocol else None
        self.kind = "websocket" if self.ws is not None else "tcp" if tls_context is None else "tls"
        """How the peer reached us, for the connection counts (chatd.core.stats): ``tcp``, ``tls`` or
        ``websocket`` (over TLS or not)."""
        self.outbox = bytearray()
        self.wire = self.outbox if self.tls is None and self.ws is None else bytearray()
        self.pending = False
        self.closing = False
        self.closed = False
        self.client: Client | None = None
        """The core's handle for this connection, passed back to it; only its ``certfp`` is set here."""
        self.session: Session | None = None
        """The core's side of this connection's input; set once the hub accepted it."""

    # The core's Transport contract ----------------------------------------------------

    def write(self, data: bytes) -> bool:
        # Called once per delivery outside a fan-out group: kept to the bone.
        if self.closing:
            return True
        outbox = self.outbox
        if len(outbox) + len(data) > self.sendq_bytes:
            return False
        outbox += data
        if not self.pending:
            self.pending = True
            self.output_ready()
        return True

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        """Send what is queued plus ``farewell``, then close (within ``CLOSE_LINGER_S``).

        With ``abort``, drop what is queued, make one attempt at ``farewell`` and close now.
        Idempotent: only the first call counts.
        """
        if self.closing:
            return
        self.closing = True
        if abort:
            self.outbox.clear()
            self.wire.clear()
            self.outbox += farewell
            self.encode_output()
            self.cut()
            return
        self.outbox += farewell
        self.linger(CLOSE_LINGER_S)
        self.mark_pending()

    # What a backend provides -----------------------------------------------------------

    def output_ready(self) -> None:
        """There is output the backend has not taken (``pending`` just became True)."""
        raise NotImplementedError

    def linger(self, seconds: float) -> None:
        """A graceful close began: make sure the socket is closed within ``seconds``."""
        raise NotImplementedError

    def cut(self) -> None:
        """Abort: one non-blocking attempt at ``wire``, then close the socket now."""
        raise NotImplementedError

    # Shared by the backends ------------------------------------------------------------

    def mark_pending(self) -> None:
        if not self.pending:
            self.pending = True
            self.output_ready()

    def overflowed(self) -> bool:
        """True when the queue passed the bound (a fan-out group appends unchecked): the
        backend reports the client to the hub instead of sending."""
        return len(self.outbox) > self.sendq_bytes and not self.closing and self.client is not None

    def encode_output(self) -> None:
        """Move the core's bytes to ``wire``: nothing to do over plain TCP; frame them as WebSocket
        messages (a close frame after them once closing) and/or encrypt them with TLS."""
        wire, outbox = self.wire, self.outbox
        if wire is outbox or len(wire) >= WIRE_LOW_WATER_BYTES:
            return
        tls, ws = self.tls, self.ws
        if ws is not None:
            if outbox:
                ws.send(outbox)
                outbox.clear()
            if self.closing:
                ws.close()
            framed = ws.take_output() if ws.has_output else b""
            if tls is None:
                wire += framed
                return
            if framed:
                tls.send(framed)
        elif outbox and tls is not None:
            tls.send(outbox)
            outbox.clear()
        if tls is not None and tls.has_output:
            wire += tls.take_output()

    @property
    def codec_has_output(self) -> bool:
        """TLS or WebSocket have bytes of their own to send (handshakes, pongs, tickets)."""
        return (self.tls is not None and self.tls.has_output) or (self.ws is not None and self.ws.has_output)

    @property
    def ready(self) -> bool:
        """The core may hear of this connection: its PROXY header and WebSocket handshake are done."""
        return (self.proxy is None or self.proxy.done) and (self.ws is None or self.ws.open)

    def take_input(self, data: bytes) -> bytes:
        """What of ``data`` (as read off the socket) is for the core's ``Session``.

        Peels off, in wire order, a PROXY header, TLS, and WebSocket framing. Raises
        ``ConnectionEnded`` for input the connection cannot go on with; a WebSocket that
        is over (closed, or an HTTP request answered) says so in ``ws.ended`` instead,
        so what it says last still goes out.
        """
        proxy = self.proxy
        if proxy is not None and not proxy.done:
            try:
                rest = proxy.feed(data)
            except ProxyHeaderError as error:
                raise ConnectionEnded(f"PROXY header refused: {error}") from None
            if rest is None:
                return b""
            if proxy.source is not None:
                self.host = irc_host(proxy.source[0])
                if self.ws is not None:
                    self.ws.host = self.host
            data = rest
            if not data:
                return b""
        if self.tls is not None:
            try:
                data = self.unwrap(data)
            except ssl.SSLError as error:
                raise ConnectionEnded(f"TLS error: {error.reason or error}") from None
        ws = self.ws
        if ws is not None and data:
            data = ws.receive(data)
            if ws.has_output:
                self.mark_pending()
        return data

    def attach(self, hub: Hub) -> Session:
        """Introduce the connection to the core (``ready``): its client and session. The caller
        holds what guards the hub (the threads backend: its lock)."""
        if self.ws is not None:
            self.host = self.ws.host
        client = self.client = hub.connect(self, self.host)
        if self.tls is not None and self.tls.handshaken:
            client.certfp = self.tls.peer_certfp()
        session = self.session = Session(hub, client)
        return session

    def unwrap(self, data: bytes) -> bytes:
        """Plaintext of what the peer sent; raises ``ssl.SSLError`` on bad TLS.

        Handshake replies (and session tickets) must go out even if the core says
        nothing, so they make the connection pending.
        """
        tls = self.tls
        if tls is None:
            return data
        if not tls.handshaken:
            plaintext = tls.receive(data)
            if tls.handshaken and self.client is not None:
                # Before any line of the client's reaches the core: what SASL EXTERNAL reads.
                self.client.certfp = tls.peer_certfp()
        else:
            plaintext = tls.receive(data)
        if tls.has_output:
            self.mark_pending()
        return plaintext

    @property
    def peer_closed_tls(self) -> bool:
        """The peer sent TLS close_notify: the same as end of file."""
        return self.tls is not None and self.tls.closed_by_peer

    def send_once(self) -> None:
        """One non-blocking attempt at ``wire`` (an abort's farewell); errors are ignored."""
        if self.wire:
            with contextlib.suppress(OSError):
                self.sock.send(self.wire, socket.MSG_DONTWAIT)
            self.wire.clear()


ConnectionT = TypeVar("ConnectionT", bound=Connection)


def answered(held: set[ConnectionT]) -> list[tuple[ConnectionT, Session | None]]:
    """Take from ``held`` the connections the network has answered (or that are gone), each with
    its session (None when gone): the backend lets their input go on now, not at a poll."""
    done = [
        (connection, connection.session)
        for connection in held
        if connection.session is None or not connection.session.held
    ]
    for connection, _ in done:
        held.discard(connection)
    return done


# ---- listening and accepting -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening socket and, for the TLS port, the context its connections use."""

    sock: socket.socket
    tls_context: ssl.SSLContext | None
    kind: str = "tcp"
    """tcp, tls, ws, wss or metrics: its key in the server's ``addresses``."""
    websocket: WebPolicy | None = None
    """Set on the WebSocket listeners: their connections speak WebSocket (and HTTP); and on
    the metrics listener, with a policy that makes them speak HTTP only."""
    proxy_protocol: bool = False
    """Connections start with a PROXY header and come only from trusted proxies."""

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]


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


def bind_listeners(settings: BackendSettings, policy: WebPolicy, metrics: WebPolicy | None = None) -> list[Listener]:
    """The plaintext listener first, then TLS, WebSocket, WebSocket over TLS and metrics where set.

    The metrics listener (``metrics``, on ``settings.metrics_host``) is a WebSocket listener
    whose policy refuses upgrades: plain HTTP through the same handshake bounds, and no
    PROXY header (it is not behind the IRC load balancer). Raises OSError when a port is
    taken, with nothing left open.
    """
    host = settings.host
    wanted: list[tuple[str, str, int, ssl.SSLContext | None]] = [("tcp", host, settings.port, None)]
    if settings.tls_context is not None and settings.tls_port is not None:
        wanted.append(("tls", host, settings.tls_port, settings.tls_context))
    if settings.ws_port is not None:
        wanted.append(("ws", host, settings.ws_port, None))
    if settings.tls_context is not None and settings.wss_port is not None:
        wanted.append(("wss", host, settings.wss_port, settings.tls_context))
    if metrics is not None and settings.metrics_port is not None:
        wanted.append(("metrics", settings.metrics_host, settings.metrics_port, None))
    listeners: list[Listener] = []
    for kind, address, port, context in wanted:
        try:
            sock = listen(address, port, reuse_port=settings.reuse_port)
        except OSError:
            for listener in listeners:
                listener.sock.close()
            raise
        if kind == "metrics":
            listeners.append(Listener(sock, None, kind, metrics))
            continue
        web = kind in ("ws", "wss")
        listeners.append(
            Listener(sock, context, kind, policy if web else None, settings.proxy_protocol and not web)
        )
    return listeners


def web_policy(settings: BackendSettings) -> WebPolicy:
    """The WebSocket listeners' policy from the settings (with a router of its own if none is given)."""
    if settings.http_routes is None:
        return WebPolicy(settings.ws_origins, settings.trusted_proxies)
    return WebPolicy(settings.ws_origins, settings.trusted_proxies, settings.http_routes)


def metrics_policy(settings: BackendSettings) -> WebPolicy | None:
    """The metrics listener's policy (no upgrades, a router without the web client), or None
    without ``metrics_port``."""
    if settings.metrics_port is None:
        return None
    return WebPolicy(routes=HttpRoutes(web_root=None), websocket=False)


def addresses(listeners: list[Listener]) -> dict[str, tuple[str, int]]:
    """Each listener's kind to its bound address (port 0 resolved)."""
    return {listener.kind: listener.address for listener in listeners}


def tune_accepted(sock: socket.socket) -> None:
    """We coalesce writes ourselves, so Nagle only adds latency; keepalive finds dead plain peers."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


class AcceptBackoff:
    """How long to stop accepting after ``accept`` fails for want of descriptors or memory.

    The refused connection stays in the kernel's backlog and the listener stays
    readable, so trying again at once would spin: the pause doubles from
    ``ACCEPT_BACKOFF_MIN_S`` to ``ACCEPT_BACKOFF_MAX_S`` and resets on the next success.
    """

    __slots__ = ("delay_s",)

    def __init__(self) -> None:
        self.delay_s = 0.0

    def accepted(self) -> None:
        self.delay_s = 0.0

    def failed(self, error: OSError) -> float | None:
        """The pause to take after ``error`` (logged), or None when it is not worth one."""
        if error.errno not in RESOURCE_ERRNOS:
            log.warning("accept failed: %s", error)
            return None
        self.delay_s = min(ACCEPT_BACKOFF_MAX_S, max(ACCEPT_BACKOFF_MIN_S, self.delay_s * 2))
        log.warning("accept failed (%s); not accepting for %.2fs", error.strerror, self.delay_s)
        return self.delay_s
