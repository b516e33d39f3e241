"""The asyncio connection: socket bytes to the client state and back, with reconnect and backoff.

Invariants:
- Only this module touches the socket. Every received line goes through
  ``ClientState.feed`` in order; ``SendLine`` events are written before the events
  are handed to the listener, so a PONG or a rejoin never waits behind the UI.
- Lines are written in the order ``send`` was called, paced by a token bucket
  (``burst_lines`` at once, then ``rate_lines_per_s``): servers cut clients that
  flood them (chatd after a backlog of 200 lines, "Excess Flood"), and a pasted file
  must not end the session. Only protocol duties (PONG, registration retries,
  rejoins) skip the queue. Nothing is queued while no connection is up (``send``
  says so by returning False): a new server session must not replay stale lines.
- After ``quit`` no reconnect happens, whatever the server does; nor after a failed login with
  ``--sasl-fail disconnect`` (``LoginFailed(fatal=True)``): trying again with the same password
  would only meet the server's login throttle.
- The reconnect delay doubles from ``backoff_initial_s`` up to ``backoff_max_s`` and
  resets after a successful registration; a little jitter keeps many clients of a
  restarted server from coming back in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from chatc.buffers import SERVER_KEY
from chatc.events import Event, LoginFailed, Registered, SendLine
from chatc.pacing import BURST_LINES, RATE_LINES_PER_S, Backoff, TokenBucket
from chatc.state import ClientState
from chatd.protocol.framing import OVERLONG, LineReader, decode_line
from chatd.protocol.message import format_message, parse

READ_CHUNK_BYTES: Final = 65536
CONNECT_TIMEOUT_S: Final = 10.0
# A server that takes CAP LS but never answers (or never ACKs/NAKs a REQ) would hold registration
# forever; after this long chatc sends CAP END itself and registers without capabilities.
CAP_TIMEOUT_S: Final = 5.0
# A SASL login in flight gets this much longer before it is given up (the server hashes a PLAIN
# password off its loop; a loaded server may take a while, but never forever).
SASL_TIMEOUT_S: Final = 20.0


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where to connect, and how: plaintext, or TLS with or without certificate checks.

    ``tls_ca`` names a PEM file of certificates to trust instead of the system's
    (a private server's self-signed certificate); ``tls_verify=False`` accepts any
    certificate, which protects against eavesdroppers but not against impostors.
    """

    host: str
    port: int
    tls: bool = False
    tls_verify: bool = True
    tls_ca: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client context for this address, or None for plaintext. Raises OSError for an unreadable CA file."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca)
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _describe_connect_error(exc: OSError) -> str:
    """A short reason for the user: 'Connection refused', 'certificate verify failed: ...'."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message} (--tls-ca FILE trusts a private certificate)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if exc.strerror and not exc.strerror.startswith("Connect call failed"):
        return exc.strerror
    # asyncio's "Connect call failed" wording hides the reason (refused, unreachable).
    return os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc)


class ConnectionClosed(Exception):
    """Raised by waits that cannot finish because the connection is gone."""


class Connection:
    """One client connection, reconnected until ``quit`` when ``reconnect`` is set.

    Call ``run()`` as a task; the other methods are called from the same event loop.
    ``on_events`` receives each batch of state events; ``on_status`` a short text
    such as ``connected`` or ``disconnected, retrying in 4s``.
    """

    def __init__(
        self,
        address: ServerAddress,
        state: ClientState,
        on_events: Callable[[list[Event]], None] = lambda events: None,
        on_status: Callable[[str], None] = lambda status: None,
        *,
        on_sent: Callable[[int], None] = lambda queued: None,
        reconnect: bool = True,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        burst_lines: int = BURST_LINES,
        rate_lines_per_s: float = RATE_LINES_PER_S,
        cap_timeout_s: float = CAP_TIMEOUT_S,
        sasl_timeout_s: float = SASL_TIMEOUT_S,
    ) -> None:
        self.address = address
        self.state = state
        self.on_events = on_events
        self.on_status = on_status
        self.on_sent = on_sent  # after each paced line, with how many still wait: a paste's countdown
        self.reconnect = reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.status = "idle"
        self.last_error = ""
        self._writer: asyncio.StreamWriter | None = None
        self._quitting = False
        self._wake = asyncio.Event()
        self._registered = asyncio.Event()
        self._closed = asyncio.Event()
        self._pongs: dict[str, asyncio.Future[None]] = {}
        self._ping_tokens = itertools.count(1)
        self.burst_lines = burst_lines
        self.rate_lines_per_s = rate_lines_per_s
        self.cap_timeout_s = cap_timeout_s
        self.sasl_timeout_s = sasl_timeout_s
        self.fatal_error = ""  # why the connection gave up for good (a failed login), if it did
        self._queue: deque[str] = deque()
        self._queue_changed = asyncio.Event()
        self._connecting: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None

    def _set_status(self, status: str) -> None:
        self.status = status
        self.on_status(status)

    # ---- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and (if configured) reconnect until ``quit``; returns when done."""
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        while not self._quitting:
            self._set_status("connecting")
            try:
                context = self.address.ssl_context()
                self._connecting = asyncio.ensure_future(
                    asyncio.wait_for(
                        asyncio.open_connection(
                            self.address.host,
                            self.address.port,
                            ssl=context,
                            server_hostname=self.address.host if context is not None else None,
                        ),
                        CONNECT_TIMEOUT_S,
                    )
                )
                reader, writer = await self._connecting
            except asyncio.CancelledError:
                if not self._quitting:
                    raise
                break  # quit() gave up on a connect still in progress
            except (OSError, TimeoutError) as exc:
                why = _describe_connect_error(exc)
                reason = f"cannot connect to {self.address.host}:{self.address.port}: {why}"
                self.last_error = reason
                self.state.info(reason, kind="error")
                self.on_events([])
            else:
                reason = await self._session(reader, writer)
                if self._registered.is_set():
                    backoff.reset()
                self.last_error = self.fatal_error or reason
                self._dispatch(self.state.connection_lost(reason))
            self._registered.clear()
            if self._quitting or not self.reconnect:
                break
            wait_s = backoff.next_delay_s()
            self._set_status(f"disconnected, retrying in {wait_s:.0f}s")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)
        self._set_status("closed" if self._quitting else "disconnected")
        self._closed.set()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """Register and read until the connection ends; returns why it ended."""
        self._writer = writer
        self._set_status("registering")
        framing = LineReader()
        reason = "connection closed by server"
        pacer = asyncio.create_task(self._pace(writer))
        cap_deadline = asyncio.create_task(self._cap_deadline())
        try:
            for line in self.state.registration_lines():
                self._write(line)
            while True:
                data = await reader.read(READ_CHUNK_BYTES)
                if not data:
                    break
                for raw in framing.feed(data):
                    if raw is OVERLONG or not isinstance(raw, bytes):
                        continue
                    self._received(decode_line(raw))
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = f"connection lost: {exc.strerror or exc}" if isinstance(exc, OSError) else "connection lost"
        finally:
            self._writer = None
            pacer.cancel()
            cap_deadline.cancel()
            if self._queue:
                self.state.info(f"{len(self._queue)} queued lines were not sent", kind="error")
                self._queue.clear()
            self._queue_changed.set()  # wake anyone waiting for the queue: it will not drain now
            for future in self._pongs.values():
                if not future.done():
                    future.set_exception(ConnectionClosed(reason))
            self._pongs.clear()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return reason

    async def _cap_deadline(self) -> None:
        """End a capability negotiation the server left hanging (a SASL login gets ``sasl_timeout_s``
        more); sleeping here is the timeout itself."""
        await asyncio.sleep(self.cap_timeout_s)
        events = self.state.cap_timeout()
        if not events and self.state.login is not None:
            await asyncio.sleep(self.sasl_timeout_s)
            events = self.state.cap_timeout(force=True)
        self._dispatch(events)

    async def _pace(self, writer: asyncio.StreamWriter) -> None:
        """Write queued lines under the token bucket; sleeping here is the pacing itself."""
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(self.burst_lines, self.rate_lines_per_s, loop.time())
        while True:
            if not self._queue:
                self._queue_changed.clear()
                await self._queue_changed.wait()
                continue
            if not bucket.take(loop.time()):
                await asyncio.sleep(bucket.wait_s(loop.time()))
                continue
            self._write(self._queue.popleft())
            self._queue_changed.set()
            self.on_sent(len(self._queue))
            with contextlib.suppress(OSError):
                await writer.drain()

    def _received(self, line: str) -> None:
        """Handle one line; a bug in handling one line must not end the session, so it is shown instead."""
        try:
            self._handle_line(line)
        except Exception as exc:  # deliberately broad: the read loop must survive any handler bug
            self.state.info(f"chatc could not handle {line!r}: {exc!r}", SERVER_KEY, kind="error")
            self.on_events([])

    def _handle_line(self, line: str) -> None:
        message = parse(line)
        if message.command == "PONG":
            future = self._pongs.pop(message.params[-1] if message.params else "", None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        self._dispatch(self.state.feed(line))

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, SendLine):
                self._write(event.line)
            elif isinstance(event, Registered):
                self._registered.set()
                self._set_status("connected")
            elif isinstance(event, LoginFailed) and event.fatal:
                self._quitting = True  # the QUIT is in the events: the server closes, we do not come back
                self.fatal_error = f"SASL login failed: {event.reason}"
        self.on_events(events)

    def _write(self, line: str) -> bool:
        if self._writer is None or self._writer.is_closing():
            return False
        self._writer.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return True

    # ---- calls from the UI or headless driver ---------------------------------------

    def send(self, line: str) -> bool:
        """Queue ``line`` for the server; False when there is no connection to send it on."""
        if self._writer is None or self._writer.is_closing():
            return False
        self._queue.append(line)
        self._queue_changed.set()
        return True

    @property
    def queued(self) -> int:
        """Lines waiting for their turn under the pacing."""
        return len(self._queue)

    def seconds_to_drain(self) -> float:
        """How long the queue takes to leave at the paced rate (for timeouts that must cover it)."""
        return len(self._queue) / self.rate_lines_per_s

    async def wait_queue_below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` lines are queued, or the connection is gone."""
        while len(self._queue) >= limit and self._writer is not None:
            self._queue_changed.clear()
            await self._queue_changed.wait()

    async def wait_registered(self) -> None:
        """Return once registered; raises ``ConnectionClosed`` if the connection ends first."""
        registered = asyncio.ensure_future(self._registered.wait())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({registered, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            registered.cancel()
            closed.cancel()
        if not self._registered.is_set():
            raise ConnectionClosed(self.last_error or "connection closed")

    async def sync(self) -> None:
        """Return once the server has answered a PING sent now, so it has processed all we sent.

        Servers answer in order, so the PONG proves every earlier line was handled.
        Raises ``ConnectionClosed`` if the connection ends first.
        """
        token = f"chatc-sync-{next(self._ping_tokens)}"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs[token] = future
        if not self.send(format_message("PING", token)):
            self._pongs.pop(token, None)
            raise ConnectionClosed(self.last_error or "not connected")
        await future

    async def quit(self, reason: str = "chatc", timeout_s: float = 5.0) -> None:
        """Send QUIT, wait (up to ``timeout_s``) for the server to close, and stop reconnecting."""
        self._quitting = True
        self._wake.set()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()  # nobody to say QUIT to yet; do not finish connecting
        writer = self._writer
        if writer is not None and self.send(format_message("QUIT", reason)):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout_s + self.seconds_to_drain())
            if not self._closed.is_set():
                writer.close()  # the server did not close in time: stop waiting for it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), timeout_s)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def reconnect_now(self) -> None:
        """Skip the rest of the backoff wait (the user asked to reconnect)."""
        self._wake.set()
