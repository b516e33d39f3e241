"""Who is still there: registration deadlines, PING for idle clients, Ping timeouts.

Invariants:
- One heap of ``(deadline, client id, client)`` entries; a client has at least one entry
  from ``connect`` until it is gone. Entries of departed clients are skipped when they
  come up, and dropped in bulk once they are half the heap (``forget_departed``).
- Activity only updates ``Client.last_seen``; timers are re-armed lazily when they fire,
  so the per-line path never touches the heap.
- Plain clients cannot answer PING: after registration they are left to TCP keepalive.
- The nick-enforcement deadlines (``chatd.core.enforcement``) run with these timers:
  ``run`` fires both, ``next_deadline`` is the earlier of both.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from chatd.core.client import Dialect
from chatd.core.enforcement import NickEnforcement
from chatd.protocol.message import format_message

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub


class Liveness:
    """The hub's timers, on the hub's monotonic clock."""

    __slots__ = ("_heap", "enforcement", "hub")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._heap: list[tuple[float, int, Client]] = []
        self.enforcement = NickEnforcement(hub)

    def schedule(self, deadline: float, client: Client) -> None:
        heapq.heappush(self._heap, (deadline, client.id, client))

    def next_deadline(self) -> float | None:
        own = self._heap[0][0] if self._heap else None
        other = self.enforcement.next_deadline()
        return own if other is None else other if own is None else min(own, other)

    def run(self, now: float) -> None:
        """Fire every timer due by ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, client = heapq.heappop(heap)
            if not client.gone:
                self._check(client, now)
        self.enforcement.run(now)

    def forget_departed(self, clients_left: int) -> None:
        """Drop the entries of departed clients once they are at least half the heap, so those
        clients (and their buffers) can be freed now, not at their next deadline: O(1)
        amortised per departure."""
        if len(self._heap) > 2 * clients_left + 16:
            self._heap = [entry for entry in self._heap if not entry[2].gone]
            heapq.heapify(self._heap)

    def clear(self) -> None:
        self._heap.clear()
        self.enforcement.clear()

    def _check(self, client: Client, now: float) -> None:
        """One timer firing: ping an idle client, or drop one that did not answer in time."""
        hub = self.hub
        config = hub.config
        interval = config.ping_interval_s
        if not client.registered:
            registration_deadline = client.connected_at + config.register_timeout_s
            if now >= registration_deadline:
                hub.quit(client, "Registration timed out")
                return
            self.schedule(min(registration_deadline, now + interval), client)
            return
        if client.ping_sent_at is not None and client.last_seen < client.ping_sent_at:
            deadline = client.ping_sent_at + config.ping_timeout_s
            if now >= deadline:
                hub.quit(client, f"Ping timeout: {now - client.last_seen:.0f} seconds")
            else:
                self.schedule(deadline, client)
            return
        client.ping_sent_at = None
        if client.dialect is Dialect.PLAIN:
            return
        idle_until = client.last_seen + interval
        if now < idle_until:
            self.schedule(idle_until, client)
            return
        client.ping_sent_at = now
        hub.send_line(client, format_message("PING", config.name))
        self.schedule(now + config.ping_timeout_s, client)
