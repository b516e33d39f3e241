"""TLS as a codec over memory buffers, so no backend ever blocks in a handshake.

``TlsSession`` turns ciphertext from the socket into plaintext and plaintext from
the core into ciphertext, with ``ssl.SSLObject`` over two ``MemoryBIO``s. It owns
no socket: the selectors loop feeds it whatever ``recv`` returned, and a peer that
stalls mid-handshake costs nothing but its buffers. Everything the session wants
sent — handshake messages, session tickets, records — leaves through
``take_output`` in the order it was produced, which is the order TLS requires.
Not thread-safe; the threads backend holds the connection's lock around it.

Client certificates (SASL EXTERNAL): the server asks every client for one and takes any,
self-signed included, unverified — the certificate is only an identity, its SHA-256
(``TlsSession.peer_certfp``) matched against the fingerprints accounts registered, as ergo
does with Go's ``tls.RequestClientCert``. Python's ``ssl`` offers no such mode:
``CERT_OPTIONAL`` asks for a certificate but aborts the handshake on one it cannot
verify. So ``accept_any_client_certificate`` gives the context's ``SSL_CTX`` a
certificate-verify callback that accepts (OpenSSL's ``SSL_CTX_set_cert_verify_callback``,
through ctypes, on the libssl the ``_ssl`` module uses). It checks that it found the
right ``SSL_CTX`` before touching it; where it cannot, clients are simply not asked for a
certificate (a warning is logged) and EXTERNAL answers that none was presented.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import ssl
from pathlib import Path

log = logging.getLogger("chatd")

READ_CHUNK_BYTES = 65536

_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_ACCEPT = _VERIFY_CALLBACK(lambda store_context, argument: 1)
"""Kept for the life of the process: every context we set up points at it."""


def accept_any_client_certificate(context: ssl.SSLContext) -> bool:
    """Make a server ``context`` ask clients for a certificate and accept any (unverified).

    Returns False, leaving the context as it was, where this Python's ``ssl`` cannot be
    set up so (the ``SSL_CTX`` not found where CPython keeps it, or libssl without the call).
    """
    try:
        import _ssl

        libssl = ctypes.CDLL(_ssl.__file__)  # its symbols resolve to the libssl it was linked with
        get_options = libssl.SSL_CTX_get_options
        get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
        set_callback = libssl.SSL_CTX_set_cert_verify_callback
        set_callback.restype, set_callback.argtypes = None, [ctypes.c_void_p, _VERIFY_CALLBACK, ctypes.c_void_p]
    except (ImportError, OSError, AttributeError) as error:
        log.warning("TLS client certificates are not requested: %s", error)
        return False
    # CPython's SSLContext object is a PyObject header followed by its SSL_CTX pointer.
    ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not ctx or get_options(ctx) != int(context.options):
        log.warning("TLS client certificates are not requested: this Python's SSLContext is not understood")
        return False
    set_callback(ctx, _ACCEPT, None)
    context.verify_mode = ssl.CERT_OPTIONAL
    return True


def server_context(cert_file: str, key_file: str | None) -> ssl.SSLContext:
    """A server context from PEM files; raises OSError or ssl.SSLError for the CLI to report."""
    for path in (cert_file, key_file):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    accept_any_client_certificate(context)
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

    def peer_certfp(self) -> str | None:
        """SHA-256 of the client's certificate, lower-case hex; None before the handshake or without one."""
        if not self.handshaken:
            return None
        der = self._object.getpeercert(binary_form=True)
        return hashlib.sha256(der).hexdigest() if der else None

    @property
    def has_output(self) -> bool:
        return self._outgoing.pending > 0

    def take_output(self) -> bytes:
        """Ciphertext to put on the wire, in order; ``b""`` when there is none."""
        return self._outgoing.read()
