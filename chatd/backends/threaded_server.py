"""The reference backend: one reader thread per client, the hub under one lock.

Delivery never lets a slow reader hold up anyone else: a write first tries a
non-blocking ``send``; what the kernel does not take goes into the connection's
bounded outbox, drained by a writer thread of its own started on first need.
Writers block only on their own socket and never hold the hub lock.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.backends.base import (
    ACCEPT_BACKOFF_MAX_S,
    ACCEPT_BACKOFF_MIN_S,
    CLOSE_LINGER_S,
    PAUSE_FLUSH_S,
    RESOURCE_ERRNOS,
    SHUTDOWN_GRACE_S,
    BackendSettings,
    listen,
    make_hub,
    tune_accepted,
)
from chatd.backends.tls import TlsSession
from chatd.core import Client
from chatd.protocol.framing import LineReader

if TYPE_CHECKING:
    from chatd.cluster import Cluster

log = logging.getLogger("chatd")

RECV_BYTES = 65536
ACCEPT_POLL_S = 0.5


class ThreadedConnection:
    """One client socket with its reader thread and, when needed, a writer thread."""

    def __init__(
        self, server: ThreadedServer, sock: socket.socket, peer: str, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        # With TLS the outbox holds plaintext; the writer encrypts it under ``cond``, so
        # records leave in the order the session made them (the reader's too).
        self.tls = TlsSession(tls_context) if tls_context is not None else None
        self.client: Client | None = None
        self.reader = LineReader()
        self.outbox = bytearray()
        self.cond = threading.Condition(threading.Lock())
        self.writer: threading.Thread | None = None
        self.closing = False
        self.closed = False

    # Transport contract (called with the hub lock held) ----------------------------

    def write(self, data: bytes) -> bool:
        with self.cond:
            if self.closing:
                return True
            if not self.outbox and self.writer is None and self.tls is None:
                try:
                    sent = self.sock.send(data, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    return True  # the reader will see the failure and report it
                if sent == len(data):
                    return True
                data = data[sent:]
            if len(self.outbox) + len(data) > self.server.sendq_bytes:
                return False
            self.outbox += data
            self._ensure_writer()
            self.cond.notify()
            return True

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        with self.cond:
            if self.closing:
                return
            self.closing = True
            if abort:
                self.outbox.clear()
                if self.tls is not None:
                    self.tls.send(farewell)
                    farewell = self.tls.take_output()
                with contextlib.suppress(OSError):
                    self.sock.send(farewell, socket.MSG_DONTWAIT)
                self._shutdown_socket()
                return
            self.outbox += farewell
            self._ensure_writer()
            self.cond.notify()

    # threads -----------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        if self.writer is None:
            self.writer = threading.Thread(target=self._write_loop, name=f"chatd-writer-{self.peer}", daemon=True)
            self.writer.start()

    def _write_loop(self) -> None:
        """Drain the outbox with blocking sends; on close, drain then shut the socket."""
        linger_deadline: float | None = None
        while True:
            with self.cond:
                tls = self.tls
                while not self.outbox and not self.closing and not (tls is not None and tls.has_output):
                    self.cond.wait()
                if tls is None:
                    chunk = bytes(self.outbox)
                else:
                    if self.outbox:
                        tls.send(self.outbox)
                    chunk = tls.take_output()
                self.outbox.clear()
                closing = self.closing
            if chunk:
                if closing and linger_deadline is None:
                    linger_deadline = time.monotonic() + CLOSE_LINGER_S
                    with contextlib.suppress(OSError):  # already closed under us by drop()
                        self.sock.settimeout(CLOSE_LINGER_S)
                try:
                    self.sock.sendall(chunk)
                except OSError:
                    self._shutdown_socket()
                    return
                continue
            if closing:
                self._shutdown_socket()
                return

    def _shutdown_socket(self) -> None:
        """Wake the reader (it sees EOF) and make further sends fail."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def read_loop(self) -> None:
        """Read, frame, and hand lines to the hub under its lock until the peer goes."""
        server = self.server
        reason = "Connection closed"
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        try:
            while True:
                client = self.client
                assert client is not None
                # The classroom client never sends a newline: a pause ends its line.
                if self.reader.pending and client.accepts_unterminated and not poller.poll(PAUSE_FLUSH_S * 1000):
                    with server.lock:
                        until = server.hub.receive(client, [self.reader.take_partial()])
                    self._wait_out_throttle(until)
                    continue
                try:
                    data = self.sock.recv(RECV_BYTES)
                except OSError as error:
                    reason = error.strerror or "Connection error"
                    break
                if not data:
                    break
                if self.tls is not None:
                    try:
                        data = self._decrypt(data)
                    except ssl.SSLError as error:
                        reason = f"TLS error: {error.reason or error}"
                        break
                    if self.tls.closed_by_peer:
                        break
                lines = self.reader.feed(data)
                if lines:
                    with server.lock:
                        until = server.hub.receive(client, lines)
                    self._wait_out_throttle(until)
        finally:
            with server.lock:
                if self.client is not None:
                    server.hub.disconnect(self.client, reason)
            self.drop()

    def _decrypt(self, data: bytes) -> bytes:
        """TLS bytes in, plaintext out; handshake replies go to the writer, in order."""
        assert self.tls is not None
        with self.cond:
            plaintext = self.tls.receive(data)
            if self.tls.has_output:
                self._ensure_writer()
                self.cond.notify()
        return plaintext

    def _wait_out_throttle(self, until: float | None) -> None:
        """Flood control: this reader stops reading (and sleeps) until the hub lets it go on."""
        server = self.server
        while until is not None and self.client is not None:
            if server.stopping.wait(max(0.0, until - time.monotonic())):
                return
            with server.lock:
                until = server.hub.resume(self.client)

    def drop(self) -> None:
        with self.cond:
            self.closing = True
            self.closed = True
            self.outbox.clear()
            self.cond.notify()
        self._shutdown_socket()
        self.server.forget(self)
        with contextlib.suppress(OSError):
            self.sock.close()
        log.info("closed connection from %s", self.peer)


class ThreadedServer:
    """Thread-per-connection chat server; ``shutdown`` may be called from any thread."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.sendq_bytes = settings.sendq_bytes
        self.hub = make_hub(settings)
        self.lock = threading.Lock()
        self.connections: set[ThreadedConnection] = set()
        self._connections_lock = threading.Lock()
        self._listeners: list[tuple[socket.socket, ssl.SSLContext | None]] = []
        self.stopping = threading.Event()
        self._timer_wake = threading.Event()
        self.address: tuple[str, int] = (settings.host, settings.port)
        self.tls_address: tuple[str, int] | None = None
        self._cluster: Cluster | None = None
        if settings.cluster is not None:
            from chatd.cluster import Cluster

            self._cluster = Cluster(self.hub, settings.cluster, self.post)

    def post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` under the hub lock, now, on the caller's thread (the Redis link's)."""
        with self.lock:
            try:
                callback()
            except Exception:
                log.exception("cluster event failed")
            self.hub.reap_overflowed()

    def bind(self) -> None:
        settings = self.settings
        self._listeners.append((listen(settings.host, settings.port, reuse_port=settings.reuse_port), None))
        self.address = self._listeners[0][0].getsockname()[:2]
        if settings.tls_context is not None and settings.tls_port is not None:
            tls_listener = listen(settings.host, settings.tls_port, reuse_port=settings.reuse_port)
            self._listeners.append((tls_listener, settings.tls_context))
            self.tls_address = tls_listener.getsockname()[:2]

    def shutdown(self) -> None:
        self.stopping.set()
        self._timer_wake.set()
        for listener, _ in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)

    def forget(self, connection: ThreadedConnection) -> None:
        with self._connections_lock:
            self.connections.discard(connection)

    def serve_forever(self) -> None:
        if not self._listeners:
            self.bind()
        helpers = [threading.Thread(target=self._timer_loop, name="chatd-timers", daemon=True)]
        for listener, context in self._listeners[1:]:
            helpers.append(
                threading.Thread(
                    target=self._accept_loop, args=(listener, context), name="chatd-accept-tls", daemon=True
                )
            )
        for thread in helpers:
            thread.start()
        if self._cluster is not None:
            self._cluster.start()
        try:
            self._accept_loop(*self._listeners[0])
        finally:
            self.stopping.set()
            self._timer_wake.set()
            if self._cluster is not None:
                self._cluster.stop()
            self._close_all()
            for thread in helpers:
                thread.join()

    def _accept_loop(self, listener: socket.socket, tls_context: ssl.SSLContext | None) -> None:
        # shutdown() wakes a blocked accept on Linux, but not if it races with the call
        # being entered; a timeout bounds how long a stop can go unnoticed.
        listener.settimeout(ACCEPT_POLL_S)
        backoff_s = 0.0
        while not self.stopping.is_set():
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self.stopping.is_set():
                    break
                if error.errno in RESOURCE_ERRNOS:
                    # Out of descriptors: wait for some to free up rather than spin.
                    backoff_s = min(ACCEPT_BACKOFF_MAX_S, max(ACCEPT_BACKOFF_MIN_S, backoff_s * 2))
                    log.warning("accept failed (%s); not accepting for %.2fs", error.strerror, backoff_s)
                    self.stopping.wait(backoff_s)
                else:
                    log.warning("accept failed: %s", error)
                continue
            backoff_s = 0.0
            try:
                self._start_connection(sock, address, tls_context)
            except (OSError, RuntimeError) as error:
                # e.g. no thread can be started: refuse this one connection, keep serving.
                log.warning("cannot serve %s: %s", address, error)
                sock.close()

    def _start_connection(
        self, sock: socket.socket, address: tuple[str, int], tls_context: ssl.SSLContext | None
    ) -> None:
        tune_accepted(sock)
        peer = f"{address[0]}:{address[1]}"
        log.info("connection from %s%s", peer, "" if tls_context is None else " (TLS)")
        connection = ThreadedConnection(self, sock, peer, tls_context)
        with self._connections_lock:
            self.connections.add(connection)
        with self.lock:
            connection.client = self.hub.connect(connection, address[0])
        threading.Thread(target=connection.read_loop, name=f"chatd-reader-{peer}", daemon=True).start()

    def _timer_loop(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                deadline = self.hub.run_timers()
            wait = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            self._timer_wake.wait(min(wait, 1.0))

    def _close_all(self) -> None:
        with self.lock:
            self.hub.shutdown()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while time.monotonic() < deadline:
            with self._connections_lock:
                if not self.connections:
                    break
            time.sleep(0.02)
        with self._connections_lock:
            leftovers = list(self.connections)
        for connection in leftovers:
            connection.drop()
        for listener, _ in self._listeners:
            listener.close()
