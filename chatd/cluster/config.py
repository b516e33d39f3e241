"""Cluster settings: where Redis is, who this node is, and how fast liveness is judged."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
"""A node id is shown as a server name (WHOIS 312, WHO) and used in Redis keys: no spaces, no colons."""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str
    port: int = 6379
    db: int = 0
    password: str | None = None
    username: str | None = None


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]``; raises ValueError with a readable reason."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError("must start with redis://")
    if not parts.hostname:
        raise ValueError("has no host")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"database must be a number, got {path!r}")
    try:
        port = parts.port or 6379
    except ValueError as error:
        raise ValueError(str(error)) from None
    return RedisAddress(
        host=parts.hostname,
        port=port,
        db=int(path or 0),
        password=unquote(parts.password) if parts.password else None,
        username=unquote(parts.username) if parts.username else None,
    )


def default_node_id() -> str:
    """hostname-pid: unique among the processes of a machine, and readable in WHOIS."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0]) or "node"
    return f"{host[:40]}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """How a node joins the network.

    A node refreshes its liveness key and publishes a heartbeat every ``heartbeat_s``;
    a node silent for ``node_timeout_s`` is dead (its users QUIT everywhere, its keys
    go). The Redis link gives up on a connection that answers nothing for
    ``redis_timeout_s`` and reconnects with backoff up to ``backoff_max_s``.
    """

    redis: RedisAddress
    node_id: str
    heartbeat_s: float = 1.0
    node_timeout_s: float = 5.0
    redis_timeout_s: float = 3.0
    backoff_max_s: float = 5.0
    prefix: str = "chatd"
    """Namespace of every key and pub/sub channel, so several networks can share one Redis."""

    @property
    def key_tag(self) -> str:
        """``{<prefix>}``: the hash tag of every network metadata key and channel, so they share
        one slot of a Redis Cluster and each Lua script touches keys of one slot only."""
        return f"{{{self.prefix}}}"
