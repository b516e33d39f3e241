"""IRC over WebSocket (the IRCv3 WebSocket extension) as a codec over memory buffers, like TLS.

``WebSocketSession`` sits between the connection's wire and the core, under websockets'
sans-I/O ``ServerProtocol`` (no framing written here): bytes from the socket (TLS
already removed) go in and come out as IRC lines, each ending in ``\\n``, for the core's
``Session``; the core's CRLF-terminated bytes go in and come out as one WebSocket
message per line. The first request on the connection is parsed by websockets too: a
WebSocket upgrade is accepted (or refused, 403, for an origin not allowed), anything
else is answered by ``chatd.http.HttpRoutes`` and the connection ends. The metrics
listener uses the same session with a policy that refuses every upgrade (404): the
same parser, size and time bounds for its plain HTTP.

Invariants:
- Subprotocols: ``binary.ircv3.net`` and ``text.ircv3.net``, the first of the client's
  list that is one of them (its order of preference); none offered or none known: text,
  without a ``Sec-WebSocket-Protocol`` header.
- Out: one message per line, CR/LF stripped; with text frames the line is made valid
  UTF-8 (invalid bytes become U+FFFD, as the spec allows), with binary frames it is sent
  as it is. In: a text message is UTF-8 by definition (invalid UTF-8 fails the
  connection with 1007); a binary message is taken as bytes in either mode (legacy
  clients, irctest). The 512-byte line limit is the core's framing's, as for TCP; a
  message past ``MAX_MESSAGE_BYTES`` fails the connection (1009).
- Until the handshake is done no more than ``HANDSHAKE_MAX_BYTES`` are taken (the
  backend also bounds its time, ``HANDSHAKE_TIMEOUT_S``); ``ended`` says why the
  connection must go once it is set, and is never unset.
- ``host`` is the socket's address, or the client's from ``X-Forwarded-For`` when the
  socket's address is a trusted proxy (the rightmost address not itself trusted).
- Not thread-safe: the threads backend holds the connection's lock around it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.datastructures import Headers, MultipleValuesError
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from chatd.http import HttpRoutes

log = logging.getLogger("chatd")
_protocol_log = logging.getLogger("chatd.websocket")
_protocol_log.setLevel(logging.WARNING)  # websockets logs every open and close at INFO

BINARY = "binary.ircv3.net"
TEXT = "text.ircv3.net"
SUBPROTOCOLS = (BINARY, TEXT)

HANDSHAKE_TIMEOUT_S = 10.0
"""How long a connection may take to finish its HTTP request (and a PROXY header)."""
HANDSHAKE_MAX_BYTES = 16384
"""What a client may send before its request is complete: a browser's request is ~1 KiB."""
MAX_MESSAGE_BYTES = 16384
"""The largest WebSocket message taken; a longer IRC line below it gets 417 from the core."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class WebPolicy:
    """Who may open a WebSocket, whose X-Forwarded-For is believed, and what answers HTTP."""

    origins: tuple[str, ...] | None = None
    """Allowed Origin values (``*``: any); None: only the server's own origin (the Host header's)."""
    trusted_proxies: tuple[Network, ...] = ()
    routes: HttpRoutes = field(default_factory=HttpRoutes)
    websocket: bool = True
    """False on the metrics listener: plain HTTP only, an upgrade request gets 404."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """``--trusted-proxy``: CIDRs or addresses separated by commas or spaces; raises ValueError."""
    networks = []
    for item in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an address or CIDR (like 10.0.0.0/8)") from None
    if not networks:
        raise ValueError("no address or CIDR given")
    return tuple(networks)


def parse_origins(text: str) -> tuple[str, ...]:
    """``--ws-origins``: ``*`` or origins (``https://chat.example.org``) separated by commas or spaces."""
    origins = []
    for item in text.replace(",", " ").split():
        if item == "*":
            origins.append(item)
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"{item!r} is not an origin (like https://chat.example.org or *)")
        origins.append(_normal_origin(item))
    if not origins:
        raise ValueError("no origin given")
    return tuple(origins)


def is_trusted(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def forwarded_client(values: Sequence[str], networks: Sequence[Network]) -> str | None:
    """The client's address from X-Forwarded-For: the rightmost one that is not a trusted proxy
    (each proxy appends the address it got the request from). None when the header is absent
    or an entry is not an address."""
    entries = [entry.strip() for value in values for entry in value.split(",")]
    entries = [entry for entry in entries if entry]
    if not entries:
        return None
    for entry in reversed(entries):
        try:
            address = ipaddress.ip_address(entry.removeprefix("[").removesuffix("]"))
        except ValueError:
            return None
        if not any(address in network for network in networks):
            return str(address)
    return str(ipaddress.ip_address(entries[0].removeprefix("[").removesuffix("]")))


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def _normal_origin(origin: str) -> str:
    parts = urlsplit(origin)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host.lower()}:{parts.port or _default_port(parts.scheme.lower())}"


def origin_allowed(origin: str | None, host_header: str | None, allowed: tuple[str, ...] | None) -> bool:
    """Whether a request with this Origin may open a WebSocket.

    No Origin at all is not a browser (the header guards against other sites' pages using a
    visitor's browser), so it is let in. Without an allow-list, the origin must be this
    server's own: its host and port those of the Host header the browser sent.
    """
    if origin is None:
        return True
    if allowed is not None:
        try:
            return "*" in allowed or _normal_origin(origin) in allowed
        except ValueError:
            return False
    try:
        parts = urlsplit(origin)
        served = urlsplit(f"//{host_header or ''}")
        origin_port = parts.port or _default_port(parts.scheme.lower())
        served_port = served.port or origin_port
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return False
    return parts.hostname == served.hostname and origin_port == served_port


def _select_subprotocol(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The first of the client's choices we speak (its order of preference); None: text, no header."""
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    return None


def irc_host(address: str) -> str:
    """An address as an IRC host: one starting with ':' (IPv6 ``::1``) would end a prefix early."""
    return "0" + address if address.startswith(":") else address


class WebSocketSession:
    """One server-side WebSocket connection, driven by bytes in and bytes out."""

    __slots__ = (
        "_fragment_text",
        "_fragments",
        "_out",
        "_received",
        "binary",
        "ended",
        "host",
        "open",
        "policy",
        "protocol",
    )

    def __init__(self, policy: WebPolicy, peer_host: str) -> None:
        self.policy = policy
        self.protocol = ServerProtocol(
            select_subprotocol=_select_subprotocol, max_size=MAX_MESSAGE_BYTES, logger=_protocol_log
        )
        self.host = peer_host
        self.open = False
        """The handshake is done: the backend may hand the connection to the core now."""
        self.binary = False
        self.ended: str | None = None
        """Why this connection must end (an HTTP answer sent, a close, a protocol error)."""
        self._fragments: bytearray | None = None
        self._fragment_text = False
        self._received = 0
        self._out = bytearray()

    # input ----------------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the peer; return the IRC lines they complete, each ending in ``\\n``."""
        if self.ended is not None:
            return b""  # what a peer sends after the end is discarded
        protocol = self.protocol
        if not self.open:
            self._received += len(data)
        protocol.receive_data(data)
        lines: list[bytes] = []
        for event in protocol.events_received():
            if isinstance(event, Request):
                self._answer(event)
            else:
                self._frame(event.opcode, event.data, event.fin, lines)
        if not self.open and self.ended is None and self._received > HANDSHAKE_MAX_BYTES:
            self.ended = "HTTP request too large"
        self._collect()
        return b"".join(lines)

    def _answer(self, request: Request) -> None:
        protocol = self.protocol
        headers = request.headers
        upgrade = ",".join(headers.get_all("Upgrade")).lower()
        if "websocket" in upgrade and not self.policy.websocket:
            refusal = protocol.reject(404, "No WebSocket here: this listener serves /metrics and /healthz.\n")
            protocol.send_response(refusal)
            self.ended = "WebSocket upgrade on the metrics listener"
            return
        if "websocket" not in upgrade:
            answer = self.policy.routes.respond(request.method, request.path, self.host, headers.keys())
            body = b"" if answer.head else answer.body
            protocol.send_response(Response(answer.status, answer.reason, Headers(answer.header_list()), body))
            self.ended = "HTTP request answered"
            return
        try:
            origin = headers.get("Origin")
            host_header = headers.get("Host")
        except MultipleValuesError:
            origin, host_header = "", None  # refused below
        if not origin_allowed(origin, host_header, self.policy.origins) or origin == "":
            log.info("WebSocket from %s refused: origin %r not allowed", self.host, origin)
            protocol.send_response(protocol.reject(403, "This origin may not open a WebSocket here.\n"))
            self.ended = "Origin not allowed"
            return
        response = protocol.accept(request)
        if response.status_code == 101:
            if self.policy.trusted_proxies and is_trusted(self.host, self.policy.trusted_proxies):
                forwarded = forwarded_client(headers.get_all("X-Forwarded-For"), self.policy.trusted_proxies)
                if forwarded is not None:
                    self.host = irc_host(forwarded)
            self.open = True
            self.binary = protocol.subprotocol == BINARY
        else:
            self.ended = "WebSocket handshake refused"
        protocol.send_response(response)

    def _frame(self, opcode: Opcode, data: bytes, fin: bool, lines: list[bytes]) -> None:
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if fin:
                self._message(data, opcode is Opcode.TEXT, lines)
            else:
                self._fragments = bytearray(data)
                self._fragment_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments += data
            if fin:
                message, self._fragments = bytes(self._fragments), None
                self._message(message, self._fragment_text, lines)
        elif opcode is Opcode.CLOSE and self.ended is None:
            self.ended = "Connection closed"

    def _message(self, data: bytes, text: bool, lines: list[bytes]) -> None:
        if text:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8 in a text message")
                self.ended = "Invalid UTF-8 in a text message"
                return
        if data.endswith(b"\n"):  # the spec says no CR/LF; tolerate one line end
            data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
        lines.append(data + b"\n")

    # output ---------------------------------------------------------------------------

    def send(self, data: bytes | bytearray) -> None:
        """Frame the core's CRLF-terminated lines, one message each; dropped unless open."""
        protocol = self.protocol
        if not self.open or protocol.state.name != "OPEN":
            return
        lines = bytes(data).split(b"\n")
        if self.binary:
            for line in lines:
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    protocol.send_binary(line)
        else:
            for line in lines:
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    protocol.send_text(line.decode("utf-8", "replace").encode())
        self._collect()

    def close(self) -> None:
        """Start the closing handshake (after the lines already framed); idempotent."""
        if self.open and self.protocol.state.name == "OPEN":
            self.protocol.send_close(1000)
            self._collect()

    def _collect(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self._out += chunk
            elif self.ended is None:  # end of stream: the protocol is done with this connection
                error = self.protocol.parser_exc
                self.ended = f"WebSocket error: {error}" if error is not None else "Connection closed"

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def take_output(self) -> bytes:
        """Bytes to put on the wire (or into TLS), in order; ``b""`` when there are none."""
        out = bytes(self._out)
        self._out.clear()
        return out
