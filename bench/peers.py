"""The load generator's clients: one ``Peer`` per connection, one ``Sender`` per fan-out sender.

Invariants:
- ``Peer.expect[sid]`` is the next sequence number the peer expects from sender ``sid``;
  ``dups`` and ``gaps`` count what came out of that order (see ``bench.loadgen``).
- ``Peer.ws`` is set for a client speaking IRC over WebSocket, and then every byte it
  sends or reads passes through it; ``None`` for plain TCP.
"""

from __future__ import annotations

import socket

from bench.wsload import WsLink


class Peer:
    """One client connection of the generator and its delivery bookkeeping."""

    __slots__ = (
        "ack_for",
        "channel",
        "closed",
        "cut",
        "deliveries",
        "dups",
        "expect",
        "gaps",
        "inbuf",
        "kind",
        "nick",
        "node",
        "outbuf",
        "partner",
        "probe",
        "ready",
        "registered",
        "sender_id",
        "sock",
        "wants_write",
        "ws",
    )

    def __init__(self, sock: socket.socket, nick: bytes, channel: bytes | None) -> None:
        self.sock = sock
        self.nick = nick
        self.channel = channel
        self.node = 0
        self.inbuf = b""
        self.outbuf = bytearray()
        self.wants_write = True
        self.registered = False
        self.ready = False
        self.closed = False
        self.cut = False
        self.probe = False
        self.kind = "recv"  # "recv", "slow", "pair-a", "pair-b"
        self.sender_id = -1
        self.partner: Peer | None = None
        self.ack_for: frozenset[int] = frozenset()
        self.expect: list[int] = []
        self.dups = 0
        self.gaps = 0
        self.deliveries = 0
        self.ws: WsLink | None = None


class Sender:
    """A fan-out sender: its socket, how much it sent, and its window of unacknowledged messages."""

    __slots__ = ("blast_left", "in_flight", "peer", "sent", "sid")

    def __init__(self, sid: int, peer: Peer) -> None:
        self.sid = sid
        self.peer = peer
        self.sent = 0
        self.in_flight = 0
        self.blast_left = 0
