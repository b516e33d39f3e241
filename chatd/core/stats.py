"""The server's counters: plain numbers the hub and the backends bump where things happen.

``chatd.metrics`` reads them when /metrics is scraped; nothing is pushed anywhere per
message. This module imports nothing of chatd and no metrics library, so the core and
the backends can count without depending on the exposition.

Invariants:
- The hot path (a channel fan-out) costs one or two integer additions per message,
  never one per recipient: deliveries are added as the audience's size per fan-out.
- Every field is an ``int``, a ``float``, a small ``dict`` of ints or a ``Histogram``,
  written by one thread at a time (the loop, or holders of the hub lock) and read
  lock-free by a scrape: a reader may see a value one event old, never a torn one.
- Gauges (``connections``, ``plain_connections``) go up and down with the hub's
  table of local clients: up in ``Hub.connect``, down when ``depart`` removes one,
  cleared by ``Hub.shutdown``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
"""Upper bounds (seconds) for loop lag and commit latency: a healthy loop is late by well under
a millisecond, a stalled one by a large fraction of a second; SQLite commits sit in between."""

SERVING, STARTING, STOPPING = "serving", "starting", "stopping"


class Histogram:
    """A fixed-bucket histogram of seconds: one ``bisect`` and three additions per observation.

    ``counts[i]`` counts observations in bucket ``i`` alone (not cumulative); the last
    slot is the +Inf bucket. The exposition makes them cumulative when it reads them.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one value; negative values (a clock read before its deadline) count as 0."""
        if value < 0.0:
            value = 0.0
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def snapshot(self) -> tuple[list[tuple[float, int]], float]:
        """Cumulative ``(upper bound, count)`` pairs ending with +Inf, and the sum; for a scrape.

        The counts are copied first, so the +Inf bucket always equals the total count.
        """
        counts = list(self.counts)
        total = self.sum
        cumulative = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, total


class Stats:
    """The counters of one server (``Hub.stats``); see the module's invariants."""

    __slots__ = (
        "cluster_events_in",
        "cluster_events_out",
        "connections",
        "deliveries",
        "flood_disconnects",
        "loop_lag",
        "messages",
        "plain_connections",
        "sendq_disconnects",
        "state",
    )

    def __init__(self) -> None:
        self.connections: dict[str, int] = {}
        """Open connections by transport kind (``tcp``, ``tls``, ``websocket``): the ``kind``
        attribute a backend's transport carries, ``tcp`` when it has none."""
        self.plain_connections = 0
        """Connections that went into plain mode (any transport), counted in ``connections`` too."""
        self.messages = 0
        """PRIVMSG/NOTICE/TAGMSG this server's users sent (to channels and to nicks)."""
        self.deliveries = 0
        """Copies of channel events and private messages handed to recipients' connections."""
        self.sendq_disconnects = 0
        self.flood_disconnects = 0
        self.cluster_events_in = 0
        """Events of other nodes dispatched here."""
        self.cluster_events_out = 0
        """Events this node queued for publishing."""
        self.loop_lag = Histogram()
        """How late the backend ran its timers, one observation per timer run (seconds)."""
        self.state = STARTING
        """``starting`` until the backend serves, ``serving``, then ``stopping`` for good."""

    def connected(self, kind: str) -> None:
        self.connections[kind] = self.connections.get(kind, 0) + 1

    def disconnected(self, kind: str, plain: bool) -> None:
        remaining = self.connections.get(kind, 0) - 1
        self.connections[kind] = max(0, remaining)
        if plain:
            self.plain_connections -= 1

    def cleared(self) -> None:
        """The hub dropped every client at once (shutdown): no connection is open any more."""
        for kind in self.connections:
            self.connections[kind] = 0
        self.plain_connections = 0


def transport_kind(transport: object) -> str:
    """How a transport reached us, for ``Stats.connections``: its ``kind``, else ``tcp``."""
    kind = getattr(transport, "kind", None)
    return kind if isinstance(kind, str) else "tcp"
