"""The load generator's WebSocket client: websockets' sans-I/O ``ClientProtocol`` per peer.

A ``WsLink`` turns the generator's CRLF-terminated IRC lines into one binary WebSocket
message each (subprotocol ``binary.ircv3.net``, as the IRCv3 WebSocket extension has a
client send them: CR/LF stripped) and the server's messages back into ``\\n``-terminated
lines, so the worker's accounting reads WebSocket and TCP peers with the same code. No
framing is written here: websockets parses and builds every frame, masking included.

Invariants:
- Nothing but the handshake is sent before the server's 101: ``open`` says when the
  worker may send its registration; ``failed`` says why the link can never open or has
  ended (a refused handshake, the wrong subprotocol, a close), and is never unset.
- The client offers no extension (no permessage-deflate), as chatd accepts none: the
  bytes on the wire are the same frames a browser without compression would send.
"""

from __future__ import annotations

import logging

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

BINARY = Subprotocol("binary.ircv3.net")
MAX_MESSAGE_BYTES = 16384
"""chatd sends one IRC line per message, 512 bytes (8 KiB with tags) at most."""

_quiet = logging.getLogger("bench.websocket")
_quiet.setLevel(logging.WARNING)  # websockets logs every open and close at INFO


class WsLink:
    """One generator peer's WebSocket: bytes from the socket in, IRC lines out, and back."""

    __slots__ = ("failed", "open", "protocol")

    def __init__(self, host: str, port: int) -> None:
        self.protocol = ClientProtocol(
            parse_uri(f"ws://{host}:{port}/"), subprotocols=[BINARY], max_size=MAX_MESSAGE_BYTES, logger=_quiet
        )
        self.open = False
        self.failed: str | None = None

    def handshake(self) -> bytes:
        """The HTTP upgrade request, the first bytes on the connection."""
        protocol = self.protocol
        protocol.send_request(protocol.connect())
        return self._output()

    def frames(self, data: bytes | bytearray) -> bytes:
        """The wire bytes for CRLF-terminated IRC lines: one masked binary message per line."""
        protocol = self.protocol
        for line in bytes(data).split(b"\r\n"):
            if line:
                protocol.send_binary(line)
        return self._output()

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Feed bytes from the socket; return the IRC lines they complete (each ending in
        ``\\n``) and what must go back (a pong, a close)."""
        protocol = self.protocol
        protocol.receive_data(data)
        lines: list[bytes] = []
        for event in protocol.events_received():
            if isinstance(event, Response):
                self._opened(event)
            elif event.opcode is Opcode.BINARY or event.opcode is Opcode.TEXT:
                lines.append(event.data + b"\n")
            elif event.opcode is Opcode.CLOSE and self.failed is None:
                self.failed = "the server closed the WebSocket"
        return b"".join(lines), self._output()

    def receive_eof(self) -> None:
        self.protocol.receive_eof()
        if self.failed is None:
            self.failed = "the server closed the connection"

    def _opened(self, response: Response) -> None:
        if response.status_code != 101 or self.protocol.handshake_exc is not None:
            self.failed = f"WebSocket handshake refused: {response.status_code} {response.reason_phrase}"
        elif self.protocol.subprotocol != BINARY:
            self.failed = f"server chose subprotocol {self.protocol.subprotocol!r}, not {BINARY}"
        else:
            self.open = True

    def _output(self) -> bytes:
        chunks = self.protocol.data_to_send()
        if chunks and not chunks[-1] and self.failed is None:  # b"": the protocol ended the stream
            self.failed = f"WebSocket error: {self.protocol.parser_exc or 'connection closed'}"
        return b"".join(chunks)
