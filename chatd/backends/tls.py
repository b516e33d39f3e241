"""TLS as a codec over memory buffers, so no backend ever blocks in a handshake.

``TlsSession`` turns ciphertext from the socket into plaintext and plaintext from
the core into ciphertext, with ``ssl.SSLObject`` over two ``MemoryBIO``s. It owns
no socket: the selectors loop feeds it whatever ``recv`` returned, and a peer that
stalls mid-handshake costs nothing but its buffers. Everything the session wants
sent — handshake messages, session tickets, records — leaves through
``take_output`` in the order it was produced, which is the order TLS requires.
Not thread-safe; the threads backend holds the connection's lock around it.
"""

from __future__ import annotations

import ssl
from pathlib import Path

READ_CHUNK_BYTES = 65536


def server_context(cert_file: str, key_file: str | None) -> ssl.SSLContext:
    """A server context from PEM files; raises OSError or ssl.SSLError for the CLI to report."""
    for path in (cert_file, key_file):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


class TlsSession:
    """One server-side TLS connection's state, driven by bytes in and bytes out."""

    __slots__ = ("_incoming", "_object", "_outgoing", "_unsent_plaintext", "closed_by_peer", "handshaken")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._unsent_plaintext = bytearray()
        self.handshaken = False
        self.closed_by_peer = False

    def receive(self, ciphertext: bytes) -> bytes:
        """Take bytes from the peer; return the plaintext they complete (often ``b""``).

        Raises ``ssl.SSLError`` when the peer speaks something that is not TLS, or
        fails the handshake; the caller drops the connection.
        """
        self._incoming.write(ciphertext)
        if not self.handshaken:
            try:
                self._object.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.handshaken = True
            if self._unsent_plaintext:
                self._object.write(bytes(self._unsent_plaintext))
                self._unsent_plaintext.clear()
        chunks = []
        while True:
            try:
                chunk = self._object.read(READ_CHUNK_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed_by_peer = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes | bytearray) -> None:
        """Encrypt plaintext for the peer; before the handshake ends it waits in a buffer."""
        if self.handshaken:
            self._object.write(plaintext)
        else:
            self._unsent_plaintext += plaintext

    @property
    def has_output(self) -> bool:
        return self._outgoing.pending > 0

    def take_output(self) -> bytes:
        """Ciphertext to put on the wire, in order; ``b""`` when there is none."""
        return self._outgoing.read()
