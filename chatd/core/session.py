"""A connection's bytes on their way to the hub: framing, the pause rule, flood control.

A backend owns the socket and the clock; this module owns what the bytes mean
before a command runs. The backend makes two calls and keeps one promise:
``data_received(data, now)`` with each read, ``timer(now)`` once the deadline
either returned has passed, and it reads from the socket only while ``reading``.
A session that is ``held`` waits on the network (a nick claim out to the
cluster): the backend calls ``network_answered(now)`` after each batch of the
network's events (its ``post``), so the held input goes on as soon as the
answer is in; ``HOLD_POLL_S`` is only a safety net.

Invariants:
- Lines reach the hub in the order the peer sent them: through ``client.backlog``
  whenever anything waits there (flood control, a nick claim out to the network).
- Bytes with no line terminator count as a line only for a client that
  ``accepts_unterminated`` (plain, or not yet decided), and only once the peer
  has paused ``PAUSE_FLUSH_S`` after its last read (the classroom client sends
  its name and each message with no newline at all).
- A client's token bucket (``flood_tokens`` at ``flood_stamp``) only grows with
  time, up to ``flood_burst``; a line from the backlog costs one token. Past
  ``flood_excess_limit`` lines of debt the client is cut with "Excess Flood".
- ``resume_due`` is set exactly while the hub asked for the input to stop: the
  backend must not read until ``timer`` has been called past it.
- Nothing here blocks or does I/O; the clock is the backend's (``now``) and the hub's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from chatd.protocol.framing import LineReader

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub

PAUSE_FLUSH_S = 0.1
"""How long a peer must pause after bytes with no newline before they count as a line."""

HOLD_POLL_S = 1.0
"""How soon a held client's input is looked at again should no answer wake it (``Client.held``).

The network's answers come through the backend's ``post``, after which the backend
resumes held sessions at once (``Session.network_answered``); this deadline only
bounds the wait should that ever not happen."""


class Session:
    """The input side of one connection: a ``LineReader`` and the two deadlines it may set.

    Not thread-safe: call it as the hub is called (the threads backend: under the hub lock).
    """

    __slots__ = ("client", "hub", "partial_due", "reader", "resume_due")

    def __init__(self, hub: Hub, client: Client) -> None:
        self.hub = hub
        self.client = client
        self.reader = LineReader()
        self.partial_due: float | None = None
        """When unterminated bytes become a line, if the peer stays quiet until then."""
        self.resume_due: float | None = None
        """Flood control or a held client: when the hub wants to look at the backlog again."""

    @property
    def reading(self) -> bool:
        """False while flood control throttles the client: the backend stops reading its socket."""
        return self.resume_due is None

    @property
    def held(self) -> bool:
        """True while the client's input waits on the network's answer (``Client.held``)."""
        return self.resume_due is not None and self.client.held

    @property
    def deadline(self) -> float | None:
        """When ``timer`` next has work; None: only the next read brings any."""
        partial, resume = self.partial_due, self.resume_due
        if partial is None:
            return resume
        if resume is None or partial < resume:
            return partial
        return resume

    def data_received(self, data: bytes, now: float) -> float | None:
        """Frame ``data`` and hand complete lines to the hub; return ``deadline``."""
        client = self.client
        if client.gone:
            return None
        reader = self.reader
        lines = reader.feed(data)
        if lines:
            self.resume_due = self.hub.receive(client, lines)
        if reader.pending and client.accepts_unterminated and not client.gone:
            self.partial_due = now + PAUSE_FLUSH_S
            return self.deadline
        self.partial_due = None  # (the common case, once per read: no more work than this)
        return self.resume_due

    def timer(self, now: float) -> float | None:
        """Run what is due at ``now`` (the pause rule, the backlog); return ``deadline``.

        Safe to call early or more than once: what is not yet due is left alone.
        """
        client = self.client
        if client.gone:
            self.partial_due = self.resume_due = None
            return None
        partial = self.partial_due
        if partial is not None and now >= partial:
            self.partial_due = None
            if self.reader.pending and client.accepts_unterminated:
                self.resume_due = self.hub.receive(client, [self.reader.take_partial()])
        resume = self.resume_due
        if resume is not None and now >= resume and not client.gone:
            self.resume_due = self.hub.resume(client)
        return self.deadline

    def network_answered(self, now: float) -> float | None:
        """The network's events just ran: a session no longer ``held`` goes on now; see ``timer``.

        Call it only after a whole batch of events, never from inside one (the event that
        releases the client may still be granting its nick).
        """
        if self.resume_due is not None and not self.client.held:
            self.resume_due = now
        return self.timer(now)


# ---- the flood bucket and the backlog, behind Hub.receive and Hub.resume ----------------


def receive_lines(
    hub: Hub, client: Client, lines: Sequence[bytes | object], handle: Callable[[Client, bytes | object], None]
) -> float | None:
    """``Hub.receive``: run ``lines`` now or queue them behind the backlog; see there."""
    if client.gone:
        return None
    now = hub.clock()
    client.last_seen = now
    config = hub.config
    if config.flood_rate <= 0 and not client.backlog:
        for index, raw in enumerate(lines):
            if client.gone:
                break
            if client.held:  # what follows waits for the network's answer, in order
                client.backlog.extend(lines[index:])
                break
            handle(client, raw)
        hub.reap_overflowed()
        return now + HOLD_POLL_S if client.backlog and not client.gone else None
    backlog = client.backlog
    backlog.extend(lines)
    tokens = refill(hub, client, now)
    if tokens >= config.flood_burst:
        client.flood_debt = 0  # it has been calm long enough to start afresh
    client.flood_debt += max(0, len(backlog) - int(tokens))
    if client.flood_debt > config.flood_excess_limit:
        backlog.clear()
        hub.stats.flood_disconnects += 1
        hub.quit(client, "Excess Flood", error="Excess Flood")
        hub.reap_overflowed()
        return None
    return resume_lines(hub, client, handle)


def resume_lines(hub: Hub, client: Client, handle: Callable[[Client, bytes | object], None]) -> float | None:
    """``Hub.resume``: run the backlogged lines the token bucket allows; see there."""
    now = hub.clock()
    backlog = client.backlog
    config = hub.config
    if config.flood_rate <= 0:
        while backlog and not client.gone and not client.held:
            handle(client, backlog.popleft())
        hub.reap_overflowed()
        if client.gone:
            backlog.clear()
            return None
        return now + HOLD_POLL_S if backlog else None
    tokens = refill(hub, client, now)
    while backlog and tokens >= 1 and not client.gone and not client.held:
        tokens -= 1
        handle(client, backlog.popleft())
    client.flood_tokens = tokens
    hub.reap_overflowed()
    if client.gone:
        backlog.clear()
        return None
    if not backlog:
        return None
    if client.held:
        return now + HOLD_POLL_S
    return now + (1 - tokens) / config.flood_rate


def refill(hub: Hub, client: Client, now: float) -> float:
    """The client's tokens at ``now``: what it had plus what the rate added since, up to the burst."""
    config = hub.config
    tokens = min(config.flood_burst, client.flood_tokens + (now - client.flood_stamp) * config.flood_rate)
    client.flood_tokens, client.flood_stamp = tokens, now
    return tokens
