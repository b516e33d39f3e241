"""The default backend: one thread, non-blocking sockets, one selector.

Per loop turn: wait for readiness (the timeout is the nearest timer deadline),
read and hand complete lines to the hub, run due timers, then flush every
connection that got output this turn with one ``send`` each. ``EVENT_WRITE`` is
asked for only while a connection has bytes the kernel would not take.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from chatd.backends.base import BackendSettings, Deferred, make_hub
from chatd.backends.connection import (
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
from chatd.core import Transport
from chatd.core.stats import SERVING, STARTING, STOPPING

if TYPE_CHECKING:
    from chatd.cluster import Cluster

log = logging.getLogger("chatd")

ACCEPTS_PER_TURN = 64


class SelectorConnection(Connection):
    """A connection on the loop: output is flushed once per turn, input read when readable."""

    __slots__ = ("fd", "interest", "loop", "paused", "pending_list", "timer_due", "wants_write")

    def __init__(self, loop: SelectorsServer, sock: socket.socket, peer: str, host: str, listener: Listener) -> None:
        super().__init__(
            sock,
            peer,
            loop.sendq_bytes,
            listener.tls_context,
            host=host,
            websocket=listener.websocket,
            proxy_protocol=listener.proxy_protocol,
        )
        self.loop = loop
        self.pending_list = loop.pending
        self.fd = sock.fileno()
        self.wants_write = False
        self.paused = False
        self.interest = selectors.EVENT_READ
        self.timer_due: float | None = None
        """The earliest input timer this connection has in the loop's heap (None: none)."""

    # how this backend is told of output and closes ------------------------------------

    def output_ready(self) -> None:
        self.pending_list.append(self)

    def linger(self, seconds: float) -> None:
        self.loop.call_later(seconds, self.drop)

    def cut(self) -> None:
        self.send_once()
        self.drop()

    # input -----------------------------------------------------------------------------

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self.lost(error.strerror or "Connection error")
            return
        if not data:
            self.lost("Connection closed")
            return
        if self.wire is self.outbox and self.session is not None:
            self.received(data)  # plain TCP, attached: the common case
            return
        try:
            data = self.take_input(data)
        except ConnectionEnded as error:
            self.lost(str(error))
            return
        if self.session is None and self.ready and not self.closing:
            log.info("%s from %s is %s", "WebSocket" if self.ws is not None else "connection", self.peer, self.host)
            self.attach(self.loop.hub)
            self.follow(None)
        if data and self.session is not None and not self.closed:
            self.received(data)
        if self.peer_closed_tls and not self.closed:
            self.lost("Connection closed")
        elif self.ws is not None and self.ws.ended is not None and not self.closing:
            self.end(self.ws.ended)

    def end(self, reason: str) -> None:
        """The WebSocket is over: tell the hub, then close once its last frames are out."""
        if self.client is not None:
            self.loop.hub.disconnect(self.client, reason)
        self.close()

    def handshake_expired(self) -> None:
        """A connection still not attached ``HANDSHAKE_TIMEOUT_S`` after accept is dropped."""
        if self.session is None and not self.closing:
            log.info("connection from %s dropped: no complete handshake in %gs", self.peer, HANDSHAKE_TIMEOUT_S)
            self.drop()

    def received(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        deadline = session.data_received(data, time.monotonic())
        if deadline is not None or self.paused:  # else: reading, not held, no timer wanted
            self.follow(deadline)

    def on_timer(self) -> None:
        self.timer_due = None
        session = self.session
        if session is not None and not self.closed:
            self.follow(session.timer(time.monotonic()))

    def follow(self, deadline: float | None) -> None:
        """Do what the session asks: read or not (flood control), and come back at ``deadline``."""
        session = self.session
        if self.closed or session is None:
            return
        paused = not session.reading
        if paused != self.paused:
            self.paused = paused
            self.update_interest()
        if session.held:
            self.loop.held.add(self)
        if deadline is not None and (self.timer_due is None or deadline < self.timer_due):
            # An earlier entry left in the heap only makes one call that finds nothing due.
            self.timer_due = deadline
            self.loop.call_at(deadline, self.on_timer)

    def update_interest(self) -> None:
        """Ask the selector for exactly the events this connection can use now.

        Reading stops while flood control throttles us; writing is asked for only
        while bytes wait. With neither, the socket leaves the selector entirely.
        """
        wanted = (0 if self.paused else selectors.EVENT_READ) | (selectors.EVENT_WRITE if self.wants_write else 0)
        if wanted == self.interest:
            return
        selector = self.loop.selector
        if not self.interest:
            selector.register(self.sock, wanted, self)
        elif not wanted:
            selector.unregister(self.sock)
        else:
            selector.modify(self.sock, wanted, self)
        self.interest = wanted

    # output ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Send as much of the queued bytes as the kernel takes now; never blocks.

        A queue past the send queue bound is not sent but reported to the hub, which
        cuts the client right after this flush pass (the fan-out appends unchecked).
        """
        # Once per connection per loop turn, often for a single line: no calls it can do without.
        self.pending = False
        if self.closed:
            return
        if len(self.outbox) > self.sendq_bytes and self.overflowed():
            assert self.client is not None
            self.loop.hub.overflowed(self.client)
            return
        wire = self.wire
        if wire is not self.outbox:
            self.encode_output()
        if wire:
            try:
                sent = self.sock.send(wire)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as error:
                self.lost(error.strerror or "Write error")
                return
            del wire[:sent]
        if wire:
            if not self.wants_write:
                self.wants_write = True
                self.update_interest()
        else:
            if self.wants_write:
                self.wants_write = False
                self.update_interest()
            if self.closing:
                self.drop()

    def lost(self, reason: str) -> None:
        """The peer went away or the socket failed: tell the hub, then drop the socket."""
        if self.client is not None:
            self.loop.hub.disconnect(self.client, reason)
        self.drop()

    def drop(self) -> None:
        """Close the socket now. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.closing = True
        self.outbox.clear()
        self.wire.clear()
        # A pending linger timer may keep this object a while; not the client.
        self.client = None
        self.session = None
        self.loop.forget(self)
        with contextlib.suppress(OSError):
            self.sock.close()
        log.info("closed connection from %s", self.peer)


class ConnectionGroup:
    """Connections of this loop that take the same bytes (the hub's ``FanoutGroup``).

    A message is one append to each buffer in ``outboxes``, with no per-connection
    test; the sender's copy, if it is one of them, is cut off its buffer's end
    afterwards. The group, not each connection, is marked for the turn's flush.
    """

    __slots__ = ("outbox_of", "outboxes", "pending", "pending_groups", "transports")

    def __init__(self, pending_groups: list[ConnectionGroup], offered: Iterable[Transport]) -> None:
        self.transports: list[SelectorConnection] = [t for t in offered if isinstance(t, SelectorConnection)]
        self.outboxes = [connection.outbox for connection in self.transports]
        self.outbox_of: dict[object, bytearray] = {connection: connection.outbox for connection in self.transports}
        self.pending_groups = pending_groups
        self.pending = False

    def send(self, data: bytes, skip: Transport | None) -> None:
        for outbox in self.outboxes:
            outbox += data
        if skip is not None:
            own = self.outbox_of.get(skip)
            if own is not None:
                del own[len(own) - len(data) :]
        if not self.pending:
            self.pending = True
            self.pending_groups.append(self)


class SelectorsServer:
    """A chat server on one selector loop; ``shutdown`` may be called from any thread."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.sendq_bytes = settings.sendq_bytes
        self.hub = make_hub(settings)
        self.hub.fanout_groups = self.group
        self._workers = WorkerPool(self.post)
        self.hub.offload = self._workers
        self.selector = selectors.DefaultSelector()
        self.pending: list[SelectorConnection] = []
        self.pending_groups: list[ConnectionGroup] = []
        self.connections: dict[int, SelectorConnection] = {}
        self.held: set[SelectorConnection] = set()
        """Connections whose input waits on the network: looked at after each batch of its events."""
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._listeners: list[Listener] = []
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self._stopping = False
        self._posted: deque[Callable[[], None]] = deque()
        self._posted_lock = threading.Lock()
        self._posted_wake_sent = False
        self._deferred = Deferred()
        """What this turn publishes, run before its output is flushed (no wake-up of its own)."""
        self._cluster: Cluster | None = None
        if settings.cluster is not None:
            from chatd.cluster import Cluster

            self._cluster = Cluster(self.hub, settings.cluster, self.post, defer=self._deferred.defer, reactor=self)
        self._accept_backoff = AcceptBackoff()
        self.web = web_policy(settings)
        self.http_routes = self.web.routes
        """What answers HTTP on the WebSocket ports; the metrics module plugs its provider in here."""
        self.metrics_web = metrics_policy(settings)
        self.metrics_routes = self.metrics_web.routes if self.metrics_web is not None else None
        """What answers on the metrics listener (``metrics_port``); None without one."""
        self.address: tuple[str, int] = (settings.host, settings.port)
        self.tls_address: tuple[str, int] | None = None
        self.addresses: dict[str, tuple[str, int]] = {}

    def bind(self) -> None:
        self._listeners = bind_listeners(self.settings, self.web, self.metrics_web)
        self.addresses = addresses(self._listeners)
        self.address = self.addresses["tcp"]
        self.tls_address = self.addresses.get("tls")
        for listener in self._listeners:
            listener.sock.setblocking(False)
            self.selector.register(listener.sock, selectors.EVENT_READ, listener)
        self.selector.register(self._waker_r, selectors.EVENT_READ, None)

    def shutdown(self) -> None:
        self.hub.stats.state = STOPPING
        self.http_routes.shutting_down = True
        if self.metrics_routes is not None:
            self.metrics_routes.shutting_down = True
        self._stopping = True
        with contextlib.suppress(OSError):
            self._waker_w.send(b"x")

    def post(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop's thread soon; may be called from any thread (the Redis link).

        One wake-up byte per batch, not per callback: the loop takes every queued callback
        at once, and only a post after it did so needs to wake it again.
        """
        with self._posted_lock:
            self._posted.append(callback)
            if self._posted_wake_sent:
                return
            self._posted_wake_sent = True
        with contextlib.suppress(OSError):  # a full waker is already readable
            self._waker_w.send(b"p")

    def _run_posted(self) -> None:
        with self._posted_lock:
            self._posted_wake_sent = False
            batch, self._posted = self._posted, deque()
        for callback in batch:
            try:
                callback()
            except Exception:
                log.exception("cluster event failed")
        if self.held:
            self._release_held()

    def _release_held(self) -> None:
        """Let the input of clients the network just answered go on, now rather than at a poll."""
        now = time.monotonic()
        for connection, session in answered(self.held):
            if session is not None:
                connection.follow(session.network_answered(now))

    def group(self, offered: Sequence[Transport]) -> ConnectionGroup:
        """The hub's ``GroupFactory``: of ``offered``, the connections of this loop.

        The send queue bound is checked when a buffer is flushed, so a group's appends
        overshoot it by at most one loop turn's deliveries.
        """
        return ConnectionGroup(self.pending_groups, offered)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.call_at(time.monotonic() + delay_s, callback)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop once the monotonic clock passes ``deadline``."""
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, callback))

    def forget(self, connection: SelectorConnection) -> None:
        self.connections.pop(connection.fd, None)
        self.held.discard(connection)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection.sock)

    def serve_forever(self) -> None:
        if not self._listeners:
            self.bind()
        hub = self.hub
        read_event, write_event = selectors.EVENT_READ, selectors.EVENT_WRITE
        if self._cluster is not None:
            self._cluster.start()
        if hub.stats.state == STARTING:
            hub.stats.state = SERVING
        loop_lag = hub.stats.loop_lag
        try:
            while not self._stopping:
                timeout = self._timeout(hub.next_deadline())
                for key, mask in self.selector.select(timeout):
                    data = key.data
                    if data.__class__ is Listener:
                        self._accept(data)
                    elif data is None:
                        self._drain_waker()
                        self._run_posted()
                    else:
                        if mask & read_event and not data.closed:
                            data.on_readable()
                        if mask & write_event and not data.closed:
                            data.flush()
                if self.held:  # the Redis link answers on the loop itself, not through post
                    self._release_held()
                self._run_timers()
                hub_deadline = hub.next_deadline()
                if hub_deadline is not None and (late_s := time.monotonic() - hub_deadline) >= 0:
                    loop_lag.observe(late_s)
                    hub.run_timers()
                if self._deferred:
                    self._deferred.run()
                self._flush_pending()
        finally:
            self._close_all()

    def _timeout(self, hub_deadline: float | None) -> float | None:
        if self._deferred:  # deferred by the last flush (a client gone): not left for a wake-up
            return 0.0
        deadlines = [d for d in (hub_deadline, self._timers[0][0] if self._timers else None) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _accept(self, listener: Listener) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, address = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                pause_s = self._accept_backoff.failed(error)
                if pause_s is not None:
                    self._pause_accepting(pause_s)
                return
            self._accept_backoff.accepted()
            peer = f"{address[0]}:{address[1]}"
            if listener.proxy_protocol and not is_trusted(address[0], self.settings.trusted_proxies):
                log.info("connection from %s refused: not a trusted proxy (--proxy-protocol)", peer)
                sock.close()
                continue
            sock.setblocking(False)
            tune_accepted(sock)
            connection = SelectorConnection(self, sock, peer, address[0], listener)
            self.connections[connection.fd] = connection
            self.selector.register(sock, selectors.EVENT_READ, connection)
            log.info("connection from %s (%s)", peer, listener.kind)
            if connection.ready:
                connection.attach(self.hub)
            else:
                self.call_later(HANDSHAKE_TIMEOUT_S, connection.handshake_expired)

    def _pause_accepting(self, pause_s: float) -> None:
        """Leave the listeners out of the selector a while (the back-off says why)."""
        for listener in self._listeners:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(listener.sock)
        self.call_later(pause_s, self._resume_accepting)

    def _resume_accepting(self) -> None:
        if self._stopping:
            return
        for listener in self._listeners:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.register(listener.sock, selectors.EVENT_READ, listener)

    def _drain_waker(self) -> None:
        try:
            while self._waker_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _run_timers(self) -> None:
        timers = self._timers
        now = time.monotonic()
        if timers and timers[0][0] <= now:
            # How late the loop is: the earliest due timer's lateness, once per turn that runs any.
            self.hub.stats.loop_lag.observe(now - timers[0][0])
        while timers and timers[0][0] <= now:
            _, _, callback = heapq.heappop(timers)
            callback()

    def _flush_pending(self) -> None:
        """Write out every connection that got output this turn, one send each.

        The list is shared with the connections (they append to it), so it is
        walked by index: a flush that makes more output (a failed send telling the
        hub a client is gone) adds to the end and is flushed in the same pass.
        """
        pending = self.pending
        for group in self.pending_groups:
            group.pending = False
            for connection in group.transports:
                if not connection.pending:
                    connection.pending = True
                    pending.append(connection)
        self.pending_groups.clear()
        while True:
            index = 0
            while index < len(pending):
                pending[index].flush()
                index += 1
            pending.clear()
            # Clients found past their send queue are cut now; that queues QUITs to flush.
            if not self.hub.reap_overflowed():
                break

    def _close_all(self) -> None:
        """Say goodbye to everyone, let the goodbyes drain for a moment, then close."""
        if self._cluster is not None:
            self._cluster.stop()
        self._workers.close()
        self.hub.shutdown()
        for connection in list(self.connections.values()):
            if connection.session is None:  # not attached: nobody to say goodbye to
                connection.drop()
        self._flush_pending()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while any(not c.closed for c in self.connections.values()) and time.monotonic() < deadline:
            for key, mask in self.selector.select(0.05):
                if isinstance(key.data, SelectorConnection) and not key.data.closed:
                    if mask & selectors.EVENT_WRITE:
                        key.data.flush()
                    if mask & selectors.EVENT_READ:
                        self._discard_input(key.data)
        for connection in list(self.connections.values()):
            connection.drop()
        for listener in self._listeners:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(listener.sock)
            listener.sock.close()
        self.selector.close()
        self._waker_r.close()
        self._waker_w.close()

    @staticmethod
    def _discard_input(connection: SelectorConnection) -> None:
        try:
            if not connection.sock.recv(RECV_BYTES):
                connection.drop()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            connection.drop()
