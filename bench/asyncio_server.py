"""A bench contender: chatd's core on asyncio, the stdlib design a Python user would reach for.

Not a chatd backend (``chatd --backend`` offers selectors and threads, which the
test suite covers; this one has no TLS, cluster or ``--reuse-port``): the bench
starts it as ``python -m bench.asyncio_server`` with chatd's own options.

It keeps the selectors backend's write discipline, because that, not the loop
library, decides the cost per delivery: the hub's writes only append to the
connection's outbox and mark it pending; one callback per loop turn hands each
pending outbox to its transport with a single ``write``. Writing each message
straight to the transport costs one ``send`` system call per delivery instead.

uvloop is used when it is installed (``CHATD_UVLOOP=0`` turns it off).

Invariants:
- A connection is in ``pending`` at most once, exactly while ``pending`` is True.
- The send queue bound covers the outbox plus what the transport still buffers.
- The hub is only called from the loop's thread; ``shutdown`` may come from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence

from chatd.backends.base import BackendSettings, make_hub
from chatd.backends.connection import CLOSE_LINGER_S, SHUTDOWN_GRACE_S, listen, tune_accepted
from chatd.core import Client, Transport
from chatd.core.session import Session

log = logging.getLogger("chatd")

HUB_TICK_S = 0.25
"""How often the hub's timers (pings, timeouts, flood backlogs) are checked; all are seconds-scale."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed and not disabled, else the stdlib's."""
    if os.environ.get("CHATD_UVLOOP", "1") != "0":
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


class AsyncioConnection(asyncio.Protocol):
    """One connection: an asyncio protocol toward the loop, the core's Transport toward the hub."""

    def __init__(self, server: AsyncioServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self.session: Session | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_due = 0.0
        """When ``timer`` fires, on ``time.monotonic`` (uvloop's ``loop.time`` has its own clock)."""
        self.outbox = bytearray()
        self.pending = False
        self.closing = False
        self.closed = False
        self.paused = False
        self.peer = "?"
        self.room = server.sendq_bytes
        """Outbox bytes allowed before the send queue is full: the bound less what the transport holds."""

    # asyncio side -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                tune_accepted(sock)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.server.connections.add(self)
        log.info("connection from %s", self.peer)
        self.client = self.server.hub.connect(self, peer[0])
        self.session = Session(self.server.hub, self.client)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or self.closing:
            return
        self._follow(session.data_received(data, time.monotonic()))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = self.closing = True
        self.outbox.clear()
        self.server.connections.discard(self)
        log.info("closed connection from %s", self.peer)
        if self.client is not None:
            reason = (getattr(exc, "strerror", None) or "Connection error") if exc else "Connection closed"
            self.server.hub.disconnect(self.client, reason)

    # Transport contract (called by the hub) ---------------------------------------------

    def write(self, data: bytes) -> bool:
        if self.closing:
            return True
        if len(self.outbox) + len(data) > self.room:
            return False
        self.outbox += data
        if not self.pending:
            self.pending = True
            self.server.mark_pending(self)
        return True

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        if self.closing:
            return
        self.closing = True
        transport = self.transport
        assert transport is not None
        if abort:
            self.outbox.clear()
            if farewell:
                with contextlib.suppress(OSError, RuntimeError):
                    transport.write(farewell)
            transport.abort()
            return
        self.outbox += farewell
        self.flush()
        transport.close()
        self.server.loop.call_later(CLOSE_LINGER_S, transport.abort)

    # loop side ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand the outbox to the transport in one write; the transport sends what it can now."""
        self.pending = False
        if self.closed or not self.outbox:
            return
        if len(self.outbox) > self.room and self.client is not None and not self.closing:
            self.server.hub.overflowed(self.client)  # a group appends unchecked; cut after this pass
            return
        data, self.outbox = self.outbox, bytearray()
        transport = self.transport
        assert transport is not None
        transport.write(data)
        self.room = self.server.sendq_bytes - transport.get_write_buffer_size()

    def _on_timer(self) -> None:
        self.timer = None
        if self.session is not None and not self.closing:
            self._follow(self.session.timer(time.monotonic()))

    def _follow(self, deadline: float | None) -> None:
        """Do what the session asks: read or not (flood control), and come back at ``deadline``."""
        transport = self.transport
        session = self.session
        if self.closing or transport is None or session is None:
            return
        if session.reading == self.paused:
            self.paused = not session.reading
            if self.paused:
                transport.pause_reading()
            else:
                transport.resume_reading()
        if deadline is not None and (self.timer is None or deadline < self.timer_due):
            if self.timer is not None:
                self.timer.cancel()
            self.timer_due = deadline
            self.timer = self.server.loop.call_later(max(0.0, deadline - time.monotonic()), self._on_timer)


class AsyncioGroup:
    """This server's connections that take the same bytes for a channel's messages.

    One append per connection per message; the bound is checked when each is flushed.
    """

    __slots__ = ("connections", "server", "transports")

    def __init__(self, server: AsyncioServer, offered: Sequence[Transport]) -> None:
        self.server = server
        self.connections = [t for t in offered if isinstance(t, AsyncioConnection)]
        self.transports: Sequence[Transport] = self.connections

    def send(self, data: bytes, skip: Transport | None) -> None:
        pending = self.server.pending
        schedule = not pending
        for connection in self.connections:
            if connection is skip:
                continue
            connection.outbox += data
            if not connection.pending:
                connection.pending = True
                pending.append(connection)
        if schedule and pending:
            self.server.loop.call_soon(self.server._flush_pending)


class AsyncioServer:
    """A chat server on an asyncio (or uvloop) event loop; ``shutdown`` is safe from any thread."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.sendq_bytes = settings.sendq_bytes
        self.hub = make_hub(settings)
        self.hub.fanout_groups = self.group
        self.loop = new_event_loop()
        self.connections: set[AsyncioConnection] = set()
        self.pending: list[AsyncioConnection] = []
        self.address: tuple[str, int] = (settings.host, settings.port)
        self.tls_address: tuple[str, int] | None = None  # no TLS listener on this backend
        self._listener = None
        self._stop: asyncio.Event | None = None
        self._stopping = False

    def bind(self) -> None:
        listener = listen(self.settings.host, self.settings.port)
        listener.setblocking(False)
        self._listener = listener
        self.address = listener.getsockname()[:2]

    def shutdown(self) -> None:
        self._stopping = True
        stop = self._stop
        if stop is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(stop.set)

    def group(self, offered: Sequence[Transport]) -> AsyncioGroup:
        """The hub's ``GroupFactory``: of ``offered``, this server's connections."""
        return AsyncioGroup(self, offered)

    def mark_pending(self, connection: AsyncioConnection) -> None:
        """Queue a connection for this turn's flush; the first one schedules the flush."""
        if not self.pending:
            self.loop.call_soon(self._flush_pending)
        self.pending.append(connection)

    def _flush_pending(self) -> None:
        pending = self.pending
        while pending:
            self.pending = []
            for connection in pending:
                connection.flush()
            self.hub.reap_overflowed()  # queues a group pushed past the bound: their QUITs go next
            pending = self.pending

    def serve_forever(self) -> None:
        if self._listener is None:
            self.bind()
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        if self._stopping:
            return
        server = await self.loop.create_server(lambda: AsyncioConnection(self), sock=self._listener, backlog=1024)
        ticker = self.loop.create_task(self._tick())
        try:
            await self._stop.wait()
        finally:
            ticker.cancel()
            server.close()
            await self._close_all()

    async def _tick(self) -> None:
        while True:
            deadline = self.hub.next_deadline()
            if deadline is not None and deadline <= time.monotonic():
                self.hub.run_timers()
                self._flush_pending()
            await asyncio.sleep(HUB_TICK_S)

    async def _close_all(self) -> None:
        """Say goodbye to everyone, let the goodbyes drain for a moment, then cut the rest."""
        self.hub.shutdown()
        self._flush_pending()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while any(not c.closed for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        await asyncio.sleep(0)


def main(argv: list[str] | None = None) -> int:
    """Serve with chatd's own options (``--backend`` is ignored) until SIGTERM or SIGINT."""
    import dataclasses
    import signal

    from chatd.cli import parse_settings
    from chatd.history import History

    args, settings = parse_settings(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(message)s")
    server = AsyncioServer(dataclasses.replace(settings, history=History(None)))
    server.bind()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: server.shutdown())
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
