"""Protocol tests without sockets: a hub, capturing transports and a hand-driven clock.

As h11's ``ConnectionPair``: the test plays both the peers and the backend. A
``HubClient`` reads as the socket suite's ``IrcClient`` (``send``, ``register``,
``expect``, ``until``, ``sync``, ``lines``), but its bytes go through the same
``LineReader`` the backends use straight into the hub, and what the hub writes is
read back from a ``Capture``.

Invariants:
- This module is the only test code that drives a ``Hub`` the way a backend does
  (``Hub(config, clock, wall_clock, history)``, ``connect``, ``receive``, ``resume``,
  ``run_timers``, ``disconnect``, ``shutdown``): when that API changes, only this file
  changes.
- Time is the harness's, never the machine's: it moves only when a client waits for
  a line that is not there (to the next flood-control resume or hub timer, at most
  ``DEADLINE_S`` of virtual time per wait) and by ``SEND_GAP_S`` per ``send_raw``,
  so no two lines arrive at one instant, as over a network: message times, msgids
  and history order them as in the socket suite. Nothing sleeps.
- As in a backend, a client throttled by flood control gets no new bytes framed until
  the hub's resume time: what it sends meanwhile waits, as in a kernel buffer.

Not here, and so left to the socket suite over both backends: send queues (a
``Capture`` takes everything), the 100 ms rule for bytes with no newline (they stay
unframed), TLS, the backends' own fan-out loops, shutdown and restarts.
"""

from __future__ import annotations

from types import TracebackType

from chatd.core import Client, Hub, ServerConfig
from chatd.core.ports import AccountStore
from chatd.history import History
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol.framing import LineReader
from tests.helpers import DEADLINE_S, Capture, IrcConversation

HOST = "127.0.0.1"
"""Every harness client comes from here, as socket test clients do (prefixes read ``~u@127.0.0.1``)."""

MONOTONIC_START_S = 1000.0
WALL_START_S = 1_700_000_000.0
SEND_GAP_S = 0.001
"""How much the clock moves per ``send_raw``: a peer's bytes take a moment to arrive."""



class HandClock:
    """The hub's monotonic clock, moved only by the harness; ``wall`` keeps pace with it."""

    def __init__(self) -> None:
        self.now = MONOTONIC_START_S

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_START_S + (self.now - MONOTONIC_START_S)

    def advance_to(self, moment: float) -> None:
        self.now = max(self.now, moment)


class HubTransport(Capture):
    """A ``Capture`` that also remembers that the hub closed it (unbounded: no sendq here)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self, farewell: bytes = b"", *, abort: bool = False) -> None:
        if not self.closed:
            super().close(farewell, abort=abort)
            self.closed = True


class HubHarness:
    """One hub and the clients connected to it; what a backend's loop would do, by hand.

    Build it with ``ServerConfig`` fields as keywords (``HubHarness(password="x")``),
    as ``running_server`` takes them. Use it as a context manager when it has a history
    to close.
    """

    def __init__(
        self, history: History | None = None, accounts: AccountStore | None = None, **config: object
    ) -> None:
        self.clock = HandClock()
        self.hub = Hub(
            ServerConfig(**config),  # type: ignore[arg-type]
            self.clock,
            self.clock.wall,
            history,
            MemoryAccountStore() if accounts is None else accounts,
        )
        self.clients: list[HubClient] = []

    def __enter__(self) -> HubHarness:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """What a backend does when it stops: the hub says goodbye and closes its history."""
        self.hub.shutdown()

    def client(self, nick: str | None = None) -> HubClient:
        """A new connection; registered as ``nick`` when one is given (as ``RunningServer.client``)."""
        client = HubClient(self)
        self.clients.append(client)
        if nick is not None:
            client.register(nick)
        return client

    def step(self, deadline: float) -> bool:
        """Let time pass to the next thing due, if it comes by ``deadline``; False when nothing does.

        Due flood-control resumes run before the hub's timers, as in a backend's loop turn.
        """
        timer = self.hub.run_timers()
        moments = [c.resume_at for c in self.clients if c.resume_at is not None]
        if timer is not None:
            moments.append(timer)
        if not moments or min(moments) > deadline:
            return False
        self.clock.advance_to(min(moments))
        for client in self.clients:
            if client.resume_at is not None and client.resume_at <= self.clock.now:
                client.resume()
        self.hub.run_timers()
        return True


class HubClient(IrcConversation):
    """A peer of the harness's hub with the socket suite's ``IrcClient`` methods."""

    def __init__(self, harness: HubHarness) -> None:
        self.harness = harness
        self.hub = harness.hub
        self.transport = HubTransport()
        self.connection: Client = self.hub.connect(self.transport, HOST)
        self.reader = LineReader()
        self.unsent = bytearray()
        """Bytes sent while flood control throttles us; framed once the hub resumes."""
        self.resume_at: float | None = None
        self.received = bytearray()
        self.unread: list[str] = []
        self.lines: list[str] = []
        """Every line read so far, as ``LineClient.lines``."""
        self.nick: str | None = None
        self.hung_up = False

    def now(self) -> float:
        return self.harness.clock.now

    # ---- the peer's side -----------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        if self.hung_up or self.transport.closed:
            return  # the hub closed us; bytes to a closed socket go nowhere
        self.harness.clock.advance_to(self.harness.clock.now + SEND_GAP_S)
        self.unsent += data
        if self.resume_at is None:
            self._feed()

    def close(self) -> None:
        """Hang up, as a socket close: the hub sees end of file."""
        if not self.hung_up:
            self.hung_up = True
            self.resume_at = None
            self.hub.disconnect(self.connection, "Connection closed")

    # ---- the backend's side --------------------------------------------------

    def _feed(self) -> None:
        data, self.unsent = bytes(self.unsent), bytearray()
        lines = self.reader.feed(data)
        if lines:
            self.resume_at = self.hub.receive(self.connection, lines)

    def resume(self) -> None:
        self.resume_at = self.hub.resume(self.connection)
        if self.resume_at is None and self.unsent:
            self._feed()

    # ---- reading, as LineClient and IrcClient ----------------------------------

    def read_line(self, timeout: float = DEADLINE_S) -> str | None:
        """The next line without its terminator, or None once the hub closed us and all was read.

        Raises TimeoutError when nothing comes within ``timeout`` seconds of harness time.
        """
        deadline = self.harness.clock.now + timeout
        while True:
            self._take_output()
            if self.unread:
                line = self.unread.pop(0)
                self.lines.append(line)
                return line
            if self.transport.closed or self.hung_up:
                if self.received:
                    line, self.received = self.received.decode("utf-8", "replace"), bytearray()
                    return line
                return None
            if not self.harness.step(deadline):
                raise TimeoutError(f"no complete line within {timeout}s; have {bytes(self.received)!r}")

    def _take_output(self) -> None:
        self.received += self.transport.data
        self.transport.data.clear()
        *complete, rest = bytes(self.received).split(b"\n")
        self.received = bytearray(rest)
        self.unread.extend(raw.rstrip(b"\r").decode("utf-8", "replace") for raw in complete)
