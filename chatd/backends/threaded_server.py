"""The reference backend: one reader thread per client, the hub under one lock.

Delivery never lets a slow reader hold up anyone else: a write first tries a
non-blocking ``send``; what the kernel does not take goes into the connection's
bounded outbox, drained by a writer thread of its own started on first need.
Writers block only on their own socket and never hold the hub lock.
"""

from __future__ import annotations

import contextlib
import logging
import math
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.backends.base import BackendSettings, Deferred, make_hub
from chatd.backends.connection import (
    CLOSE_LINGER_S,
    RECV_BYTES,
    SHUTDOWN_GRACE_S,
    AcceptBackoff,
    Connection,
    ConnectionEnded,
    Listener,
    addresses,
    answered,
    bind_listeners,
    metrics_policy,
    tune_accepted,
    web_policy,
)
from chatd.backends.offload import WorkerPool
from chatd.backends.websocket import HANDSHAKE_TIMEOUT_S, is_trusted
from chatd.core.stats import SERVING, STARTING, STOPPING

if TYPE_CHECKING:
    from chatd.cluster import Cluster

log = logging.getLogger("chatd")

ACCEPT_POLL_S = 0.5


class ThreadedConnection(Connection):
    """One client socket with its reader thread and, when needed, a writer thread.

    ``cond`` guards the buffers and the TLS session: the hub writes under its own lock
    from any reader thread, the writer takes the outbox, and the reader decrypts.
    """

    __slots__ = ("cond", "linger_s", "server", "wake", "writer")

    def __init__(self, server: ThreadedServer, sock: socket.socket, peer: str, host: str, listener: Listener) -> None:
        super().__init__(
            sock,
            peer,
            server.sendq_bytes,
            listener.tls_context,
            host=host,
            websocket=listener.websocket,
            proxy_protocol=listener.proxy_protocol,
        )
        self.server = server
        self.cond = threading.Condition(threading.Lock())
        self.writer: threading.Thread | None = None
        self.linger_s = CLOSE_LINGER_S
        self.wake = threading.Event()
        """Set to end the reader's wait while its input is stopped: the network answered, or
        the connection is closing (as every one does when the server stops). Cleared under the hub lock before each
        call to the session, so no wake-up meant for the state it returns is lost."""

    # Transport contract (called with the hub lock held) ----------------------------

    def write(self, data: bytes) -> bool:
        """Try the socket first: with nothing queued and no writer yet, most lines leave now."""
        with self.cond:
            if not self.closing and not self.outbox and self.writer is None and self.wire is self.outbox:
                try:
                    sent = self.sock.send(data, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    return True  # the reader will see the failure and report it
                if sent == len(data):
                    return True
                data = data[sent:]
            return Connection.write(self, data)

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        with self.cond:
            Connection.close(self, farewell, abort=abort)
        self.wake.set()

    # how this backend is told of output and closes (all with ``cond`` held) ------------

    def output_ready(self) -> None:
        if self.writer is None:
            self.writer = threading.Thread(target=self._write_loop, name=f"chatd-writer-{self.peer}", daemon=True)
            self.writer.start()
        self.cond.notify()

    def linger(self, seconds: float) -> None:
        self.linger_s = seconds  # the writer bounds its last sends with it

    def cut(self) -> None:
        self.send_once()
        self._shutdown_socket()

    # threads -----------------------------------------------------------------------

    def _write_loop(self) -> None:
        """Drain the outbox with blocking sends; on close, drain then shut the socket."""
        lingering = False
        while True:
            with self.cond:
                while not self.outbox and not self.closing and not self.codec_has_output:
                    self.cond.wait()
                self.encode_output()
                chunk = bytes(self.wire)
                self.wire.clear()
                self.pending = False
                closing = self.closing
            if chunk:
                if closing and not lingering:
                    lingering = True
                    with contextlib.suppress(OSError):  # already closed under us by drop()
                        self.sock.settimeout(self.linger_s)
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
        """Read, and hand the bytes to the session under the hub lock, until the peer goes.

        Between reads the reader waits for the socket or the session's deadline, whichever
        comes first. While the session stops its input (flood control, a nick claim out to
        the network) it does not read at all: it sleeps on ``wake`` until the deadline.
        """
        server = self.server
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        first = b""
        if self.session is None:
            admitted = self._admit(poller)
            if admitted is None:
                self.drop()
                return
            first = admitted
        session = self.session
        assert session is not None
        reason = "Connection closed"
        deadline: float | None = None
        if first:
            with server.lock:
                deadline = session.data_received(first, time.monotonic())
                server.after_input(self)
        ended = False
        try:
            while True:
                if deadline is not None:
                    wait_s = max(0.0, deadline - time.monotonic())
                    # Stopped (flood control, a held nick claim): sleep until due or woken.
                    if not session.reading:
                        self.wake.wait(wait_s)
                    elif poller.poll(wait_s * 1000):
                        deadline = None  # readable before the deadline: read, then look again
                    if deadline is not None:
                        with server.lock:
                            self.wake.clear()
                            deadline = session.timer(time.monotonic())
                            server.after_input(self)
                        continue
                try:
                    data = self.sock.recv(RECV_BYTES)
                except OSError as error:
                    reason = error.strerror or "Connection error"
                    break
                if not data:
                    break
                if self.wire is not self.outbox:
                    try:
                        with self.cond:
                            data = self.take_input(data)
                    except ConnectionEnded as error:
                        reason = str(error)
                        break
                    if self.peer_closed_tls:
                        break
                    ws = self.ws
                    if ws is not None and ws.ended is not None and not ended:
                        # Its last frames (a close's echo) must go out: read on until the writer is done.
                        ended = True
                        with server.lock:
                            if data:
                                session.data_received(data, time.monotonic())
                            if self.client is not None:
                                server.hub.disconnect(self.client, ws.ended)
                        self.close()
                        continue
                    if not data or ended:
                        continue
                with server.lock:
                    self.wake.clear()
                    deadline = session.data_received(data, time.monotonic())
                    server.after_input(self)
        finally:
            with server.lock:
                if self.client is not None:
                    server.hub.disconnect(self.client, reason)
            self.drop()

    def _admit(self, poller: select.poll) -> bytes | None:
        """Read until the PROXY header and the WebSocket handshake are done, then attach.

        Returns the input that came after them, for the session; None when the connection
        is to go without the core ever hearing of it (an HTTP request answered, a stalled
        or bad handshake). Bounded by ``HANDSHAKE_TIMEOUT_S``: a stalled peer costs only
        its own thread.
        """
        server = self.server
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        data = b""
        while not self.ready:
            wait_s = deadline - time.monotonic()
            if wait_s <= 0 or self.closing:
                log.info("connection from %s dropped: no complete handshake", self.peer)
                return None
            if not poller.poll(wait_s * 1000):
                continue
            try:
                raw = self.sock.recv(RECV_BYTES)
            except OSError:
                return None
            if not raw:
                return None
            try:
                with self.cond:
                    data = self.take_input(raw)
            except ConnectionEnded as error:
                log.info("connection from %s: %s", self.peer, error)
                return None
            if self.ws is not None and self.ws.ended is not None:
                self._drain_then_close(poller)
                return None
        with server.lock:
            log.info("%s from %s is %s", "WebSocket" if self.ws is not None else "connection", self.peer, self.host)
            self.attach(server.hub)
            server.after_input(self)
        return data

    def _drain_then_close(self, poller: select.poll) -> None:
        """Let the writer send what is queued (an HTTP answer), discarding input until it is done."""
        self.close()
        deadline = time.monotonic() + CLOSE_LINGER_S
        while (wait_s := deadline - time.monotonic()) > 0:
            if poller.poll(wait_s * 1000):
                try:
                    if not self.sock.recv(RECV_BYTES):
                        return
                except OSError:
                    return

    def drop(self) -> None:
        with self.cond:
            self.closing = True
            self.closed = True
            self.outbox.clear()
            self.wire.clear()
            self.cond.notify()
        self.wake.set()
        self._shutdown_socket()
        self.server.forget(self)
        with contextlib.suppress(OSError):
            self.sock.close()
        log.info("closed connection from %s", self.peer)


class ThreadedServer:
    """Thread-per-connection chat server; ``shutdown`` may be called from any thread.

    The hub's timers are run by one thread that sleeps until the hub's next deadline;
    whoever may have made an earlier one (a new connection, a command, a cluster event)
    calls ``timers_may_have_changed`` under the hub lock, which wakes it only then.
    """

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.sendq_bytes = settings.sendq_bytes
        self.hub = make_hub(settings)
        self._workers = WorkerPool(self.post)
        self.hub.offload = self._workers
        self.lock = threading.Lock()
        self.connections: set[ThreadedConnection] = set()
        self._connections_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.stopping = threading.Event()
        self._timer_wake = threading.Event()
        self._timer_due = math.inf
        """When the timer thread means to wake (under ``lock``); inf: not until woken."""
        self.held: set[ThreadedConnection] = set()
        """Connections whose input waits on the network (under ``lock``): looked at after its events."""
        self.web = web_policy(settings)
        self.http_routes = self.web.routes
        """What answers HTTP on the WebSocket ports; the metrics module plugs its provider in here."""
        self.metrics_web = metrics_policy(settings)
        self.metrics_routes = self.metrics_web.routes if self.metrics_web is not None else None
        """What answers on the metrics listener (``metrics_port``); None without one."""
        self.address: tuple[str, int] = (settings.host, settings.port)
        self.tls_address: tuple[str, int] | None = None
        self.addresses: dict[str, tuple[str, int]] = {}
        self._cluster: Cluster | None = None
        self._deferred = Deferred()
        """What one read publishes (under ``lock``), run once the input is handled."""
        if settings.cluster is not None:
            from chatd.cluster import Cluster

            self._cluster = Cluster(self.hub, settings.cluster, self.post, defer=self._deferred.defer)

    def post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` under the hub lock, now, on the caller's thread (the Redis link's)."""
        with self.lock:
            try:
                callback()
            except Exception:
                log.exception("cluster event failed")
            self._deferred.run()
            self.hub.reap_overflowed()
            if self.held:
                self._release_held()
            self.timers_may_have_changed()

    def _release_held(self) -> None:
        """Let the input of clients the network just answered go on now (under ``lock``).

        The held lines run here, on the caller's thread; the reader is woken to read again.
        """
        now = time.monotonic()
        for connection, session in answered(self.held):
            if session is not None:
                session.network_answered(now)
                self.after_input(connection)
            connection.wake.set()

    def after_input(self, connection: ThreadedConnection) -> None:
        """What follows a call to a session (under ``lock``): note a held one, send what it published,
        wake the timers."""
        self._deferred.run()
        session = connection.session
        if session is not None and session.held:
            self.held.add(connection)
        self.timers_may_have_changed()

    def timers_may_have_changed(self) -> None:
        """Wake the timer thread if the hub now has a deadline before the one it sleeps to.

        Called with ``lock`` held, the same lock the timer thread sets ``_timer_due`` under,
        so no earlier deadline can slip in unseen between its check and its sleep.
        """
        deadline = self.hub.next_deadline()
        if deadline is not None and deadline < self._timer_due:
            self._timer_due = deadline
            self._timer_wake.set()

    def bind(self) -> None:
        self._listeners = bind_listeners(self.settings, self.web, self.metrics_web)
        self.addresses = addresses(self._listeners)
        self.address = self.addresses["tcp"]
        self.tls_address = self.addresses.get("tls")

    def shutdown(self) -> None:
        self.hub.stats.state = STOPPING
        self.http_routes.shutting_down = True
        if self.metrics_routes is not None:
            self.metrics_routes.shutting_down = True
        self.stopping.set()
        self._timer_wake.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.sock.shutdown(socket.SHUT_RDWR)

    def forget(self, connection: ThreadedConnection) -> None:
        with self._connections_lock:
            self.connections.discard(connection)
        with self.lock:
            self.held.discard(connection)

    def serve_forever(self) -> None:
        if not self._listeners:
            self.bind()
        helpers = [threading.Thread(target=self._timer_loop, name="chatd-timers", daemon=True)]
        for listener in self._listeners[1:]:
            helpers.append(
                threading.Thread(
                    target=self._accept_loop, args=(listener,), name=f"chatd-accept-{listener.kind}", daemon=True
                )
            )
        if self.hub.stats.state == STARTING:  # before any listener's thread answers /healthz
            self.hub.stats.state = SERVING
        for thread in helpers:
            thread.start()
        if self._cluster is not None:
            self._cluster.start()
        try:
            self._accept_loop(self._listeners[0])
        finally:
            self.stopping.set()
            self._timer_wake.set()
            if self._cluster is not None:
                self._cluster.stop()
            self._close_all()
            for thread in helpers:
                thread.join()

    def _accept_loop(self, listener: Listener) -> None:
        # shutdown() wakes a blocked accept on Linux, but not if it races with the call
        # being entered; a timeout bounds how long a stop can go unnoticed.
        listener.sock.settimeout(ACCEPT_POLL_S)
        backoff = AcceptBackoff()
        while not self.stopping.is_set():
            try:
                sock, address = listener.sock.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self.stopping.is_set():
                    break
                pause_s = backoff.failed(error)
                if pause_s is not None:
                    self.stopping.wait(pause_s)  # wait for descriptors to free up rather than spin
                continue
            backoff.accepted()
            if listener.proxy_protocol and not is_trusted(address[0], self.settings.trusted_proxies):
                log.info("connection from %s:%s refused: not a trusted proxy (--proxy-protocol)", *address[:2])
                sock.close()
                continue
            try:
                self._start_connection(sock, address, listener)
            except (OSError, RuntimeError) as error:
                # e.g. no thread can be started: refuse this one connection, keep serving.
                log.warning("cannot serve %s: %s", address, error)
                sock.close()

    def _start_connection(self, sock: socket.socket, address: tuple[str, int], listener: Listener) -> None:
        tune_accepted(sock)
        peer = f"{address[0]}:{address[1]}"
        log.info("connection from %s (%s)", peer, listener.kind)
        connection = ThreadedConnection(self, sock, peer, address[0], listener)
        with self._connections_lock:
            self.connections.add(connection)
        if connection.ready:
            with self.lock:
                connection.attach(self.hub)
                self.after_input(connection)
        threading.Thread(target=connection.read_loop, name=f"chatd-reader-{peer}", daemon=True).start()

    def _timer_loop(self) -> None:
        """Run the hub's timers when due, sleeping until the next deadline or a wake-up.

        Loop lag here is how late the hub's timers run once due: the sleep's overshoot
        plus the wait for the hub lock, which is what a busy reader thread delays.
        """
        loop_lag = self.hub.stats.loop_lag
        deadline: float | None = None
        while True:
            self._timer_wake.clear()
            if self.stopping.is_set():  # checked after the clear: a stop's wake-up is never lost
                return
            with self.lock:
                if deadline is not None and (late_s := time.monotonic() - deadline) >= 0:
                    loop_lag.observe(late_s)
                deadline = self.hub.run_timers()
                self._deferred.run()
                self._timer_due = math.inf if deadline is None else deadline
            self._timer_wake.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _close_all(self) -> None:
        self._workers.close()
        with self.lock:
            self.hub.shutdown()
        with self._connections_lock:
            unattached = [connection for connection in self.connections if connection.session is None]
        for connection in unattached:  # nobody to say goodbye to
            connection.close(abort=True)
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
        for listener in self._listeners:
            listener.sock.close()
