"""Opening a loop link's connections: the blocking part, on a short-lived thread of its own.

redis-py connects and handshakes (AUTH, SELECT, the timeouts), reads INFO and, on a Redis
Cluster, the slot map; then each connection's socket is taken out of redis-py and handed,
idle, to the event loop (``chatd.cluster.loop_link``), which speaks to it with hiredis alone.

Invariants:
- Every socket of ``Opened`` has been answered everything it was asked: nothing is left in
  redis-py's buffers when the loop takes it over.
- ``open_connections`` either returns every connection it needs or closes what it opened and
  raises (one of ``link.FAILURES``).
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field

import redis
import redis.connection

from chatd.cluster.config import ClusterSettings
from chatd.cluster.link import connection_options, require_sharded_pubsub
from chatd.cluster.subscriber import LinkError

SLOTS = 16384


@dataclass
class Opened:
    """A command and a subscriber socket for each master, and (on a cluster) each slot's master."""

    cluster: bool
    sockets: dict[str, tuple[socket.socket, socket.socket]] = field(default_factory=dict)
    """Master name ("host:port"; "" for the one Redis) -> (command socket, subscriber socket)."""
    slots: list[str] = field(default_factory=list)
    """On a cluster, the master name of each of the 16384 slots."""

    def close(self) -> None:
        for pair in self.sockets.values():
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()
        self.sockets.clear()


def open_connections(settings: ClusterSettings) -> Opened:
    """Connect to the Redis of the URL and, if it is a cluster node, to every master."""
    address = settings.redis
    options = connection_options(settings)
    probe = redis.Redis(host=address.host, port=address.port, db=address.db, **options)
    try:
        info = probe.info()
        require_sharded_pubsub(info)
        opened = Opened(cluster=info.get("cluster_enabled") == 1)
        try:
            if not opened.cluster:
                opened.sockets[""] = (_socket(settings, address.host, address.port, address.db),
                                      _socket(settings, address.host, address.port, address.db))  # fmt: skip
                return opened
            if probe.cluster("INFO").get("cluster_state") != "ok":
                raise LinkError("the Redis Cluster is not ready (cluster_state is not ok)")
            opened.slots = _slot_masters(probe.cluster("SLOTS"), address.host)  # RESP2: left as lists
            for name in sorted(set(opened.slots)):
                host, _, port = name.rpartition(":")
                opened.sockets[name] = (_socket(settings, host, int(port), 0), _socket(settings, host, int(port), 0))
            return opened
        except BaseException:
            opened.close()
            raise
    finally:
        probe.close()


def _slot_masters(ranges: list[list[object]], default_host: str) -> list[str]:
    """Each slot's master from CLUSTER SLOTS; a slot nobody serves means the cluster is not ready."""
    slots = [""] * SLOTS
    for entry in ranges:
        start, end, master = entry[0], entry[1], entry[2]
        assert isinstance(start, int) and isinstance(end, int) and isinstance(master, list)
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        if not host or host == "?":  # Redis does not know its own address: the one we asked
            host = default_host
        name = f"{host}:{master[1]}"
        for slot in range(start, end + 1):
            slots[slot] = name
    if not all(slots):
        raise LinkError("the Redis Cluster does not serve every slot")
    return slots


def _socket(settings: ClusterSettings, host: str, port: int, db: int) -> socket.socket:
    """A connected, handshaken socket, taken from redis-py (which then forgets it)."""
    connection = redis.connection.Connection(host=host, port=port, db=db, **connection_options(settings))
    connection.connect()
    sock = connection._sock  # redis-py keeps it here; taking it leaves redis-py nothing to close
    if sock is None:
        raise LinkError(f"no connection to {host}:{port}")
    connection._sock = None
    connection._parser.on_disconnect()
    return sock
