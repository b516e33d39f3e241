"""One subscriber connection of the Redis link: to the one Redis, or to one master of a cluster.

Used only by the link's thread (``chatd.cluster.link``). It reads what poll found readable
without waiting for more (hiredis parses; ``can_read(0)`` says whether a whole or partial
reply is there, and a partial one's rest is read within the connection's timeout).

Invariants:
- A ``smessage`` is delivered only for a shard channel the link still has subscribed:
  stragglers sent before Redis saw our SUNSUBSCRIBE are not.
- A ``sunsubscribe`` we did not ask for means Redis dropped the channel (on a cluster: its
  slot moved to another master): ``LinkError``, so the link reconnects with a fresh topology.
- An error reply on a subscriber connection (MOVED for a slot we got wrong) is ``LinkError`` too.
- A subscription Redis confirms once the link is up arrives as ``(channel, SUBSCRIBED)``, in
  order with the messages: a reader knows from then on nothing published there escapes it.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import redis.connection
from redis.exceptions import ResponseError

SUBSCRIBED = b""
"""The payload of the pseudo-message that says a shard channel's subscription is in force (no
real payload is empty)."""


class LinkError(Exception):
    """The link is unusable (no answer in time, a refused handshake, a moved slot, overflow)."""


class Subscriber:
    """A subscriber connection and its shard channels; ``last_rx``/``ping_sent`` time its silence."""

    def __init__(self, connection: redis.connection.Connection) -> None:
        self.connection = connection
        self.channels: set[str] = set()
        self.unsubscribing: Counter[bytes] = Counter()
        """SUNSUBSCRIBEs sent and not confirmed: any other ``sunsubscribe`` is Redis dropping us."""
        self.last_rx = time.monotonic()
        self.ping_sent: float | None = None
        self.fd = self.fileno()
        """The descriptor as registered with poll (still known once redis-py has dropped the socket)."""

    def fileno(self) -> int:
        sock = self.connection._sock  # redis-py keeps the socket here; poll needs its descriptor
        if sock is None:
            raise LinkError("subscriber connection closed")
        return sock.fileno()

    def send(self, *commands: tuple[str, ...]) -> None:
        self.connection.send_packed_command(self.connection.pack_commands(commands))

    def read(self, messages: list[tuple[bytes, bytes]], subscribed: dict[bytes, Any]) -> None:
        """Everything the connection has for us now; messages are appended to ``messages``."""
        connection = self.connection
        try:
            while connection.can_read(timeout=0):
                self.absorb(connection.read_response(), messages, subscribed, None)
        except ResponseError as error:
            raise LinkError(f"subscriber connection refused: {error}") from None
        self.last_rx = time.monotonic()
        self.ping_sent = None

    def absorb(
        self,
        value: Any,
        messages: list[tuple[bytes, bytes]],
        subscribed: dict[bytes, Any],
        pending: set[bytes] | None,
    ) -> None:
        absorb_push(value, messages, subscribed, pending, self.unsubscribing)


def absorb_push(
    value: Any,
    messages: list[tuple[bytes, bytes]],
    subscribed: dict[bytes, Any],
    pending: set[bytes] | None,
    unsubscribing: Counter[bytes],
) -> None:
    """One push of a subscriber connection: a message, a confirmation (its channel leaves
    ``pending``, or, with no ``pending``, comes as ``(channel, SUBSCRIBED)``), a pong, or a
    sign that a shard channel's slot moved (``LinkError``)."""
    if isinstance(value, ResponseError):
        raise LinkError(f"subscriber connection refused: {value}")
    if not isinstance(value, list) or not value:
        return  # PONG outside subscribed mode
    kind = value[0]
    if kind == b"smessage":
        if value[1] in subscribed:
            messages.append((value[1], value[2]))
    elif kind == b"ssubscribe":
        if pending is not None:
            pending.discard(value[1])
        elif value[1] in subscribed:
            messages.append((value[1], SUBSCRIBED))
    elif kind == b"sunsubscribe":
        channel = value[1]
        if unsubscribing[channel] > 0:
            unsubscribing[channel] -= 1
            if not unsubscribing[channel]:
                del unsubscribing[channel]
        else:
            raise LinkError(f"Redis unsubscribed us from {channel.decode(errors='replace')} (its slot moved?)")
